"""``trackprint status [--json] [--data-dir DIR | --db URL --nats URL]``: what a person needs to trust a long run.

Reads the database (tracks known, fingerprinted, pending, failed by code,
tombstoned, stale, engine share, recent throughput) and, when NATS is
reachable, the streams and consumers (lag, unacked, redeliveries, dead
letters, how full each stream is). Works on a stopped system: whatever is
unreachable is reported as such. Warnings name what needs attention.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from urllib.parse import urlparse
from typing import Any

from trackprint.config import add_location_arguments, resolve_db, resolve_nats, run_state

FALLBACK_WARN_SHARE = 0.2  # more than this share by Python while Rust should run: say so
STREAM_FULL_WARN = 0.8
RECENT_MINUTES = 10.0
WATCHER_SILENT_S = 60.0


def register(subparsers) -> None:
    parser = subparsers.add_parser("status", help="counts, lag, failures and warnings (running or stopped)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_location_arguments(parser, nats=True)
    parser.set_defaults(func=run)


def database_status(db_url: str) -> dict[str, Any]:
    from sqlalchemy import create_engine

    from trackprint.persister.queries import counts
    from trackprint.db import normalize_url, redact

    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            c = counts(conn, recent_minutes=RECENT_MINUTES)
    finally:
        engine.dispose()
    out = c.as_dict()
    out["url"] = redact(db_url)
    out["throughput_per_min"] = round(c.recent_persisted / RECENT_MINUTES, 2)
    return out


async def _bus_status(servers: str) -> dict[str, Any]:
    import nats

    from trackprint import bus

    async def quiet(exc: Exception) -> None:  # status reports reachability itself, no tracebacks
        return None

    nc = await nats.connect(servers=servers.split(","), connect_timeout=2, allow_reconnect=False,
                            max_reconnect_attempts=0, error_cb=quiet)
    try:
        js = nc.jetstream()
        streams: dict[str, Any] = {}
        for name in (bus.EVENTS_STREAM, bus.RESULTS_STREAM, bus.DEADLETTER_STREAM):
            try:
                info = await js.stream_info(name)
            except Exception:
                streams[name] = None
                continue
            max_bytes = info.config.max_bytes or -1
            streams[name] = {
                "messages": info.state.messages,
                "bytes": info.state.bytes,
                "max_bytes": max_bytes,
                "fill": round(info.state.bytes / max_bytes, 4) if max_bytes and max_bytes > 0 else 0.0,
                "first_seq": info.state.first_seq,
                "last_seq": info.state.last_seq,
            }
        consumers: dict[str, Any] = {}
        for stream, consumer in ((bus.EVENTS_STREAM, bus.ANALYZER_CONSUMER), (bus.RESULTS_STREAM, bus.PERSISTER_CONSUMER)):
            try:
                info = await js.consumer_info(stream, consumer)
            except Exception:
                consumers[consumer] = None
                continue
            consumers[consumer] = {
                "stream": stream,
                "pending": info.num_pending,
                "unacked": info.num_ack_pending,
                "redelivered": info.num_redelivered,
                "waiting_pulls": info.num_waiting,
                "max_ack_pending": info.config.max_ack_pending,
                "acked_up_to": info.ack_floor.stream_seq if info.ack_floor else 0,
            }
        return {"reachable": True, "url": servers, "streams": streams, "consumers": consumers,
                "watchers": await _watcher_reports(js)}
    finally:
        await nc.close()


async def _watcher_reports(js) -> dict[str, Any]:
    """The watchers' own health reports (offline roots, inotify limit) from the status KV bucket."""
    from trackprint import bus

    reports: dict[str, Any] = {}
    try:
        kv = await js.key_value(bus.STATUS_KV)
        for key in await kv.keys():
            if key.startswith("watcher."):
                entry = await kv.get(key)
                reports[key.removeprefix("watcher.")] = json.loads(entry.value)
    except Exception:  # no bucket yet, or no keys: nothing reported
        pass
    return reports


