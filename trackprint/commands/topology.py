"""``trackprint topology [--nats URL | --data-dir DIR]``: create or update the bus's streams, consumers and KV buckets.

On a bus with users (deploy/nats/), only ``admin`` may do this; the services only
verify what they find (``bus.ensure_topology``) and refuse to start, saying so,
when something they need is missing. Run it once as admin before the services
start, and again after changing a stream setting (``TRACKPRINT_STREAM_*``,
``TRACKPRINT_ACK_WAIT_S``, ``TRACKPRINT_MAX_DELIVER``...: the same environment as
the services). Idempotent. ``trackprint up`` needs none of this: its services set
up their own loopback bus.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from trackprint.config import resolve_nats


def register(subparsers) -> None:
    parser = subparsers.add_parser("topology", help="create or update the streams, consumers and KV buckets "
                                                    "(as the NATS admin)")
    parser.add_argument("--nats", default=None, help="NATS URL(s), comma-separated (default: $TRACKPRINT_NATS, "
                                                     "the data directory's, else nats://127.0.0.1:4222)")
    parser.add_argument("--data-dir", default=None, help="data directory of `trackprint up` (for its bus's URL)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trackprint import bus
    from trackprint.config import service_nats

    servers = resolve_nats(args) or service_nats(None)
    try:
        asyncio.run(asyncio.wait_for(_setup(servers), 120))
    except bus.CredentialsError as exc:  # TopologyError too: not the admin
        print(f"topology: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"topology: setting up the streams at {servers} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"topology: streams {bus.EVENTS_STREAM}, {bus.RESULTS_STREAM}, {bus.DEADLETTER_STREAM}, consumers "
          f"{bus.ANALYZER_CONSUMER}, {bus.PERSISTER_CONSUMER}, {bus.REDRIVE_CONSUMER} and KV buckets "
          f"{bus.FINGERPRINT_KV}, {bus.STATUS_KV} are set up at {servers}")
    return 0


async def _setup(servers: str) -> None:
    from trackprint import bus

    nc = await bus.connect(servers, "trackprint-topology", connect_timeout=5)
    try:
        await bus.ensure_topology(nc.jetstream())
    finally:
        await bus.close(nc)
