"""``trackprint status [--json] [--data-dir DIR | --db URL --nats URL]``: what a person needs to trust a long run.

Tracks known, fingerprinted, pending, failed by code, tombstoned, stale,
engine share and recent throughput; consumer lag, redeliveries, dead letters
and stream fill; watcher health; and warnings (see :mod:`trackprint.status`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from trackprint.config import add_location_arguments, data_dir, resolve_db, resolve_nats, run_state
from trackprint.status import NOTHING_HERE, collect, unreadable


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "status", help="counts, lag, failures and warnings (running or stopped)",
        epilog="exit status: 0 ok; 1 the database cannot be read (on a fresh machine: one line, "
               "\"nothing here yet: run `trackprint up LIBRARY`\"); never creates a database")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--failed", action="store_true",
                        help="list the failing paths with their reason codes (tab-separated: code, path, message)")
    add_location_arguments(parser, nats=True)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    db_url = resolve_db(args)
    if args.failed:
        return _failed(db_url, args.json)
    report = collect(db_url, resolve_nats(args), run_state(args.data_dir), data_dir(args.data_dir))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    elif report["database"].get("missing") and not (report.get("instance") or {}).get("up_pid"):
        # a fresh machine or a typo in --db/--data-dir: one line, not a page of warnings about nothing
        print(f"status: {NOTHING_HERE} ({report['database']['missing']}; check --data-dir / --db)", file=sys.stderr)
    else:
        print(render(report))
    return 0 if "error" not in report["database"] else 1


def _failed(db_url: str, as_json: bool) -> int:
    """``status --failed``: every track in state failed, by path, with its reason code and message."""
    from trackprint.persister.queries import iter_failed

    try:
        count = 0
        for row in iter_failed(db_url):
            count += 1
            if as_json:
                print(json.dumps(row, ensure_ascii=False, default=str))
            else:
                print(f"{row['code']}\t{row['path']}\t{row['message'] or ''}")
    except Exception as exc:
        problem = unreadable(exc, db_url)
        if problem is None:
            raise
        print(f"status: {problem}", file=sys.stderr)
        return 1
    if not as_json:
        print(f"status: {count} failing path{'s' if count != 1 else ''}", file=sys.stderr)
    return 0


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

