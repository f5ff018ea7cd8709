"""``trackprint analyze [--engine auto|rust|python] [--json] PATH...``

A stable contract for tools and tests. With ``--json`` it prints one JSON
object per path, in the order given:

    {"path", "ok": true, "fingerprint": {25 names}, "fingerprint_version",
     "engine", "duration_s", "decode": {...}, "timings": {...}}
    {"path", "ok": false, "error": {"code", "message"}, "engine"}

The exit status is 0 when every path was fingerprinted, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Iterator

import msgspec

from trackprint.errors import AnalysisError, ErrorCode


def register(subparsers) -> None:
    parser = subparsers.add_parser("analyze", help="fingerprint files and print the results")
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.add_argument("--engine", choices=("auto", "rust", "python"), default="auto",
                        help="auto: Rust server with per-file Python fallback (default)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="files analysed at once (default: cores)")
    parser.add_argument("--server", default=None, help="Rust server URL (default from TRACKPRINT_SERVER)")
    parser.set_defaults(func=run)


def analyze_python(path: str) -> dict[str, Any]:
    """One file through the Python engine, as the CLI's JSON object (never raises)."""
    from analyzer.engine import analyze_file

    try:
        out = analyze_file(path)
    except AnalysisError as exc:
        return failure(path, exc.code, str(exc), "python")
    except Exception as exc:  # a bug: say so, with the traceback, and keep going
        traceback.print_exc(file=sys.stderr)
        return failure(path, ErrorCode.INTERNAL, f"{path}: analyse: internal: {type(exc).__name__}: {exc}", "python")
    return {
        "path": path,
        "ok": True,
        "fingerprint": out.fingerprint,
        "fingerprint_version": out.fingerprint_version,
        "engine": "python",
        "duration_s": out.decode.decoded_duration_s,
        "decode": msgspec.to_builtins(out.decode),
        "timings": msgspec.to_builtins(out.timings),
    }


def failure(path: str, code: ErrorCode, message: str, engine: str | None) -> dict[str, Any]:
    return {"path": path, "ok": False, "error": {"code": ErrorCode(code).value, "message": message}, "engine": engine}


def _results(paths: list[str], engine: str, jobs: int, server: str | None) -> Iterator[dict[str, Any]]:
    if engine == "rust" or engine == "auto":
        from trackprint.commands import _engines

        yield from _engines.analyze_with_rust(paths, jobs, server, fallback=(engine == "auto"))
        return
    if jobs <= 1 or len(paths) == 1:
        yield from map(analyze_python, paths)
        return
    import analyzer.engine  # noqa: F401  imported once here; forked workers inherit it (scipy takes ~2 s)

    with ProcessPoolExecutor(max_workers=min(jobs, len(paths))) as pool:
        yield from pool.map(analyze_python, paths, chunksize=1)


def run(args: argparse.Namespace) -> int:
    ok = failed = 0
    if not args.json:
        print(TABLE_HEADER)
    for result in _results(args.paths, args.engine, max(1, args.jobs), args.server):
        if result["ok"]:
            ok += 1
        else:
            failed += 1
        if args.json:
            print(json.dumps(result, ensure_ascii=False), flush=True)
        else:
            print(table_row(result), flush=True)
    if not args.json:
        print(f"{ok} fingerprinted, {failed} failed", file=sys.stderr)
    return 0 if failed == 0 else 1


TABLE_HEADER = f"{'engine':<7} {'dur s':>8} {'LUFS':>6} {'BPM':>6} {'centroid':>8} {'width':>5}  path"


def table_row(result: dict[str, Any]) -> str:
    if not result["ok"]:
        error = result["error"]
        return f"{'FAILED':<7} {error['code']:>31}  {error['message']}"
    fp = result["fingerprint"]
    return (
        f"{result['engine']:<7} {result['duration_s']:>8.1f} {fp['lufs']:>6.1f} {fp['tempo_bpm']:>6.1f} "
        f"{fp['spectral_centroid']:>8.0f} {fp['stereo_width']:>5.2f}  {result['path']}"
        + (f"  (fallback: {result['fallback_reason']})" if result.get("fallback_reason") else "")
    )
