"""The persister service: results stream -> SQL.

Phases of one loop turn:

1. fetch up to ``batch`` messages from the durable pull consumer ``persister``
   (``fetch`` raises TimeoutError when nothing is waiting: that is idle, not an error);
2. ``Store.apply`` the whole batch in ONE transaction (decode + validate inside;
   invalid messages become ``invalid_message`` failure rows of the same transaction);
3. only after the commit: ``ack_sync()`` every message.

On a database error nothing is acked: every message of the batch is nak'ed
with a delay, the error is logged with its reason, and the service stops
fetching until the database answers again (probing with exponential backoff),
so an outage costs each message one delivery, not ``max_deliver`` of them.
An error that is not about availability (constraint, data, a bug) re-applies the
batch one message at a time, so a single poison message is nak'ed alone (and
ends in the dead-letter advisories after ``max_deliver``) while the rest is
persisted and acked.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from trackprint import bus
from trackprint.persister.db import redact
from trackprint.persister.store import BatchSummary, Meta, Store
from trackprint.service import Service

log = logging.getLogger("trackprint.persister")

# Errors that mean "the database is not reachable / not writable right now".
UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)


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
    batch: int = 100
    batch_wait_s: float = 0.5
    metrics_port: int | None = None
    nak_delay_s: float = 2.0
    max_backoff_s: float = 30.0
    sqlite_busy_timeout_s: float = 30.0
    name: str = "trackprint-persister"
    extra: dict[str, Any] = field(default_factory=dict)


class PersisterService(Service):
    name = "persister"
    work_in_hand = "the in-flight batch"

    def __init__(self, config: PersisterConfig):
        super().__init__(config.nats, connection_name=config.name)  # provides stop_event and stop()
        self.config = config
        self.metrics = Metrics()
        self.store: Store | None = None
        self.sub = None

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop_event.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    def _backoff(self, attempt: int) -> float:
        base = min(self.config.max_backoff_s, 0.5 * 2 ** min(attempt, 10))
        return base * (0.75 + random.random() / 2)

    async def _migrate(self) -> bool:
        attempt = 0
        while not self.stop_event.is_set():
            try:
                await asyncio.to_thread(self.store.migrate)
                log.info("database %s at schema %s", redact(self.config.db), await asyncio.to_thread(self.store.current_revision))
                return True
            except UNAVAILABLE as exc:
                delay = self._backoff(attempt)
                attempt += 1
                log.error("database %s unavailable at start (%s); retrying in %.1f s",
                          redact(self.config.db), _reason(exc), delay)
                await self._sleep(delay)
        return False

    async def _wait_for_db(self) -> None:
        """Probe until the database accepts a write transaction again (or stop)."""
        attempt = 0
        while not self.stop_event.is_set():
            delay = self._backoff(attempt)
            attempt += 1
            await self._sleep(delay)
            try:
                await asyncio.to_thread(self._probe)
                log.warning("database %s is back after %d probe(s); resuming", redact(self.config.db), attempt)
                return
            except UNAVAILABLE as exc:
                log.error("database %s still unavailable (%s); next probe in %.1f s",
                          redact(self.config.db), _reason(exc), self._backoff(attempt))

    def _probe(self) -> None:
        with self.store.engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE, i.e. the write lock
            conn.execute(text("SELECT 1"))

    # -- the service skeleton's hooks (trackprint.service) --------------------------------
    async def prepare(self) -> bool:
        """The schema first: results are only worth fetching once they can be written."""
        self.store = Store(self.config.db, sqlite_busy_timeout_s=self.config.sqlite_busy_timeout_s)
        return await self._migrate()

    async def setup(self, js) -> None:
        self.sub = await bus.bind_persister(js)
        log.warning("persister running: %s -> %s (batch %d, wait %.2f s)",
                    bus.RESULTS_STREAM, redact(self.config.db), self.config.batch, self.config.batch_wait_s)

    async def step(self) -> None:
        msgs = await self.fetch(self.sub, self.config.batch, timeout=self.config.batch_wait_s)
        if msgs:
            await self.process(msgs)  # finishes even when a stop was asked meanwhile

    def progress(self) -> str:
        return self.metrics.summary()

    async def teardown(self) -> None:
        if self.store is not None:
            self.store.close()

    def subscriptions(self) -> list:
        return [self.sub]

    @property
    def metrics_registry(self):
        return self.metrics.registry

    # -- one batch ------------------------------------------------------------------------
    async def process(self, msgs: list) -> None:
        items = [(m.data, _meta(m)) for m in msgs]
        seqs = f"results seq {items[0][1].stream_seq}..{items[-1][1].stream_seq}"
        started = time.monotonic()
        try:
            summary = await asyncio.to_thread(self.store.apply, items)
        except UNAVAILABLE as exc:
            self.metrics.inc("db_errors")
            log.error("DATABASE ERROR: batch of %d (%s) NOT persisted, nak'ing every message (delay %.1f s): %s",
                      len(msgs), seqs, self.config.nak_delay_s, _reason(exc))
            await self._nak_all(msgs)
            await self._wait_for_db()
            return
        except Exception as exc:  # constraint/data error or a bug: isolate the poison message
            self.metrics.inc("db_errors")
            log.error("batch of %d (%s) failed (%s: %s); applying one message at a time",
                      len(msgs), seqs, type(exc).__name__, _reason(exc), exc_info=not isinstance(exc, sa_exc.DBAPIError))
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
                summary = await asyncio.to_thread(self.store.apply, [item])
            except UNAVAILABLE as exc:
                self.metrics.inc("db_errors")
                log.error("DATABASE ERROR on results seq %d, nak'ing: %s", item[1].stream_seq, _reason(exc))
                await self._nak_all([msg])
                continue
            except Exception as exc:
                self.metrics.inc("db_errors")
                log.error("results seq %d (delivery %d) cannot be persisted, nak'ing (dead-letter after max_deliver): "
                          "%s: %s", item[1].stream_seq, item[1].num_delivered, type(exc).__name__, _reason(exc),
                          exc_info=not isinstance(exc, sa_exc.DBAPIError))
                await self._nak_all([msg])
                continue
            self._account(summary)
            await self._ack_all([msg])

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
        for msg in msgs:
            try:
                await msg.ack_sync()
                self.metrics.inc("acked")
            except Exception as exc:
                self.metrics.inc("ack_errors")
                log.warning("ack of results seq %s failed after commit (%s: %s); it will be redelivered and "
                            "re-applied idempotently", _meta(msg).stream_seq, type(exc).__name__, exc)

    async def _nak_all(self, msgs: list) -> None:
        for msg in msgs:
            try:
                await msg.nak(delay=self.config.nak_delay_s)
            except Exception as exc:
                log.warning("nak of results seq %s failed (%s); it is redelivered after ack_wait",
                            _meta(msg).stream_seq, exc)


def _meta(msg) -> Meta:
    try:
        md = msg.metadata
        return Meta(stream_seq=int(md.sequence.stream), num_delivered=int(md.num_delivered))
    except Exception:
        return Meta()


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text_ = str(orig if orig is not None else exc).strip().splitlines()
    return f"{type(orig or exc).__name__}: {text_[0] if text_ else ''}"


async def run_persister(config: PersisterConfig) -> int:
    """The persister as this process's service: signal handlers, and metrics when the config names a port."""
    return await PersisterService(config).run(install_signal_handlers=True, metrics_port=config.metrics_port)
