"""``trackprint analyze [--engine auto|rust|python] [--json] PATH...``

A stable contract for tools and tests. With ``--json`` it prints one JSON
object per path, in the order given:

    {"path", "ok": true, "fingerprint": {25 names}, "fingerprint_version",
     "engine", "duration_s", "decode": {...}, "timings": {...}[, "fallback_reason"]}
    {"path", "ok": false, "error": {"code", "stage", "reason", "message"}, "engine"}

``message`` is the one human line "PATH: STAGE: CODE: REASON". The exit status
is 0 when every path was fingerprinted, 1 otherwise. Which engine runs is
decided by :mod:`trackprint.analyzer.engines`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import msgspec

from trackprint.analyzer.engines import MODES, analyse_many, warn_on_stderr
from trackprint.contracts import EngineOutcome
from trackprint.errors import describe
from trackprint.paths import to_text


def register(subparsers) -> None:
    parser = subparsers.add_parser("analyze", help="fingerprint files and print the results")
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.add_argument("--engine", choices=MODES, default="auto",
                        help="auto: Rust server with per-file Python fallback (default)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="files analysed at once (default: cores)")
    parser.add_argument("--server", default=None, help="Rust server URL (default from TRACKPRINT_SERVER)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_print_all(args))


async def _print_all(args: argparse.Namespace) -> int:
    ok = failed = 0
    if not args.json:
        print(TABLE_HEADER)
    async for outcome in analyse_many(args.paths, args.engine, max(1, args.jobs), args.server, warn_on_stderr):
        outcome.path = to_text(outcome.path)  # printable whatever bytes the name holds
        ok, failed = ok + outcome.ok, failed + (not outcome.ok)
        print(json.dumps(as_json(outcome), ensure_ascii=False) if args.json else table_row(outcome), flush=True)
    if not args.json:
        print(f"{ok} fingerprinted, {failed} failed", file=sys.stderr)
    return 0 if failed == 0 else 1


def as_json(outcome: EngineOutcome) -> dict[str, Any]:
    """The command's JSON object for one outcome (see the module docstring)."""
    if outcome.error is not None:
        e = outcome.error
        return {"path": outcome.path, "ok": False, "engine": outcome.engine,
                "error": {"code": e.code.value, "stage": e.stage, "reason": e.message,
                          "message": describe(outcome.path, e.stage, e.code, e.message)}}
    result = {
        "path": outcome.path,
        "ok": True,
        "fingerprint": outcome.fingerprint.as_dict(),
        "fingerprint_version": outcome.fingerprint_version,
        "engine": outcome.engine,
        "duration_s": outcome.decode.decoded_duration_s,
        "decode": msgspec.to_builtins(outcome.decode),
        "timings": msgspec.to_builtins(outcome.timings),
    }
    if outcome.fallback_reason:
        result["fallback_reason"] = outcome.fallback_reason
    return result


TABLE_HEADER = f"{'engine':<7} {'dur s':>8} {'LUFS':>6} {'BPM':>6} {'centroid':>8} {'width':>5}  path"


def table_row(outcome: EngineOutcome) -> str:
    if outcome.error is not None:
        e = outcome.error
        return f"{'FAILED':<7} {e.code.value:>31}  {describe(outcome.path, e.stage, e.code, e.message)}"
    fp = outcome.fingerprint
    return (
        f"{outcome.engine:<7} {outcome.decode.decoded_duration_s:>8.1f} {fp.lufs:>6.1f} {fp.tempo_bpm:>6.1f} "
        f"{fp.spectral_centroid:>8.0f} {fp.stereo_width:>5.2f}  {outcome.path}"
        + (f"  (fallback: {outcome.fallback_reason})" if outcome.fallback_reason else "")
    )
