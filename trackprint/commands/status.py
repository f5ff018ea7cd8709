"""``trackprint status [--json] [--data-dir DIR | --db URL --nats URL]``: what a person needs to trust a long run.

Tracks known, fingerprinted, pending, failed by code, tombstoned, stale,
engine share and recent throughput; consumer lag, redeliveries, dead letters
and stream fill; watcher health; and warnings (see :mod:`trackprint.status`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from trackprint.config import add_location_arguments, data_dir, resolve_db, resolve_nats, run_state
from trackprint.status import collect


def register(subparsers) -> None:
    parser = subparsers.add_parser("status", help="counts, lag, failures and warnings (running or stopped)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_location_arguments(parser, nats=True)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = collect(resolve_db(args), resolve_nats(args), run_state(args.data_dir), data_dir(args.data_dir))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render(report))
    return 0 if "error" not in report["database"] else 1


def render(report: dict[str, Any]) -> str:
    db, bus = report["database"], report["bus"]
    lines = []
    instance = report.get("instance") or {}
    if instance:
        pid = instance.get("up_pid")
        lines.append(f"up           {'running, pid ' + str(pid) if pid else 'not running'} ({instance['data_dir']})")
    if "error" in db:
        lines.append(f"database: {db['error']}")
    else:
        failed = ", ".join(f"{code} {n}" for code, n in sorted(db["failed_by_code"].items())) or "none"
        engines = ", ".join(f"{name} {n}" for name, n in sorted(db["engine_share"].items())) or "none yet"
        lines += [
            f"database     {db['url']}",
            f"tracks       {db['known']} known, {db['active']} fingerprinted, {db['pending']} pending, "
            f"{db['failed']} failed, {db['tombstoned']} deleted (tombstones), {db['stale']} stale",
            f"failed by    {failed}",
            f"engines      {engines}",
            f"throughput   {db['recent_persisted']} persisted in the last {db['recent_minutes']:.0f} min "
            f"({db['throughput_per_min']}/min)",
        ]
    if bus.get("reachable"):
        for name, c in bus["consumers"].items():
            if c is None:
                lines.append(f"consumer     {name}: not created yet")
            else:
                lines.append(f"consumer     {name}: {c['pending']} waiting, {c['unacked']} in flight, "
                             f"{c['redelivered']} redelivered")
        for name, s in bus["streams"].items():
            if s is not None:
                lines.append(f"stream       {name}: {s['messages']} messages, {100 * s['fill']:.1f}% full")
        for host, watcher in (bus.get("watchers") or {}).items():
            offline = len(watcher.get("offline") or {})
            lines.append(f"watcher      {host}: {len(watcher.get('roots', []))} roots ({offline} offline), "
                         f"{watcher.get('published', 0)} events published, "
                         f"{watcher.get('waiting_for_quiescence', 0)} files waiting to settle")
    else:
        lines.append(f"nats         not reachable: {bus.get('reason')}")
    for warning in report["warnings"]:
        lines.append(f"WARNING      {warning}")
    return "\n".join(lines)

