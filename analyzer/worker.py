"""The analyzer service: FileEvents in, results out, ack only after the result is stored.

Any number of these processes (on any host) share the durable pull consumer
``analyzer``. Per event (see analyzer/README.md, "Worker"):

- added/changed: content_id -> KV ``fingerprints_by_content`` hit: publish a
  FingerprintResult with reused=True (no analysis); miss: Rust server, per-file
  fallback to the Python engine (process pool); publish the result or an
  AnalysisFailure, wait for its PubAck, put the KV entry, then ack.
- removed: publish TrackRemoved (TrackMoved for a move's tombstone), then ack; moved: the new path's outcome.
- transient errors (timeout, busy, io_error, engine_unavailable, bus failure):
  nak with a delay; on the last delivery publish an AnalysisFailure and term().
- malformed event: a record on ``trackprint.deadletter.malformed``, then term().
"""

from __future__ import annotations

import asyncio
import json
import base64
import errno
import logging
import os
import time
from dataclasses import dataclass

import msgspec

from trackprint.analyzer.engines import Engines, RustClient, python_pool
from trackprint.supervisor import stop_pool
from trackprint import bus
from trackprint.contracts import (
    AnalysisFailure,
    FileEvent,
    FingerprintResult,
    Tags,
    Timings,
    TrackMoved,
    TrackRemoved,
    decode_event,
    decode_result,
    encode,
)
from trackprint.errors import ErrorCode
from trackprint.fingerprint import FINGERPRINT_VERSION
from trackprint.pyengine.identity import IdentityTimeout, container_of, content_id
from trackprint.paths import Library, to_fs
from trackprint.service import Service, host_name
from trackprint.tags import read_tags

log = logging.getLogger("trackprint.analyzer")

try:
    from prometheus_client import Counter, Gauge, Histogram

    M_PROCESSED = Counter("trackprint_analyzer_events_total", "Events finished", ["kind", "outcome"])
    M_ENGINE = Counter("trackprint_analyzer_fingerprints_total", "Fingerprints published", ["engine", "reused"])
    M_FAILURES = Counter("trackprint_analyzer_failures_total", "AnalysisFailures published", ["code"])
    M_FALLBACKS = Counter("trackprint_analyzer_fallbacks_total", "Files the Python engine took over", ["reason"])
    M_NAKS = Counter("trackprint_analyzer_naks_total", "Events naked for a later retry", ["reason"])
    M_INFLIGHT = Gauge("trackprint_analyzer_in_flight", "Events being handled")
    M_SECONDS = Histogram("trackprint_analyzer_analysis_seconds", "Wall time per analysed file", ["engine"],
                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300))
    M_LAG = Gauge("trackprint_analyzer_consumer_pending", "Events waiting in the durable analyzer consumer")
except Exception:  # pragma: no cover - prometheus_client is a dependency
    M_PROCESSED = M_ENGINE = M_FAILURES = M_FALLBACKS = M_NAKS = M_INFLIGHT = M_SECONDS = M_LAG = None


def _inc(metric, *labels) -> None:
    if metric is not None:
        metric.labels(*labels).inc()


class Transient(Exception):
    """Retry this event later (nak with delay)."""

    def __init__(self, code: ErrorCode, message: str, stage: str, engine: str | None = None):
        super().__init__(message)
        self.code, self.message, self.stage, self.engine = code, message, stage, engine


@dataclass
class WorkerConfig:
    nats: str = "nats://127.0.0.1:4222"
    server: str | None = "http://127.0.0.1:7878"
    use_rust: bool = True
    concurrency: int = max(1, os.cpu_count() or 1)
    analysis_timeout_s: float = 600.0
    nak_delay_s: float = 5.0
    max_nak_delay_s: float = 300.0
    breaker_threshold: int = 3
    breaker_cooldown_s: float = 30.0
    rust_timeout_s: float = 300.0
    library: Library = Library(())  # the roots this analyzer may read; nothing outside is ever opened
    topology: bus.Topology | None = None  # None: bus.Topology() defaults (and TRACKPRINT_* environment)


def identify(path: str | bytes, deadline: float | None) -> tuple[str, Tags]:
    """The content id and the tags of ``path``, in one trip to a thread (the analyzer's per-file thread
    hops were a measurable part of its CPU). The content's container is the tag reader's hint."""
    cid = content_id(path, deadline)
    return cid, read_tags(path, container_of(cid))


