"""Reading a stream from its start: temporary consumers, and the fold of the events stream.

Replay reads history through a *new* durable consumer with deliver policy
``all`` (a deliver policy cannot be changed on an existing consumer), which
expires on its own an hour after its reader dies. The fold of the events
stream ("the latest event per path, following moves, dropping removals") is
what re-analysis republishes and what the pipeline benchmark reads back.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Callable

import nats.errors
from nats.js import api

from trackprint import bus
from trackprint.contracts import FileEvent, decode_event, encode
from trackprint.fingerprint import FINGERPRINT_VERSION

log = logging.getLogger("trackprint.bus.fold")

PROGRESS_EVERY_S = 2.0


async def temporary_consumer(js, stream: str, subjects: str, prefix: str, *, max_deliver: int = -1) -> str:
    """A new durable consumer reading ``stream`` from its first message; its name."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    await js.add_consumer(stream, api.ConsumerConfig(
        durable_name=name,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        filter_subject=subjects,
        ack_wait=120,
        max_deliver=max_deliver,
        max_ack_pending=10_000,
        inactive_threshold=3600,  # a reader that dies leaves nothing behind for long
    ))
    return name


async def drained(js, stream: str, consumer: str) -> bool:
    """Nothing left to deliver and nothing in flight (a message past max_deliver counts as done). A reader
    stops on this, never on reaching a sequence number: the messages it would wait for may be gone (replaced
    by a newer message of their file, or lost with a damaged store)."""
    info = await js.consumer_info(stream, consumer)
    return info.num_pending == 0 and info.num_ack_pending == 0


async def delete_consumer(js, stream: str, name: str) -> None:
    try:
        await js.delete_consumer(stream, name)
    except Exception as exc:  # it expires by itself (inactive_threshold)
        log.debug("delete consumer %s on %s: %s", name, stream, exc)


def fold_event(latest: dict[str, FileEvent], event: FileEvent) -> None:
    """Apply one event to the map path -> latest event (moves follow the file, removals drop it)."""
    if event.kind == "removed":
        latest.pop(event.path, None)
    elif event.kind == "moved":
        latest.pop(event.old_path or "", None)
        latest[event.path] = event
    else:
        latest[event.path] = event


async def latest_events(js, stream: str = bus.EVENTS_STREAM, subjects: str = bus.EVENTS_SUBJECTS) -> dict[str, FileEvent]:
    """The fold of the whole events stream: the latest event of every file that still exists."""
    name = await temporary_consumer(js, stream, subjects, "fold")
    sub = await js.pull_subscribe_bind(durable=name, stream=stream)
    latest: dict[str, FileEvent] = {}
    try:
        while True:
            try:
                msgs = await sub.fetch(500, timeout=1)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                msgs = []
            if not msgs and await drained(js, stream, name):
                break
            for m in msgs:
                try:
                    fold_event(latest, decode_event(m.data))
                except Exception:
                    pass  # malformed events are the analyzers' dead letters, not the fold's
                await m.ack()
    finally:
        await sub.unsubscribe()
        await delete_consumer(js, stream, name)
    return latest


async def republish_for_reanalysis(js, *, rate_per_s: float, max_lag: int,
                                   say: Callable[[str], None] = log.warning) -> int:
    """A ``changed`` event for every current file (the fold), throttled by rate and by the analyzers' backlog.

    Each carries a ``Nats-Msg-Id`` of the current fingerprint version, so running it twice within the
    duplicate window publishes nothing new. Returns the number published.
    """
    latest = await latest_events(js)
    say(f"reanalyse: {len(latest)} current files in the events stream; republishing for version {FINGERPRINT_VERSION}")
    published = 0
    started = shown = time.monotonic()
    for path in sorted(latest):
        old = latest[path]
        while (await js.consumer_info(bus.EVENTS_STREAM, bus.ANALYZER_CONSUMER)).num_pending > max_lag:
            await asyncio.sleep(1.0)  # never flood the analyzers
        event = FileEvent(kind="changed", path=old.path, root=old.root, size=old.size, mtime_ns=old.mtime_ns,
                          inode=old.inode, origin="manual")
        await bus.publish(js, bus.event_subject(event.path), encode(event),
                          f"reanalyse-v{FINGERPRINT_VERSION}-{event.msg_id()}")
        published += 1
        await asyncio.sleep(1.0 / max(rate_per_s, 0.1))
        if time.monotonic() - shown >= PROGRESS_EVERY_S:
            shown = time.monotonic()
            say(f"reanalyse: published {published}/{len(latest)}; `trackprint status` shows stale going down")
    say(f"reanalyse: published {published} events in {time.monotonic() - started:.1f} s; "
        "the analyzers take it from here")
    return published
