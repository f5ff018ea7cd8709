"""``trackprint replay``: rebuild a database from the results stream, or re-analyse from the events stream.

``trackprint replay --db URL`` reads the results stream from its first
message through a new, temporary durable consumer and applies every message
with the persister's own store (one transaction per batch, commit, then ack).
Writes are idempotent and last-write-wins by source sequence, so replaying
into an empty database gives the same rows (fingerprints, failures,
tombstones) as the original, and replaying twice changes nothing. Nothing is
re-analysed.

``trackprint replay --reanalyse`` reads the events stream, keeps the latest
event per path (following moves, dropping removed files), and republishes a
``changed`` event for each remaining path, throttled (``--rate`` per second,
and never more than ``--max-lag`` events waiting for the analyzers). The
analyzers then analyse with the current fingerprint_version; the stale count
in ``trackprint status`` goes down as results land.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid

from trackprint.config import add_location_arguments, resolve_db, resolve_nats

PROGRESS_EVERY_S = 2.0


def register(subparsers) -> None:
    parser = subparsers.add_parser("replay", help="rebuild a database from the results stream (or --reanalyse)")
    add_location_arguments(parser, nats=True)
    parser.add_argument("--reanalyse", action="store_true",
                        help="re-run analysis of every current file from the events stream")
    parser.add_argument("--batch", type=int, default=200, help="messages per database transaction (default 200)")
    parser.add_argument("--rate", type=float, default=50.0, help="--reanalyse: events published per second (default 50)")
    parser.add_argument("--max-lag", type=int, default=500,
                        help="--reanalyse: pause while more than this many events wait for analyzers (default 500)")
    parser.set_defaults(func=run)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    servers = resolve_nats(args)
    if not servers:
        say("replay: no NATS URL: give --nats URL (or --data-dir of a `trackprint up` run)")
        return 2
    try:
        if args.reanalyse:
            return asyncio.run(reanalyse(servers, args))
        return asyncio.run(replay_results(servers, resolve_db(args), args.batch))
    except KeyboardInterrupt:
        say("replay: interrupted; run it again: it is idempotent")
        return 130


async def _temporary_consumer(js, stream: str, subjects: str, prefix: str) -> str:
    from nats.js import api

    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    await js.add_consumer(stream, api.ConsumerConfig(
        durable_name=name,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        filter_subject=subjects,
        ack_wait=120,
        max_ack_pending=10_000,
        inactive_threshold=3600,  # a replay that dies leaves nothing behind for long
    ))
    return name


async def replay_results(servers: str, db_url: str, batch_size: int) -> int:
    import nats.errors

    from trackprint.persister.store import Meta, Store
    from trackprint import bus
    from trackprint.db import redact

    store = Store(db_url)
    store.migrate()
    nc = await bus.connect(servers, "trackprint-replay")
    js = nc.jetstream()
    info = await js.stream_info(bus.RESULTS_STREAM)
    last, total = info.state.last_seq, info.state.messages
    say(f"replay: {total} result messages (up to sequence {last}) from {servers} into {redact(db_url)}")
    name = await _temporary_consumer(js, bus.RESULTS_STREAM, bus.RESULTS_SUBJECTS, "replay")
    sub = await js.pull_subscribe_bind(durable=name, stream=bus.RESULTS_STREAM)
    done = persisted = failures = invalid = 0
    started = shown = time.monotonic()
    try:
        seen_seq = 0
        while seen_seq < last:
            try:
                msgs = await sub.fetch(batch_size, timeout=2)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                continue
            summary = await asyncio.to_thread(
                store.apply,
                [(m.data, Meta(stream_seq=m.metadata.sequence.stream, num_delivered=m.metadata.num_delivered)) for m in msgs],
            )
            for m in msgs:  # acked only after the commit
                await m.ack()
            seen_seq = max(seen_seq, *(m.metadata.sequence.stream for m in msgs))
            done += len(msgs)
            persisted += summary.persisted
            failures += summary.failures
            invalid += summary.invalid
            if time.monotonic() - shown >= PROGRESS_EVERY_S:
                shown = time.monotonic()
                rate = done / (shown - started)
                say(f"replay: {done}/{total} ({100 * done / max(total, 1):.0f}%), {rate:.0f} msg/s")
    finally:
        await sub.unsubscribe()
        try:
            await js.delete_consumer(bus.RESULTS_STREAM, name)
        except Exception:
            pass
        await bus.close(nc)
        store.close()
    say(f"replay: done: {done} messages applied ({persisted} fingerprints written, {failures} failures, "
        f"{invalid} invalid recorded) in {time.monotonic() - started:.1f} s")
    return 0


async def latest_events(js, stream: str, subjects: str) -> dict:
    """Latest event per path, following moves and dropping removed files."""
    import nats.errors

    from trackprint.contracts import decode_event

    info = await js.stream_info(stream)
    last = info.state.last_seq
    name = await _temporary_consumer(js, stream, subjects, "reanalyse")
    sub = await js.pull_subscribe_bind(durable=name, stream=stream)
    latest: dict = {}
    seen = 0
    try:
        while seen < last:
            try:
                msgs = await sub.fetch(500, timeout=2)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                continue
            for m in msgs:
                seen = max(seen, m.metadata.sequence.stream)
                try:
                    event = decode_event(m.data)
                except Exception:
                    continue  # malformed events are the analyzers' dead letters, not ours
                if event.kind == "removed":
                    latest.pop(event.path, None)
                elif event.kind == "moved":
                    latest.pop(event.old_path, None)
                    latest[event.path] = event
                else:
                    latest[event.path] = event
                await m.ack()
    finally:
        await sub.unsubscribe()
        try:
            await js.delete_consumer(stream, name)
        except Exception:
            pass
    return latest


async def reanalyse(servers: str, args) -> int:
    from trackprint import bus
    from trackprint.contracts import FileEvent, encode
    from trackprint.fingerprint import FINGERPRINT_VERSION

    nc = await bus.connect(servers, "trackprint-reanalyse")
    js = nc.jetstream()
    try:
        await bus.ensure_topology(js)
        latest = await latest_events(js, bus.EVENTS_STREAM, bus.EVENTS_SUBJECTS)
        say(f"reanalyse: {len(latest)} current files in the events stream; republishing for version {FINGERPRINT_VERSION}")
        published = 0
        started = shown = time.monotonic()
        for path in sorted(latest):
            old = latest[path]
            while True:  # throttle on the analyzers' backlog, never flood them
                info = await js.consumer_info(bus.EVENTS_STREAM, bus.ANALYZER_CONSUMER)
                if info.num_pending <= args.max_lag:
                    break
                await asyncio.sleep(1.0)
            event = FileEvent(kind="changed", path=old.path, root=old.root, size=old.size, mtime_ns=old.mtime_ns,
                              inode=old.inode, origin="manual")
            await bus.publish(js, bus.event_subject("changed"), encode(event),
                              f"reanalyse-v{FINGERPRINT_VERSION}-{event.msg_id()}")
            published += 1
            await asyncio.sleep(1.0 / max(args.rate, 0.1))
            if time.monotonic() - shown >= PROGRESS_EVERY_S:
                shown = time.monotonic()
                say(f"reanalyse: published {published}/{len(latest)}; `trackprint status` shows stale going down")
        say(f"reanalyse: published {published} events in {time.monotonic() - started:.1f} s; the analyzers take it from here")
    finally:
        await bus.close(nc)
    return 0
