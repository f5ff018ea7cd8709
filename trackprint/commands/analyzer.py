"""``trackprint analyzer --nats URL[,URL] --library ROOT [--server URL] [--concurrency N] [--no-rust] [--metrics-port P]``

Binds to the durable ``analyzer`` consumer of the events stream and publishes
results; start as many as you like on any host (see analyzer/README.md, "Worker").
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("analyzer", help="fingerprint the files named by the events stream")
    parser.add_argument("--nats", default=None, help="server URL(s), comma-separated (default: the nats setting, else nats://127.0.0.1:4222)")
    parser.add_argument("--library", action="append", default=[], metavar="ROOT",
                        help="a library root this analyzer may read (repeat for several; default $TRACKPRINT_LIBRARY, "
                             "separated by ':'); events for paths outside them are refused, never analysed")
    parser.add_argument("--allow-symlinks-outside", action="store_true",
                        help="follow symlinks that lead out of the library (default: refuse them)")
    parser.add_argument("--server", default=os.environ.get("TRACKPRINT_SERVER", "http://127.0.0.1:7878"),
                        help="Rust server URL (default $TRACKPRINT_SERVER or http://127.0.0.1:7878)")
    parser.add_argument("--no-rust", action="store_true", help="Python engine only")
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 1, help="files at once (default: cores)")
    parser.add_argument("--analysis-timeout-s", type=float, default=600.0)
    parser.add_argument("--nak-delay-s", type=float, default=5.0, help="first retry delay of a transient error")
    parser.add_argument("--breaker-threshold", type=int, default=3,
                        help="consecutive Rust connection failures/timeouts that open the breaker")
    parser.add_argument("--breaker-cooldown-s", type=float, default=30.0)
    parser.add_argument("--metrics-port", type=int, default=0, help="Prometheus metrics port (default off)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trackprint.analyzer.worker import AnalyzerWorker, WorkerConfig
    from trackprint.config import service_nats
    from trackprint.paths import library_from_env
    from trackprint.service import run_service

    library = library_from_env(args.library)
    if not library.roots:
        print("trackprint analyzer: give the library roots it may read (--library ROOT, or $TRACKPRINT_LIBRARY)",
              file=sys.stderr)
        return 2
    if args.allow_symlinks_outside:
        library = dataclasses.replace(library, allow_symlinks_outside=True)  # the excludes stay
    config = WorkerConfig(nats=service_nats(args.nats), server=args.server, use_rust=not args.no_rust, library=library,
                          concurrency=max(1, args.concurrency), analysis_timeout_s=args.analysis_timeout_s,
                          nak_delay_s=args.nak_delay_s, breaker_threshold=args.breaker_threshold,
                          breaker_cooldown_s=args.breaker_cooldown_s)
    return run_service(AnalyzerWorker(config), metrics_port=args.metrics_port)
