"""``trackprint confirm-deletions ROOT [--data-dir DIR | --nats URL]``: let a held mass deletion through.

A watcher holds the removals when most of a root's files vanish at once (a
drive replaced by another folder, a half-finished sync) and ``status`` says so;
this is the person's answer: the removals under ROOT are published.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from trackprint.config import add_location_arguments, resolve_nats


def register(subparsers) -> None:
    parser = subparsers.add_parser("confirm-deletions", help="publish the removals a watcher holds under ROOT")
    parser.add_argument("root", metavar="ROOT")
    add_location_arguments(parser, nats=True)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    servers = resolve_nats(args)
    if not servers:
        print("confirm-deletions: no NATS URL: give --nats URL (or --data-dir of a `trackprint up` run)", file=sys.stderr)
        return 2
    root = os.path.abspath(args.root)
    asyncio.run(_confirm(servers, root))
    print(f"confirm-deletions: confirmed for {root}; the watcher publishes the removals at its next tick")
    return 0


async def _confirm(servers: str, root: str) -> None:
    from trackprint import bus

    nc = await bus.connect(servers, "trackprint-confirm-deletions")
    try:
        kv = await bus.status_kv(nc.jetstream())
        await kv.put(bus.deletion_confirmation_key(root), str(time.time()).encode())
    finally:
        await bus.close(nc)
