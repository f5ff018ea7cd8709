"""Rebuilding a database from the results stream: the persister's own processing, over the whole history.

A new temporary consumer reads the results stream from its first message;
every batch goes through :meth:`PersisterService.process`, exactly as live
results do: one transaction per batch, commit, then ack; a database outage
naks the batch and waits for the database with backoff; a poison message is
isolated and retried alone, and given up after ``max_deliver`` deliveries
(counted and reported). Writes are idempotent and last-write-wins by source
sequence, so replaying into an empty database gives the rows the original
has, and replaying twice changes nothing. Nothing is re-analysed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable

from trackprint import bus
from trackprint.bus.fold import delete_consumer, drained, temporary_consumer
from trackprint.persister.db import redact
from trackprint.persister.service import PersisterConfig, PersisterService
from trackprint.persister.store_process import StoreProcess

log = logging.getLogger("trackprint.persister.replay")

PROGRESS_EVERY_S = 2.0
MAX_DELIVER = 5  # a message that cannot be stored after this many tries is reported, not retried forever


@dataclass
class ReplaySummary:
    messages: int
    persisted: int
    failures: int
    invalid: int
    not_persisted: int  # messages given up after MAX_DELIVER deliveries (see the log for each)
    seconds: float


async def replay_results(servers: str, db_url: str, *, batch_size: int = 200,
                         say: Callable[[str], None] = log.warning) -> ReplaySummary:
    service = PersisterService(PersisterConfig(nats=servers, db=db_url, batch=batch_size, nak_delay_s=1.0))
    service.store = StoreProcess(db_url)
    await service.store.migrate()
    nc = await bus.connect(servers, "trackprint-replay")
    js = nc.jetstream()
    service.js = js  # the source-event checks read the events stream
    info = await js.stream_info(bus.RESULTS_STREAM)
    total = info.state.messages
    say(f"replay: {total} result messages (up to sequence {info.state.last_seq}) from {servers} "
        f"into {redact(db_url)}")
    name = await temporary_consumer(js, bus.RESULTS_STREAM, bus.RESULTS_SUBJECTS, "replay", max_deliver=MAX_DELIVER)
    sub = await js.pull_subscribe_bind(durable=name, stream=bus.RESULTS_STREAM)
    started = shown = time.monotonic()
    try:
        while True:
            msgs = await bus.fetch(sub, batch_size, timeout=1)
            if msgs:
                await service.process(msgs)
            elif await drained(js, bus.RESULTS_STREAM, name):
                break
            if time.monotonic() - shown >= PROGRESS_EVERY_S:
                shown = time.monotonic()
                done = service.metrics.values["acked"]
                say(f"replay: {done}/{total} ({100 * done / max(total, 1):.0f}%), "
                    f"{done / (shown - started):.0f} msg/s")
    finally:
        await sub.unsubscribe()
        await delete_consumer(js, bus.RESULTS_STREAM, name)
        await bus.close(nc)
        await service.store.close()
    v = service.metrics.values
    summary = ReplaySummary(messages=v["acked"], persisted=v["persisted"], failures=v["failures_recorded"],
                            invalid=v["invalid"], not_persisted=max(0, total - v["acked"]),
                            seconds=time.monotonic() - started)
    say(f"replay: done: {summary.messages} messages applied ({summary.persisted} fingerprints written, "
        f"{summary.failures} failures, {summary.invalid} invalid recorded) in {summary.seconds:.1f} s"
        + (f"; {summary.not_persisted} NOT persisted after {MAX_DELIVER} tries (see the errors above)"
           if summary.not_persisted else ""))
    return summary

