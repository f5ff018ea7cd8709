"""The persister service: results stream -> SQL.

Phases of one batch:

1. fetch up to ``batch`` messages from the durable pull consumer ``persister``
   (:func:`trackprint.bus.fetch_lean`; nothing waiting is idle, not an error);
2. decode them and check every result's ``source_seq`` against the events stream
   (:mod:`trackprint.persister.sources`);
3. ``Store.apply`` the whole batch in ONE transaction, in the store's own process
   (:mod:`trackprint.persister.store_process`; validate inside; invalid messages become
   ``invalid_message`` failure rows of the same transaction);
4. only after the commit: ``ack()`` every message, then one flush (a PING the server answers
   after it has read every ack before it).

The loop is a two-stage pipeline (:meth:`PersisterService.step`): while batch N
is applied and acked (3-4, the database's work, in the store's process), batch N+1
is fetched and checked (1-2, the bus's work, on the event loop): two cores. Batches are still
applied one at a time and in order, and each is acked only after its own commit.

When the database cannot take writes (down, locked, disk full, read-only),
nothing is acked and nothing is nak'ed: the batch is held, kept alive with
``in_progress`` so that it spends no delivery, the error is logged with its
reason and reported to ``status``, and fetching stops until a probe *write*
commits (a ``SELECT`` succeeds on a full disk); then the same batch is applied.
The next batch, fetched meanwhile by the pipeline, is kept in progress with it.
An error that is not about availability (constraint, data, a bug) re-applies the
batch one message at a time, so a single poison message is nak'ed alone (and
ends in the dead-letter advisories after ``max_deliver``) while the rest is
persisted and acked. When idle, results whose deliveries ran out are re-driven
from the dead-letter stream (:meth:`PersisterService.redrive_dead_letters`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exc as sa_exc

from trackprint import bus
from trackprint.contracts import decode_result
from trackprint.paths import Library
from trackprint.persister.db import redact
from trackprint.persister.sources import EventSources
from trackprint.persister.store import BatchSummary, Meta
from trackprint.persister.store_process import StoreProcess, StoreProcessDied
from trackprint.service import Service, host_name

log = logging.getLogger("trackprint.persister")

HEARTBEAT_S = 5.0  # in_progress on held messages at least this often (ack_wait is 60 s)

# Errors that mean "the database is not reachable / not writable right now" (or the store's process died:
# the same handling, hold the batch until a probe write commits).
UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, StoreProcessDied)


class Metrics:
    """Small set of counters, mirrored in a prometheus_client registry of their own.

    Their own registry, not the default one: several PersisterService objects
    can live in one process (tests, replay) without clashing metric names.
    The service skeleton serves it when a metrics port is given.
    """

    NAMES = {
        "persisted": "fingerprints written",
        "failures_recorded": "analysis failures recorded",
        "invalid": "invalid results messages recorded as invalid_message failures",
        "stale": "messages older than the row's last_source_seq (no change)",
        "removed": "tombstones written",
        "moved": "moves applied",
        "db_errors": "batches not persisted because of a database error (nak'ed)",
        "acked": "messages acked after commit",
        "ack_errors": "acks that failed after commit (the message is redelivered; the write is idempotent)",
        "redriven": "dead-lettered results applied again once the database took writes",
    }

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter

        self.registry = CollectorRegistry()
        self.values: dict[str, int] = {name: 0 for name in self.NAMES}
        self._counters = {
            name: Counter(f"trackprint_persister_{name}", doc, registry=self.registry)
            for name, doc in self.NAMES.items()
        }

    def inc(self, name: str, n: int = 1) -> None:
        if n:
            self.values[name] += n
            self._counters[name].inc(n)

    def summary(self) -> str:
        return ", ".join(f"{name} {value}" for name, value in self.values.items())


@dataclass
class PersisterConfig:
    nats: str | list[str]
    db: str
    batch: int = 500  # measured: 100 -> 500 took the service from 2,600 to 3,800 rows/s on PostgreSQL
    batch_wait_s: float = 0.5
    metrics_port: int | None = None
    nak_delay_s: float = 2.0
    max_backoff_s: float = 30.0
    sqlite_busy_timeout_s: float = 30.0
    name: str = "trackprint-persister"
    library: Library | None = None  # when given, a result for a path outside it is recorded, never applied
    extra: dict[str, Any] = field(default_factory=dict)


class PersisterService(Service):
    name = "persister"
    work_in_hand = "the in-flight batch"

    def __init__(self, config: PersisterConfig):
        super().__init__(config.nats, connection_name=config.name)  # provides stop_event and stop()
        self.config = config
        self.metrics = Metrics()
        self.store: StoreProcess | None = None
        self.sub = None
        self.redrive = None
        self.js = None
        self.host = host_name()
        self._db_ok = True
        self._db_down_since: float | None = None
        # the pipeline (step): the next batch, fetched and checked while the previous one is applied
        self._waiting: list = []  # fetched, its checks under way
        self._ready: tuple[list, list] | None = None  # checked, waiting for the previous batch's commit

    def _backoff(self, attempt: int) -> float:
        base = min(self.config.max_backoff_s, 0.5 * 2 ** min(attempt, 10))
        return base * (0.75 + random.random() / 2)

    async def _migrate(self) -> bool:
        attempt = 0
        while not self.stop_event.is_set():
            try:
                await self.store.migrate()
                log.info("database %s at schema %s", redact(self.config.db), await self.store.current_revision())
                return True
            except UNAVAILABLE as exc:
                delay = self._backoff(attempt)
                attempt += 1
                log.error("database %s unavailable at start (%s); retrying in %.1f s",
                          redact(self.config.db), _reason(exc), delay)
                await self.sleep(delay)
        return False

    async def _hold_until_writable(self, msgs: list, reason: str) -> bool:
        """Keep ``msgs`` unacked and in progress (no redelivery is spent) until a probe write commits.

        True when the database takes writes again, False when a stop was asked meanwhile (the batch is
        then nak'ed so that the next persister gets it at once).
        """
        await self._report(db_ok=False, reason=reason)
        attempt = 0
        while not self.stop_event.is_set():
            delay = min(self._backoff(attempt), HEARTBEAT_S)
            attempt += 1
            await self.sleep(delay)
            await self._in_progress(msgs + self._waiting + (self._ready[0] if self._ready else []))
            try:
                await self.store.probe_write(self.host)
            except UNAVAILABLE as exc:
                reason = _reason(exc)
                if attempt == 1 or attempt % 10 == 0:
                    log.error("database %s still unavailable (%s); %d results held on the stream, unacked",
                              redact(self.config.db), reason, len(msgs))
                await self._report(db_ok=False, reason=reason)
                continue
            log.warning("database %s takes writes again after %d probe(s); resuming", redact(self.config.db), attempt)
            await self._report(db_ok=True)
            return True
        await self._nak_all(msgs)
        return False

    async def _in_progress(self, msgs: list) -> None:
        for msg in msgs:
            try:
                await msg.in_progress()
            except Exception as exc:  # disconnected: the message comes back after ack_wait, applied idempotently
                log.debug("in_progress: %s", exc)

    async def _report(self, *, db_ok: bool, reason: str | None = None) -> None:
        """The database's state for `trackprint status` (the status KV bucket, key persister.<host>)."""
        if db_ok == self._db_ok and db_ok:
            return
        if not db_ok and self._db_down_since is None:
            self._db_down_since = time.time()
        report = {"db_ok": db_ok, "reason": reason, "since": self._db_down_since, "updated_at": time.time(),
                  "db": redact(self.config.db)}
        self._db_ok = db_ok
        if db_ok:
            self._db_down_since = None
        if self.js is None:
            return
        try:
            kv = await bus.status_kv(self.js)
            await kv.put(f"persister.{self.host}", json.dumps(report).encode())
        except Exception as exc:  # a report, never a reason to stop
            log.debug("status report: %s", exc)

    # -- the service skeleton's hooks (trackprint.service) --------------------------------
    async def prepare(self) -> bool:
        """The schema first: results are only worth fetching once they can be written."""
        self.store = StoreProcess(self.config.db, sqlite_busy_timeout_s=self.config.sqlite_busy_timeout_s,
                                  library=self.config.library)
        if self.config.library is None:
            log.warning("persister: no --library given: result paths are not checked against the library roots, "
                        "and a removal with reason 'excluded' is accepted for any event of its path (no excludes "
                        "to judge it by)")
        return await self._migrate()

    async def setup(self, js) -> None:
        self.js = js
        self.sub = await bus.bind_persister(js)
        self.redrive = await bus.bind_redrive(js)
        await self._report(db_ok=True)
        log.info("persister running: %s -> %s (batch %d, wait %.2f s)",
                 bus.RESULTS_STREAM, redact(self.config.db), self.config.batch, self.config.batch_wait_s)

    async def step(self) -> None:
        """One batch committed and acked while the next one is fetched and checked.

        The database work runs in the store's process and the bus work (fetch, source-event look-ups) on
        the event loop, so the two use two cores. Batches are still applied one
        after the other, each acked only after its own commit."""
        batch, self._ready = self._ready, None
        if batch is None:  # nothing fetched ahead: the pipeline starts again (or the bus is idle)
            batch = await self._next_batch()
        if batch is None:
            if self.redrive is not None:
                await self.redrive_dead_letters()
            return
        committing = asyncio.create_task(self._apply_checked(*batch))
        try:
            if not self.stopping:
                self._ready = await self._next_batch()
        except BaseException:  # a second signal (cancelled) or a closed connection: unacked, so redelivered
            committing.cancel()
            raise
        await committing

    async def finish_work_in_hand(self) -> None:
        """A batch fetched and checked before the stop was asked is committed and acked too."""
        batch, self._ready = self._ready, None
        if batch is not None:
            await self._apply_checked(*batch)

    async def _next_batch(self) -> tuple[list, list] | None:
        """The next batch and its checked items (None: nothing waiting, or its checks failed and it was nak'ed).

        Until it is applied it is in hand: ``_hold_until_writable`` keeps it in progress with the held one."""
        msgs = await self.fetch(self.sub, self.config.batch, timeout=self.config.batch_wait_s, lean=True)
        if not msgs:
            return None
        self._waiting = msgs
        try:
            return await self._checked(msgs)
        finally:
            self._waiting = []

    def progress(self) -> str:
        return self.metrics.summary()

    async def teardown(self) -> None:
        if self.store is not None:
            await self.store.close()

    def subscriptions(self) -> list:
        return [sub for sub in (self.sub, self.redrive) if sub is not None]

    @property
    def metrics_registry(self):
        return self.metrics.registry

    # -- one batch ------------------------------------------------------------------------
    async def process(self, msgs: list) -> None:
        """Check, apply in one transaction, then ack one batch (replay's way in; the loop pipelines the two
        halves, :meth:`step`)."""
        batch = await self._checked(msgs)
        if batch is not None:
            await self._apply_checked(*batch)

    async def _checked(self, msgs: list) -> tuple[list, list] | None:
        """``msgs`` and their decoded items with the source-event checks done; None when the bus cannot
        answer: nothing is applied unchecked, the batch is nak'ed and comes back."""
        try:
            return msgs, await self._with_sources([(m.data, _meta(m)) for m in msgs])
        except Exception as exc:
            log.error("cannot check the source events of %s (%s: %s); the batch stays on the stream", _seqs(msgs),
                      type(exc).__name__, exc)
            await self._nak_all(msgs)
            return None

    async def _apply_checked(self, msgs: list, items: list) -> None:
        """One transaction for the batch, then its acks (only after the commit)."""
        seqs = _seqs(msgs)
        started = time.monotonic()
        while True:
            try:
                summary = await self.store.apply(items)
                break
            except UNAVAILABLE as exc:
                self.metrics.inc("db_errors")
                log.error("DATABASE UNAVAILABLE: batch of %d (%s) NOT persisted; it stays on the stream, unacked, "
                          "until the database takes writes again: %s", len(msgs), seqs, _reason(exc))
                if not await self._hold_until_writable(msgs, _reason(exc)):
                    return
            except Exception as exc:  # constraint/data error or a bug: isolate the poison message
                self.metrics.inc("db_errors")
                log.error("batch of %d (%s) failed (%s: %s); applying one message at a time", len(msgs), seqs,
                          type(exc).__name__, _reason(exc), exc_info=not isinstance(exc, sa_exc.DBAPIError))
                await self._one_by_one(msgs, items)
                return
        self._account(summary)
        await self._ack_all(msgs)
        log.info("batch of %d (%s) committed in %.3f s: %d fingerprints, %d failures, %d invalid, %d stale",
                 len(msgs), seqs, time.monotonic() - started, summary.persisted, summary.failures,
                 summary.invalid, summary.stale)

    async def _one_by_one(self, msgs: list, items: list) -> None:
        for msg, item in zip(msgs, items):
            try:
                summary = await self.store.apply([item])
            except UNAVAILABLE as exc:
                self.metrics.inc("db_errors")
                log.error("DATABASE UNAVAILABLE on results seq %d; holding the rest of the batch: %s",
                          item[1].stream_seq, _reason(exc))
                rest = msgs[msgs.index(msg):]
                if await self._hold_until_writable(rest, _reason(exc)):
                    await self._one_by_one(rest, items[items.index(item):])
                return
            except Exception as exc:
                self.metrics.inc("db_errors")
                log.error("results seq %d (delivery %d) cannot be persisted, nak'ing (dead-letter after max_deliver): "
                          "%s: %s", item[1].stream_seq, item[1].num_delivered, type(exc).__name__, _reason(exc),
                          exc_info=not isinstance(exc, sa_exc.DBAPIError))
                await self._nak_all([msg])
                continue
            self._account(summary)
            await self._ack_all([msg])

    async def _with_sources(self, items: list[tuple[bytes, Meta]]) -> list[tuple[bytes, Meta]]:
        """Each item with its ``source_seq`` checked against the events stream
        (:mod:`trackprint.persister.sources`): the raw bytes again, the problem found in its :class:`Meta`
        (the store's process decodes them itself: bytes cross the pipe for a tenth of a decoded result)."""
        messages = []
        for data, _ in items:
            try:
                messages.append(decode_result(data))
            except Exception:  # any decode problem is the store's to record, with the raw bytes
                messages.append(None)
        problems = await EventSources(self.js, library=self.config.library).problems(messages)
        return [(data, Meta(meta.stream_seq, meta.num_delivered, problem))
                for (data, meta), problem in zip(items, problems)]

    def _account(self, summary: BatchSummary) -> None:
        m = self.metrics
        m.inc("persisted", summary.persisted)
        m.inc("failures_recorded", summary.failures)
        m.inc("invalid", summary.invalid)
        m.inc("stale", summary.stale)
        m.inc("removed", summary.count("removed", "applied"))
        m.inc("moved", summary.count("moved", "applied"))
        for o in summary.outcomes:
            if o.kind == "invalid":
                log.error("%s: validate: invalid_message: %s (source seq %d); recorded in analysis_failures",
                          o.path or "<path unreadable>", o.detail, o.seq)
            elif o.kind == "failure" and o.action == "applied":
                log.warning("%s: %s (source seq %d); recorded", o.path, o.detail, o.seq)
            elif o.action == "stale":
                log.info("%s: %s ignored: %s (source seq %d)", o.path, o.kind, o.detail, o.seq)
            else:
                log.debug("%s: %s %s (source seq %d)", o.path, o.kind, o.detail, o.seq)

    async def _ack_all(self, msgs: list) -> None:
        """Acknowledge a committed batch: every ack written, then one flush, whose PONG comes after the
        server has read them all (one round trip per batch; a per-message ``ack_sync`` was a third of the
        service's time). An ack lost anyway, with the connection, is a redelivery, and re-applying the
        same results message changes nothing (persister/store.py)."""
        for msg in msgs:
            try:
                await msg.ack()
                self.metrics.inc("acked")
            except Exception as exc:
                self.metrics.inc("ack_errors")
                log.warning("ack of results seq %s failed after commit (%s: %s); it will be redelivered and "
                            "re-applied idempotently", _meta(msg).stream_seq, type(exc).__name__, exc)
        if msgs:
            try:
                await msgs[0]._client.flush(timeout=10)  # nats-py's Msg keeps its connection as _client
            except Exception as exc:
                log.warning("flushing the acks of results seq %s.. failed (%s: %s); unconfirmed ones are "
                            "redelivered and re-applied idempotently", _meta(msgs[0]).stream_seq,
                            type(exc).__name__, exc)

    async def _nak_all(self, msgs: list) -> None:
        for msg in msgs:
            try:
                await msg.nak(delay=self.config.nak_delay_s)
            except Exception as exc:
                log.warning("nak of results seq %s failed (%s); it is redelivered after ack_wait",
                            _meta(msg).stream_seq, exc)


    # -- dead letters back in ---------------------------------------------------------------
    async def redrive_dead_letters(self) -> None:
        """Results that exhausted their deliveries (the MAX_DELIVERIES advisories in the dead-letter
        stream) are applied again from the results stream, now that the database takes writes."""
        if not self._db_ok:
            return
        advisories = await self.fetch(self.redrive, 50, timeout=0.05)
        for advisory in advisories:
            try:
                seq = int(json.loads(advisory.data)["stream_seq"])
                original = await self.js.get_msg(bus.RESULTS_STREAM, seq)
            except Exception as exc:  # the original is gone (limits) or the advisory is unreadable: say so, move on
                log.error("dead letter %s cannot be re-driven (%s: %s); it stays in %s", advisory.data[:200],
                          type(exc).__name__, exc, bus.DEADLETTER_STREAM)
                await advisory.ack()
                continue
            try:
                checked = await self._with_sources([(original.data, Meta(stream_seq=seq))])
                summary = await self.store.apply(checked)
            except UNAVAILABLE as exc:
                await advisory.nak(delay=self.config.nak_delay_s)
                await self._report(db_ok=False, reason=_reason(exc))
                return
            except Exception as exc:
                log.error("results seq %d from the dead-letter stream still cannot be persisted (%s: %s); it stays "
                          "in %s", seq, type(exc).__name__, _reason(exc), bus.DEADLETTER_STREAM)
                await advisory.ack()
                continue
            self._account(summary)
            self.metrics.inc("redriven")
            log.warning("results seq %d re-driven from the dead-letter stream and committed", seq)
            await advisory.ack()


def _meta(msg) -> Meta:
    try:
        md = msg.metadata
        return Meta(stream_seq=int(md.sequence.stream), num_delivered=int(md.num_delivered))
    except Exception:
        return Meta()


def _seqs(msgs: list) -> str:
    return f"results seq {_meta(msgs[0]).stream_seq}..{_meta(msgs[-1]).stream_seq}"


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text_ = str(orig if orig is not None else exc).strip().splitlines()
    return f"{type(orig or exc).__name__}: {text_[0] if text_ else ''}"


async def run_persister(config: PersisterConfig) -> int:
    """The persister as this process's service: signal handlers, and metrics when the config names a port."""
    return await PersisterService(config).run(install_signal_handlers=True, metrics_port=config.metrics_port)