def _any_port_open(servers: str) -> bool:
    """A plain TCP probe first: a stopped server is reported at once, without client retries."""
    for server in servers.split(","):
        parsed = urlparse(server.strip() if "://" in server else f"nats://{server.strip()}")
        try:
            with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout=2):
                return True
        except OSError:
            continue
    return False


def bus_status(servers: str | None) -> dict[str, Any]:
    if not servers:
        return {"reachable": False, "reason": "no NATS URL (give --nats, or run `trackprint up` once)"}
    if not _any_port_open(servers):
        return {"reachable": False, "url": servers, "reason": "connection refused (is it stopped?)"}
    try:
        return asyncio.run(asyncio.wait_for(_bus_status(servers), 10))
    except Exception as exc:
        return {"reachable": False, "url": servers, "reason": f"{type(exc).__name__}: {exc}".strip()}


def warnings_for(report: dict[str, Any]) -> list[str]:
    warnings: list[str] = []
    state = report.get("run", {})
    if state and state.get("rust_available") is False:
        warnings.append(f"Rust server not running at the last start ({state.get('rust_reason')}): Python engine only, slower")
    db = report.get("database") or {}
    engines = db.get("engine_share") or {}
    total = sum(engines.values())
    if total and state.get("rust_available") and engines.get("python", 0) / total > FALLBACK_WARN_SHARE:
        warnings.append(f"{100 * engines['python'] / total:.0f}% of fingerprints came from the Python fallback")
    if db.get("stale"):
        warnings.append(f"{db['stale']} fingerprints are stale (older fingerprint_version): run `trackprint replay --reanalyse`")
    bus = report.get("bus") or {}
    for name, stream in (bus.get("streams") or {}).items():
        if stream and stream["fill"] >= STREAM_FULL_WARN:
            warnings.append(f"stream {name} is {100 * stream['fill']:.0f}% full: new messages will be rejected at 100%")
    for name, consumer in (bus.get("consumers") or {}).items():
        if consumer and consumer["unacked"] >= consumer["max_ack_pending"] > 0:
            warnings.append(f"consumer {name} reached max_ack_pending ({consumer['max_ack_pending']}): delivery paused")
    if (bus.get("streams") or {}).get("TRACKPRINT_DEADLETTER", {}) and bus["streams"]["TRACKPRINT_DEADLETTER"]["messages"]:
        warnings.append(f"{bus['streams']['TRACKPRINT_DEADLETTER']['messages']} messages in the dead-letter stream")
    for host, watcher in (bus.get("watchers") or {}).items():
        for root, reason in (watcher.get("offline") or {}).items():
            warnings.append(f"library root offline on {host}: {root} ({reason}); no deletions are published for it")
        inotify = watcher.get("inotify") or {}
        if inotify and not inotify.get("enough", True):
            warnings.append(f"inotify limit on {host} too low ({inotify['max_user_watches']} watches for "
                            f"{inotify['directories']} directories): changes are missed until the reconcile; "
                            "use --poll or raise fs.inotify.max_user_watches")
        age = time.time() - float(watcher.get("updated_at", 0))
        if age > WATCHER_SILENT_S:
            warnings.append(f"watcher on {host} last reported {age / 60:.0f} min ago (stopped?)")
    if db.get("error"):
        warnings.append(f"database unreadable: {db['error']}")
    if not bus.get("reachable"):
        warnings.append(f"NATS not reachable ({bus.get('reason')}): consumer lag unknown")
    return warnings


def collect(args) -> dict[str, Any]:
    report: dict[str, Any] = {"run": run_state(getattr(args, "data_dir", None))}
    try:
        report["database"] = database_status(resolve_db(args))
    except Exception as exc:
        report["database"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    report["bus"] = bus_status(resolve_nats(args))
    report["warnings"] = warnings_for(report)
    return report


def run(args: argparse.Namespace) -> int:
    report = collect(args)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render(report))
    return 0 if "error" not in report["database"] else 1


def render(report: dict[str, Any]) -> str:
    db, bus = report["database"], report["bus"]
    lines = []
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

