"""``trackprint replay``: rebuild a database from the results stream, or re-analyse from the events stream.

``trackprint replay --db URL`` applies every message of the results stream,
from the first, with the persister's own processing (see
``persister/replay.py``): idempotent, last-write-wins, nothing re-analysed.

``trackprint replay --reanalyse`` republishes a ``changed`` event for every
current file of the events stream, throttled (``--rate`` per second, never
more than ``--max-lag`` waiting for the analyzers); see ``trackprint/bus/fold.py``.
"""

from __future__ import annotations

import argparse
import sys

from trackprint.argtypes import non_negative_int, positive_float, positive_int
from trackprint.bus.inspect import reachable
from trackprint.config import add_location_arguments, data_dir, resolve_db, resolve_nats
from trackprint.service import run_loop
from trackprint.status import NOTHING_HERE


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "replay", help="rebuild a database from the results stream (or --reanalyse)",
        epilog="exit status: 0 ok; 1 nothing to replay from: no run recorded in the data directory (\"nothing here "
               "yet: run `trackprint up LIBRARY`\") or the NATS server is not reachable (checked first, 2 s), or "
               "some results could not be persisted; 2 usage error")
    add_location_arguments(parser, nats=True)
    parser.add_argument("--reanalyse", action="store_true",
                        help="re-run analysis of every current file from the events stream")
    parser.add_argument("--batch", type=positive_int, default=200, help="messages per database transaction (default 200)")
    parser.add_argument("--rate", type=positive_float, default=50.0,
                        help="--reanalyse: events published per second (default 50)")
    parser.add_argument("--max-lag", type=non_negative_int, default=500,
                        help="--reanalyse: pause while more than this many events wait for analyzers (default 500)")
    parser.set_defaults(func=run)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    servers = resolve_nats(args)
    if not servers:
        say(f"replay: {NOTHING_HERE} (no NATS URL recorded in {data_dir(args.data_dir)}; or give --nats URL)")
        return 1
    if not reachable(servers):
        say(f"replay: NATS not reachable at {servers} (connection refused): replay reads the streams of a running "
            "NATS; start `trackprint up` (or the NATS server) and run it again")
        return 1
    try:
        if args.reanalyse:
            run_loop(_reanalyse(servers, args.rate, args.max_lag))
            return 0
        from trackprint.persister.replay import replay_results

        summary = run_loop(replay_results(servers, resolve_db(args), batch_size=args.batch, say=say))
        return 1 if summary.not_persisted else 0
    except KeyboardInterrupt:
        say("replay: interrupted; run it again: it is idempotent")
        return 130


async def _reanalyse(servers: str, rate: float, max_lag: int) -> None:
    from trackprint import bus
    from trackprint.bus.fold import republish_for_reanalysis

    nc = await bus.connect(servers, "trackprint-reanalyse")
    try:
        js = nc.jetstream()
        await bus.ensure_topology(js)
        await republish_for_reanalysis(js, rate_per_s=rate, max_lag=max_lag, say=say)
    finally:
        await bus.close(nc)
