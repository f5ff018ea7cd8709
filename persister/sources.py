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
  ``TrackRemoved`` ``excluded`` ``removed``, same ``path``; or any other kind of
                                the same ``path`` when the persister's own
                                library policy (``--library``: roots, excludes,
                                marker) excludes the path, as an analyzer with
                                those settings does
  ``TrackMoved``                the move's tombstone: ``removed`` with reason
                                ``moved`` at ``old_path``, ``new_path`` = ``path``
                                (an earlier release: ``moved``, same paths)
  ============================  ================================================

- when the event is no longer in the stream: the streams keep only the latest
  message of each file's subject (``max_msgs_per_subject`` 1,
  :mod:`trackprint.bus`), so a missing event was replaced by a newer event of
  the SAME file. The latest event on the subject of the result's path
  (``old_path`` for a ``TrackMoved``: its event is the old path's tombstone)
  is read: the result is plausible only when that event exists and is newer
  than ``source_seq`` (ordering then decides: the newer event's answer wins);
  none, or an older one, means ``source_seq`` was never an event of this path.
  An ``excluded`` removal then needs the library policy to exclude the path.
  A stream that keeps history (``max_msgs_per_subject`` -1 or above 1, or a
  stream of an earlier release left unbounded) cannot say that much: there a
  missing event is accepted on the range check alone.

What the event check cannot see (a second message answering a real event of
the same path) the store refuses by ordering: an equal ``source_seq`` only
re-applies from the results message that wrote the row (``store.py``).
Without a library the persister cannot judge ``excluded`` and accepts it as
above for any kind of the same path (a warning at start says so).

:func:`source_problem` is the rule (pure); :class:`EventSources` fetches the
events it needs, concurrently, a batch at a time. A bus that cannot answer
(anything but "no such message") raises: the batch is not applied unchecked.
"""

from __future__ import annotations

import asyncio
import json
import logging

import msgspec
import nats.js.errors

from trackprint import bus
from trackprint.contracts import (AnalysisFailure, FileEvent, FingerprintResult, ResultMessage, TrackMoved,
                                  TrackRemoved, decode_event)
from trackprint.paths import Library, to_fs

log = logging.getLogger("trackprint.persister")

MISSING = object()  # the event was in the stream once but is not any more (or was never readable)
UNCHECKED = object()  # the stream keeps history: what replaced a missing event cannot be told


def subject_path(message: ResultMessage) -> str:
    """The path whose events subject holds the event ``message`` answers (a move's: the old path's tombstone)."""
    return message.old_path if isinstance(message, TrackMoved) else message.path


def _exclusion_problem(message: ResultMessage, library: Library | None, seq: int, what: str) -> str | None:
    """Why an ``excluded`` removal answering ``what`` is not one (None: it is, or no library to judge by)."""
    if library is None or not (isinstance(message, TrackRemoved) and message.reason == "excluded"):
        return None
    if library.excluded(to_fs(message.path)):
        return None
    return (f"source_seq {seq} is {what}, and the persister's library does not exclude {message.path!r}: "
            f"not an exclusion")


def source_problem(message: ResultMessage, event: FileEvent | None | object, last_seq: int, *,
                   latest: int | None | object = UNCHECKED, library: Library | None = None) -> str | None:
    """Why ``message`` cannot answer the event at ``message.source_seq`` (None: it can).

    ``event`` is that event, :data:`MISSING` when the stream no longer holds it, or None when it is
    not a readable event. ``last_seq`` is the events stream's last sequence. ``latest``: when the event
    is missing, the sequence of the latest event on :func:`subject_path`'s subject (None: there is
    none), or :data:`UNCHECKED` when the stream keeps history. ``library``: the persister's own, which
    judges ``excluded`` removals (None: not judged).
    """
    seq = message.source_seq
    if seq < 1 or seq > last_seq:
        return f"source_seq {seq} names no event (the events stream ends at sequence {last_seq})"
    if event is MISSING:
        if latest is not UNCHECKED:
            path = subject_path(message)
            if latest is None:
                return f"source_seq {seq} names no event of {path!r} (the events stream holds none of it)"
            if latest < seq:
                return (f"source_seq {seq} names no event of {path!r} (its latest event is {latest}: a replaced "
                        f"event is older than the one that replaced it)")
        return _exclusion_problem(message, library, seq, "an event no longer in the stream")
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
        if event.kind == "removed":
            return None
        if message.reason != "excluded":
            return f"source_seq {seq} is an event of kind {event.kind}, not a removal"
        return _exclusion_problem(message, library, seq, f"an event of kind {event.kind}")
    if isinstance(message, (FingerprintResult, AnalysisFailure)) and event.kind == "removed":
        return f"source_seq {seq} is a removal event, not something to analyse"
    return None


BATCH_SPAN = 1024  # sequences one direct-get batch covers: a batch's events are usually close together


def clusters(seqs: list[int], span: int = BATCH_SPAN) -> list[list[int]]:
    """Sorted sequences cut into runs whose first and last are less than ``span`` apart."""
    out: list[list[int]] = []
    for seq in seqs:
        if out and seq - out[-1][0] < span:
            out[-1].append(seq)
        else:
            out.append([seq])
    return out


class EventSources:
    """Looks up the events that results name, a batch at a time: one direct-get batch request per run of
    nearby sequences (a hundred results cost one round trip, not a hundred), single gets where the stream
    does not allow direct gets or the server cannot batch."""

    def __init__(self, js, stream: str = bus.EVENTS_STREAM, concurrency: int = 128, library: Library | None = None):
        self.js, self.stream, self.concurrency, self.library = js, stream, concurrency, library

    async def problems(self, messages: list[ResultMessage | None]) -> list[str | None]:
        """One entry per message: why its ``source_seq`` is not its event (None: fine, or not a message).

        Raises when the bus cannot answer (only "no such message" is an answer)."""
        wanted = sorted({m.source_seq for m in messages if m is not None and m.source_seq >= 1})
        info = await self.js.stream_info(self.stream)
        last_seq = int(info.state.last_seq)
        # one message per file's subject: a missing event was replaced by a newer one of the same file
        precise = (getattr(info.config, "max_msgs_per_subject", None) or -1) == 1
        limit = asyncio.Semaphore(self.concurrency)

        async def last_of(path: str) -> int | None:
            async with limit:
                try:
                    raw = await self.js.get_last_msg(self.stream, bus.event_subject(path))
                except nats.js.errors.NotFoundError:
                    return None
            return int(raw.seq)

        in_range = [seq for seq in wanted if seq <= last_seq]
        events = await self._events(in_range, bool(getattr(info.config, "allow_direct", False)), limit)
        latest: dict[str, int | None] = {}
        if precise:
            paths = sorted({subject_path(m) for m in messages
                            if m is not None and events.get(m.source_seq, MISSING) is MISSING
                            and 1 <= m.source_seq <= last_seq})
            latest = dict(zip(paths, await asyncio.gather(*(last_of(path) for path in paths))))
        return [None if m is None else source_problem(
                    m, events.get(m.source_seq, MISSING), last_seq,
                    latest=latest.get(subject_path(m)) if precise else UNCHECKED, library=self.library)
                for m in messages]

    async def _events(self, seqs: list[int], direct: bool, limit: asyncio.Semaphore) -> dict[int, object]:
        """seq -> its FileEvent, None (not a readable event) or MISSING, for each of ``seqs``."""
        raw: dict[int, bytes | object] = {}

        async def run(run_seqs: list[int]) -> None:
            async with limit:
                got = await self._direct_batch(run_seqs[0], run_seqs[-1] - run_seqs[0] + 1) if direct else None
            if got is None:  # no direct gets here: one request per sequence
                got = dict(zip(run_seqs, await asyncio.gather(*(self._single(seq, limit) for seq in run_seqs))))
            for seq in run_seqs:
                raw[seq] = got.get(seq, MISSING)

        await asyncio.gather(*(run(c) for c in clusters(seqs)))
        return {seq: _decoded(data) for seq, data in raw.items()}

    async def _single(self, seq: int, limit: asyncio.Semaphore) -> bytes | object:
        async with limit:
            try:
                return (await self.js.get_msg(self.stream, seq)).data
            except nats.js.errors.NotFoundError:  # replaced, deleted by limits, or never stored
                return MISSING

    async def _direct_batch(self, start: int, count: int) -> dict[int, bytes] | None:
        """The stream's messages from ``start`` on, at most ``count`` (gaps skipped), in one direct-get batch
        request (``{"seq", "batch"}``: the server answers each message, then a 204 EOB, or 404 when there is
        none); None when the server cannot (an older one), so the caller reads one at a time.

        The replies are taken by a subscription callback, not ``next_msg``: nats-py's ``next_msg`` starts a
        task and a timer for every message, and that was most of the time a batch's checks took."""
        nc = self.js._nc  # nats-py: the JetStream context's connection; batches have no API of their own yet
        got: dict[int, bytes] = {}
        done: asyncio.Future[dict[int, bytes] | None] = asyncio.get_running_loop().create_future()

        async def take(msg) -> None:  # each reply, in the order the server sent them
            if done.done():
                return
            headers = msg.headers or {}
            status = headers.get("Status")
            if status in ("204", "404"):  # end of the batch; nothing at or after start
                done.set_result(got)
            elif status or "Nats-Sequence" not in headers:
                log.warning("direct-get batch of %s from %d: status %s %s; reading one at a time", self.stream,
                            start, status, headers.get("Description", ""))
                done.set_result(None)
            else:
                got[int(headers["Nats-Sequence"])] = msg.data

        sub = await nc.subscribe(nc.new_inbox(), cb=take)
        try:
            await nc.publish(f"$JS.API.DIRECT.GET.{self.stream}", json.dumps({"seq": start, "batch": count}).encode(),
                             reply=sub.subject)
            return await asyncio.wait_for(done, 10)
        except asyncio.TimeoutError:
            log.warning("direct-get batch of %s from %d: no end of batch in 10 s; reading one at a time",
                        self.stream, start)
            return None
        finally:
            await sub.unsubscribe()


def _decoded(data: bytes | object) -> object:
    if data is MISSING:
        return MISSING
    try:
        return decode_event(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
