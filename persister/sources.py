"""Provenance: a result must name a real event of its own path.

The persister orders writes by a result's ``source_seq`` (the events-stream
sequence of the event it answers), and that number arrives in a message. A
publisher that is not an analyzer could set it: reuse a number to overwrite a
fingerprint, or pick 2^62 to freeze a path forever. So before a batch is
applied, every result's ``source_seq`` is looked up in the events stream
(``TRACKPRINT_EVENTS``), and the result is an ``invalid_message`` unless:

- the sequence exists, or existed: it is at most the stream's last sequence;
- when the event is still in the stream, it is about the same path, and it
  could have produced this result:

  ============================  ================================================
  result                        event
  ============================  ================================================
  ``FingerprintResult``,        ``added``, ``changed`` or ``moved`` (the new
  ``AnalysisFailure``           path's own outcome), same ``path``
  ``TrackRemoved`` ``gone``     ``removed``, same ``path``
  ``TrackRemoved`` ``excluded`` any kind, same ``path`` (an analyzer whose
                                settings exclude the path tombstones it)
  ``TrackMoved``                the move's tombstone: ``removed`` with reason
                                ``moved`` at ``old_path``, ``new_path`` = ``path``
                                (an earlier release: ``moved``, same paths)
  ============================  ================================================

An event the stream no longer holds (limits retention removed it) cannot be
checked; its result is accepted on the range check alone. :func:`source_problem`
is the rule (pure); :class:`EventSources` fetches the events it needs.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec

from trackprint import bus
from trackprint.contracts import (AnalysisFailure, FileEvent, FingerprintResult, ResultMessage, TrackMoved,
                                  TrackRemoved, decode_event)

log = logging.getLogger("trackprint.persister")

MISSING = object()  # the event was in the stream once but is not any more (or was never readable)


def source_problem(message: ResultMessage, event: FileEvent | None | object, last_seq: int) -> str | None:
    """Why ``message`` cannot answer the event at ``message.source_seq`` (None: it can).

    ``event`` is that event, :data:`MISSING` when the stream no longer holds it, or None when it is
    not a readable event. ``last_seq`` is the events stream's last sequence.
    """
    seq = message.source_seq
    if seq < 1 or seq > last_seq:
        return f"source_seq {seq} names no event (the events stream ends at sequence {last_seq})"
    if event is MISSING:
        return None
    if not isinstance(event, FileEvent):
        return f"source_seq {seq} is not a file event"
    if isinstance(message, TrackMoved):
        tombstone = (event.kind == "removed" and event.reason == "moved" and event.path == message.old_path
                     and event.new_path == message.path)
        earlier_release = event.kind == "moved" and event.path == message.path and event.old_path == message.old_path
        if not (tombstone or earlier_release):
            return f"source_seq {seq} is an event of kind {event.kind} for {event.path!r}, not this move"
        return None
    if event.path != message.path:
        return f"source_seq {seq} is an event for another path"
    if isinstance(message, TrackRemoved):
        if message.reason != "excluded" and event.kind != "removed":
            return f"source_seq {seq} is an event of kind {event.kind}, not a removal"
    elif isinstance(message, (FingerprintResult, AnalysisFailure)) and event.kind == "removed":
        return f"source_seq {seq} is a removal event, not something to analyse"
    return None


class EventSources:
    """Looks up the events that results name, a batch at a time."""

    def __init__(self, js, stream: str = bus.EVENTS_STREAM, concurrency: int = 128):
        self.js, self.stream, self.concurrency = js, stream, concurrency

    async def problems(self, messages: list[ResultMessage | None]) -> list[str | None]:
        """One entry per message: why its ``source_seq`` is not its event (None: fine, or not a message)."""
        wanted = sorted({m.source_seq for m in messages if m is not None and m.source_seq >= 1})
        info = await self.js.stream_info(self.stream)
        last_seq = int(info.state.last_seq)
        limit = asyncio.Semaphore(self.concurrency)

        async def lookup(seq: int):
            async with limit:
                try:
                    raw = await self.js.get_msg(self.stream, seq)
                except Exception:  # deleted by limits, or never stored: nothing to compare with
                    return MISSING
            try:
                return decode_event(raw.data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                return None

        in_range = [seq for seq in wanted if seq <= last_seq]
        events = dict(zip(in_range, await asyncio.gather(*(lookup(seq) for seq in in_range))))
        return [None if m is None else source_problem(m, events.get(m.source_seq, MISSING), last_seq)
                for m in messages]