class AnalyzerWorker(Service):
    name = "analyzer"
    work_in_hand = "the events in hand"
    default_log_level = logging.INFO  # one line per event handled is the analyzer's main output

    def __init__(self, config: WorkerConfig, js=None):
        self.host = host_name()
        super().__init__(config.nats, js=js, topology=config.topology,
                         connection_name=f"trackprint-analyzer-{self.host}-{os.getpid()}")
        self.config = config
        self.rust = (RustClient(config.server, timeout_s=config.rust_timeout_s,
                                breaker_threshold=config.breaker_threshold,
                                breaker_cooldown_s=config.breaker_cooldown_s)
                     if config.use_rust and config.server else None)
        self.engines: Engines | None = None
        self.pool = None
        self.kv = None
        self.sub = None
        self.tasks: set[asyncio.Task] = set()  # one per event being handled
        self.max_deliver = 5
        self.ack_wait_s = 60.0
        self.counts: dict[str, int] = {}
        self._started = time.monotonic()
        self.in_hand: dict[int, str] = {}  # events-stream seq -> path, for the status report
        self._reported: tuple[str, ...] = ()  # nothing in hand at start: no report until there is
        self._last_report = float("-inf")

    def count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    # ------------------------------------------------- the service skeleton's hooks
    async def setup(self, js) -> None:
        self.kv = await bus.fingerprint_kv(js)
        self.sub = await bus.bind_analyzer(js)
        info = await self.sub.consumer_info()
        self.max_deliver = info.config.max_deliver or 5
        self.ack_wait_s = info.config.ack_wait or 60.0
        self.pool = python_pool(self.config.concurrency)
        self.engines = Engines("auto" if self.rust else "python", rust=self.rust, python=self.pool,
                               timeout_s=self.config.analysis_timeout_s, library=self.config.library)
        log.info("analyzer %s pid %d: %d workers, Rust %s, max_deliver %d, ack_wait %.0f s, library %s%s",
                 self.host, os.getpid(), self.config.concurrency,
                 self.config.server if self.rust else "disabled (--no-rust)", self.max_deliver, self.ack_wait_s,
                 ", ".join(self.config.library.roots),
                 " (symlinks may leave it)" if self.config.library.allow_symlinks_outside else "")

    async def step(self) -> None:
        """Fetch only as many events as there are free slots: the rest stay with the consumer for other analyzers."""
        free = self.config.concurrency - len(self.tasks)
        if free <= 0:
            await asyncio.wait(self.tasks, timeout=1, return_when=asyncio.FIRST_COMPLETED)
        else:
            for msg in await self.fetch(self.sub, free, timeout=1):
                self.tasks.add(asyncio.create_task(self.handle(msg)))
        self.tasks = {t for t in self.tasks if not t.done()}
        await self._report()

    async def _report(self) -> None:
        """The files in hand, in the status KV bucket (``analyzer.<host>-<pid>``), for `up`'s console and
        `status`: on change, at most every second, except that the first file after an idle report is
        written at once (a short file would be done before the next one); every 30 s regardless, so a
        stale report shows. A report stays at least a second, so a reader polling faster sees each."""
        now = time.monotonic()
        analysing = tuple(sorted(self.in_hand.values()))
        since = now - self._last_report
        if analysing == self._reported and since < 30.0:
            return
        if since < 1.0 and self._reported:
            return
        # set before the await, so that a concurrent call (the step loop, another event) sees this report
        self._last_report, previous, self._reported = now, self._reported, analysing
        try:
            kv = await bus.status_kv(self.js)
            await kv.put(f"analyzer.{self.host}-{os.getpid()}",
                         json.dumps({"analysing": list(analysing), "at": time.time()}).encode())
        except Exception as exc:  # a report never stops the work
            self._reported = previous
            log.debug("analyzer: status report not written: %s", exc)

    async def finish_work_in_hand(self) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=self.config.analysis_timeout_s)

    async def refresh_metrics(self) -> None:
        await self._update_lag()

    async def teardown(self) -> None:
        if self.pool is not None:
            await asyncio.to_thread(stop_pool, self.pool)
        if self.engines is not None:
            await self.engines.aclose()

    def subscriptions(self) -> list:
        return [self.sub]

    async def _update_lag(self) -> None:
        if M_LAG is None or self.sub is None:
            return
        try:
            M_LAG.set((await self.sub.consumer_info()).num_pending)
        except Exception:  # metrics never stop the work
            pass

    def progress(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())) or "nothing yet"

    # ------------------------------------------------------------ one message
    async def handle(self, msg) -> None:
        if M_INFLIGHT is not None:
            M_INFLIGHT.inc()
        try:
            await self._handle(msg)
        except Exception:
            log.exception("analyzer: BUG while handling a message; it will be redelivered")
            self.count("internal_errors")
            try:
                await msg.nak(delay=self.config.nak_delay_s)
            except Exception:
                pass
        finally:
            if M_INFLIGHT is not None:
                M_INFLIGHT.dec()

    async def _handle(self, msg) -> None:
        meta = msg.metadata
        seq = meta.sequence.stream
        attempts = meta.num_delivered
        try:
            event = decode_event(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            await self._deadletter(msg, seq, f"malformed event: {exc}")
            return
        if event.kind in ("moved", "removed"):
            # a removal or a move of a path outside the library is no file of ours: a forged or misrouted event
            for path in (event.path, event.old_path or event.new_path) if event.old_path or event.new_path \
                    else (event.path,):
                refusal = self.config.library.refusal(to_fs(path or ""))
                if refusal:
                    await self._deadletter(msg, seq, f"{event.kind} event for {path!r}: {refusal}")
                    return
        heartbeat = asyncio.create_task(self._heartbeat(msg))
        self.in_hand[seq] = event.path
        await self._report()  # at once when the analyzer was idle (a short file would be done before the next step)
        try:
            try:
                results = await self._results_for(event, seq, attempts)
            except Transient as exc:
                if attempts < self.max_deliver:
                    delay = min(self.config.nak_delay_s * 2 ** (attempts - 1), self.config.max_nak_delay_s)
                    log.warning("%s: %s: %s: %s; retry in %.0f s (delivery %d of %d)", event.path, exc.stage,
                                exc.code.value, exc.message, delay, attempts, self.max_deliver)
                    _inc(M_NAKS, exc.code.value)
                    self.count("naks")
                    await msg.nak(delay=delay)
                    return
                results = [AnalysisFailure(path=event.path, code=exc.code, message=exc.message, stage=exc.stage,
                                           attempts=attempts, engine=exc.engine, size=event.size,
                                           mtime_ns=event.mtime_ns, source_seq=seq, host=self.host)]
                final_term = True
            else:
                final_term = False
            for index, result in enumerate(results):
                # one message id per result of this event: a redelivery republishes nothing new
                msg_id = f"result-{seq}" if index == 0 else f"result-{seq}-{index}"
                if not await self._publish_until_stored(event, result, msg_id):
                    _inc(M_NAKS, "publish")
                    self.count("naks")
                    try:
                        await msg.nak(delay=self.config.nak_delay_s)
                    except Exception:
                        pass
                    return
                if isinstance(result, FingerprintResult) and not result.reused:
                    try:
                        await bus.cache_fingerprint(self.js, bus.fingerprint_kv_key(result.fingerprint_version,
                                                                                    result.content_id), encode(result))
                    except Exception as exc:  # a cache: a miss only costs a re-analysis later
                        log.warning("%s: KV put failed (%s); the result is published, only the reuse cache misses "
                                    "it", event.path, exc)
                self._account(event, result)
            if final_term:
                await msg.term()
            else:
                try:
                    # not ack_sync: its reply was one more round trip per file, and an ack lost with the
                    # connection is only a redelivery, whose result republishes under the same message id
                    # (deduplicated by the stream, else re-applied idempotently by the persister)
                    await msg.ack()
                except Exception as exc:
                    log.warning("%s: ack failed (%s); the event will be redelivered and deduplicated", event.path,
                                exc)
        finally:
            heartbeat.cancel()
            self.in_hand.pop(seq, None)

    async def _publish_until_stored(self, event: FileEvent, result, msg_id: str) -> bool:
        """Publish the result, retrying while the bus cannot store it (a full JetStream disk, a stream at its
        limit, a server restarting). The event is held meanwhile (the heartbeat keeps it in progress), so no
        delivery is spent and it recovers by itself once space returns. False only when asked to stop."""
        payload = encode(result)
        attempt = 0
        while True:
            try:
                await bus.publish(self.js, bus.result_subject(event.path), payload, msg_id)
                if attempt:
                    log.warning("%s: result stored after %d failed publishes", event.path, attempt)
                return True
            except bus.BusError as exc:
                if attempt == 0 or attempt % 10 == 0:
                    log.error("%s: publish result: %s; holding the event and retrying (free disk space or let the "
                              "persister catch up if a stream is full)", event.path, exc)
                attempt += 1
                if self.stopping:
                    return False
                await self.sleep(min(30.0, 0.5 * 2 ** min(attempt, 6)))

    def _account(self, event: FileEvent, result) -> None:
        t = self._type(result)
        _inc(M_PROCESSED, event.kind, t)
        self.count(t)
        if isinstance(result, FingerprintResult):
            _inc(M_ENGINE, result.engine, str(result.reused).lower())
            if M_SECONDS is not None and not result.reused:
                M_SECONDS.labels(result.engine).observe(result.timings.total_s)
            self.count("reused" if result.reused else f"engine_{result.engine}")
            if result.fallback_reason:
                self.count("fallbacks")
            log.info("%s: %s: fingerprint (%s%s%s) seq %d", result.path, event.kind, result.engine,
                     ", reused" if result.reused else "",
                     f", fallback: {result.fallback_reason}" if result.fallback_reason else "", result.source_seq)
        elif isinstance(result, AnalysisFailure):
            _inc(M_FAILURES, result.code.value)
            self.count(f"failure_{result.code.value}")
            log.warning("%s: %s: %s: %s (engine %s, attempts %d)", result.path, result.stage, result.code.value,
                        result.message.splitlines()[0] if result.message else "", result.engine, result.attempts)

    @staticmethod
    def _type(result) -> str:
        return {FingerprintResult: "fingerprint", AnalysisFailure: "failure", TrackRemoved: "removed",
                TrackMoved: "moved"}[type(result)]

    async def _heartbeat(self, msg) -> None:
        interval = max(0.5, self.ack_wait_s / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await msg.in_progress()
            except Exception as exc:
                log.debug("in_progress failed: %s", exc)

    async def _deadletter(self, msg, seq: int, reason: str) -> None:
        log.error("event seq %d on %s: %s; terminated and recorded in the dead-letter stream", seq, msg.subject,
                  reason)
        record = {"reason": reason, "stream": bus.EVENTS_STREAM, "consumer": bus.ANALYZER_CONSUMER,
                  "stream_seq": seq, "subject": msg.subject, "host": self.host, "at": time.time(),
                  "data_b64": base64.b64encode(msg.data[:65536]).decode()}
        try:
            await bus.publish(self.js, bus.deadletter_subject("malformed"), msgspec.json.encode(record),
                              f"dead-{bus.EVENTS_STREAM}-{seq}")
        except bus.BusError as exc:
            log.error("event seq %d: dead-letter publish failed (%s); will be redelivered", seq, exc)
            await msg.nak(delay=self.config.nak_delay_s)
            return
        _inc(M_FAILURES, ErrorCode.INVALID_MESSAGE.value)
        self.count("deadletter")
        await msg.term()

    # ---------------------------------------------------------------- analysis
    async def _results_for(self, event: FileEvent, seq: int, attempts: int) -> list:
        """The results of one event, in publishing order.

        A move comes as two events (``watcher/publish.py``), each answered on its own path's subject:
        the source's tombstone (``removed``, reason ``moved``) is TrackMoved, which carries the row
        across; the ``moved`` at the new path gets the new path's own outcome (a reuse by content id
        when the audio was fingerprinted, so no analysis; an analysis when the move raced the file's
        first analysis). So a file renamed while queued or being analysed never stays pending, nor
        failed at a valid path.
        """
        if event.kind == "removed" and event.reason == "moved" and event.new_path:
            return [TrackMoved(old_path=event.path, path=event.new_path, size=event.size, mtime_ns=event.mtime_ns,
                               inode=event.inode, source_seq=seq, observed_at=event.observed_at)]
        if event.kind == "removed":
            return [TrackRemoved(path=event.path, source_seq=seq, observed_at=event.observed_at,
                                 reason="excluded" if event.reason == "excluded" else "gone")]
        return [await self._analyse(event, seq, attempts)]

    def _failure(self, event: FileEvent, seq: int, attempts: int, code: ErrorCode, message: str, stage: str,
                 engine: str | None, st: os.stat_result | None = None) -> AnalysisFailure:
        return AnalysisFailure(path=event.path, code=code, message=message, stage=stage, attempts=attempts,
                               engine=engine, size=st.st_size if st else event.size,
                               mtime_ns=st.st_mtime_ns if st else event.mtime_ns, source_seq=seq, host=self.host)

    async def _analyse(self, event: FileEvent, seq: int, attempts: int):
        loop = asyncio.get_running_loop()
        path = to_fs(event.path)  # the file's own name (bytes that are not UTF-8 included); results keep the text form
        started = time.monotonic()
        refusal = self.config.library.refusal(path)
        if refusal:  # checked before anything touches the file, whoever published the event
            return self._failure(event, seq, attempts, ErrorCode.OUTSIDE_LIBRARY, refusal, "open", None)
        excluded = self.config.library.excluded(path)
        if excluded:  # never analysed; whatever the row holds is tombstoned, as the watcher would
            log.info("%s: excluded (%s): tombstoned, not analysed", event.path, excluded)
            return TrackRemoved(path=event.path, source_seq=seq, observed_at=event.observed_at, reason="excluded")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return self._failure(event, seq, attempts, ErrorCode.NOT_FOUND, "the file does not exist (any more)",
                                 "open", None)
        except (ValueError, OSError) as exc:
            if isinstance(exc, ValueError) or exc.errno == errno.ENAMETOOLONG:  # a NUL byte, an over-long name
                return self._failure(event, seq, attempts, ErrorCode.NOT_FOUND, f"no file can have this path: {exc}",
                                     "open", None)
            raise Transient(ErrorCode.IO_ERROR, f"stat: {exc}", "open") from None
        if not os.path.isfile(path):
            return self._failure(event, seq, attempts, ErrorCode.NOT_A_FILE, "not a regular file", "open", None, st)
        cid = tags = None
        if st.st_size > 0:
            try:
                cid, tags = await loop.run_in_executor(None, identify, path,
                                                       started + self.config.analysis_timeout_s)
            except IdentityTimeout as exc:  # before OSError: TimeoutError is one
                raise Transient(ErrorCode.TIMEOUT, str(exc), "identity") from None
            except FileNotFoundError:
                return self._failure(event, seq, attempts, ErrorCode.NOT_FOUND, "vanished while hashing", "identity",
                                     None)
            except OSError as exc:
                raise Transient(ErrorCode.IO_ERROR, f"reading for the content id: {exc}", "identity") from None
            reused = await self._reuse(event, seq, cid, tags, st, started)
            if reused is not None:
                return reused
        outcome = await self.engines.analyse(path)
        if outcome.fallback_reason:
            _inc(M_FALLBACKS, outcome.fallback_reason.split(":")[0])
        if outcome.error is not None:
            problem = outcome.error
            if problem.code.is_transient:
                raise Transient(problem.code, problem.message, problem.stage, outcome.engine)
            return self._failure(event, seq, attempts, problem.code, problem.message, problem.stage,
                                 outcome.engine, st)
        if cid is None:  # an empty file at the stat that has audio now
            cid, tags = await loop.run_in_executor(None, identify, path, None)
        return FingerprintResult(path=event.path, fingerprint=outcome.fingerprint,
                                 fingerprint_version=outcome.fingerprint_version, engine=outcome.engine,
                                 decode=outcome.decode, timings=outcome.timings, content_id=cid, size=st.st_size,
                                 mtime_ns=st.st_mtime_ns, inode=st.st_ino, source_seq=seq,
                                 fallback_reason=outcome.fallback_reason, host=self.host, tags=tags)

    async def _reuse(self, event: FileEvent, seq: int, cid: str, tags: Tags, st: os.stat_result, started: float):
        try:
            entry = await self.kv.get(bus.fingerprint_kv_key(FINGERPRINT_VERSION, cid))
        except Exception:  # KeyNotFoundError, deleted, or the bucket is unreachable: analyse
            return None
        try:
            previous = decode_result(entry.value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        if not isinstance(previous, FingerprintResult):
            return None
        # the audio is known, the tags were read afresh with its id: a retag (same content id) updates them,
        # no analysis
        return FingerprintResult(path=event.path, fingerprint=previous.fingerprint,
                                 fingerprint_version=previous.fingerprint_version, engine=previous.engine,
                                 decode=previous.decode, timings=Timings(total_s=time.monotonic() - started),
                                 content_id=cid, size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino,
                                 source_seq=seq, reused=True, host=self.host, tags=tags)
