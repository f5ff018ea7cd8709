"""Results the way an analyzer makes them: each names the event it answers.

The persister refuses a result whose ``source_seq`` is not an event of its
path (``trackprint/persister/sources.py``), so a test that publishes results
directly publishes their events first: :func:`answered` publishes, for each
result, the event it answers (``added``, or ``moved``/``removed`` for those
results) and returns the results re-numbered with those events' sequences.
"""

from __future__ import annotations

import msgspec

from trackprint import bus
from trackprint.contracts import FileEvent, TrackMoved, TrackRemoved, encode


async def answered(js, results: list) -> list:
    """``results`` with ``source_seq`` set to the sequence of a freshly published event of their path."""
    out = []
    for result in results:
        if isinstance(result, TrackMoved):  # a move's tombstone at the old path names the new one
            event = FileEvent(kind="removed", path=result.old_path, root="/", reason="moved", new_path=result.path,
                              origin="manual")
        else:
            kind = "removed" if isinstance(result, TrackRemoved) else "added"
            event = FileEvent(kind=kind, path=result.path, root="/", origin="manual")
        ack = await js.publish(bus.event_subject(event.path), encode(event))
        out.append(msgspec.structs.replace(result, source_seq=ack.seq))
    return out
