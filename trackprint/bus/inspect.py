"""What the bus says about a run: stream fill, consumer lag and redeliveries, the watchers' health reports.

Read-only; used by ``status`` (through the NATS client, failing fast when the
server is stopped) and by the ``up`` console (through the embedded server's
HTTP monitor, which costs no client connection per tick).
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any
from urllib.parse import urlparse

import httpx

from trackprint import bus

STREAM_KEYS = {bus.EVENTS_STREAM: "events", bus.RESULTS_STREAM: "results"}


def reachable(servers: str) -> bool:
    """A plain TCP probe (2 s per server) before any client: a stopped server is reported at once, without
    the client's endless reconnects."""
    for server in servers.split(","):
        parsed = urlparse(server.strip() if "://" in server else f"nats://{server.strip()}")
        try:
            with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout=2):
                return True
        except OSError:
            continue
    return False


def bus_status(servers: str | None) -> dict[str, Any]:
    """Streams, consumers and watcher reports; ``{"reachable": False, "reason": ...}`` when NATS is not there."""
    if not servers:
        return {"reachable": False, "reason": "no NATS URL (give --nats, or run `trackprint up` once)"}
    if not reachable(servers):
        return {"reachable": False, "url": servers, "reason": "connection refused (is it stopped?)"}
    try:
        return asyncio.run(asyncio.wait_for(_bus_status(servers), 10))
    except Exception as exc:
        return {"reachable": False, "url": servers, "reason": f"{type(exc).__name__}: {exc}".strip()}


async def _bus_status(servers: str) -> dict[str, Any]:
    import nats

    async def quiet(exc: Exception) -> None:  # status reports reachability itself, no tracebacks
        return None

    nc = await nats.connect(servers=servers.split(","), connect_timeout=2, allow_reconnect=False,
                            max_reconnect_attempts=0, error_cb=quiet, **bus.credentials())
    try:
        js = nc.jetstream()
        return {"reachable": True, "url": servers, "streams": await _streams(js), "consumers": await _consumers(js),
                "watchers": await service_reports(js, "watcher"), "persisters": await service_reports(js, "persister"),
                "analyzers": await service_reports(js, "analyzer")}
    finally:
        await nc.close()


async def _streams(js) -> dict[str, Any]:
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
    return streams


async def _consumers(js) -> dict[str, Any]:
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
    return consumers


async def service_reports(js, service: str) -> dict[str, Any]:
    """The services' own health reports from the status KV bucket, by host: the watchers' (offline roots,
    inotify limit), the persisters' (whether the database takes writes) and the analyzers' (the files in
    hand, by host and pid)."""
    reports: dict[str, Any] = {}
    try:
        kv = await js.key_value(bus.STATUS_KV)
        for key in await kv.keys():
            if key.startswith(f"{service}."):
                entry = await kv.get(key)
                reports[key.removeprefix(f"{service}.")] = json.loads(entry.value)
    except Exception:  # no bucket yet, or no keys: nothing reported
        pass
    return reports


def monitor_counts(monitor_url: str) -> dict[str, int]:
    """Messages per stream and waiting per consumer (pending + unacked), from the server's HTTP monitor."""
    counts: dict[str, int] = {}
    jsz = httpx.get(f"{monitor_url}/jsz", params={"consumers": "true"}, timeout=2.0).json()
    for account in jsz.get("account_details", []):
        for stream in account.get("stream_detail", []):
            name = stream.get("name")
            if name in STREAM_KEYS:
                counts[STREAM_KEYS[name]] = stream.get("state", {}).get("messages", 0)
            for consumer in stream.get("consumer_detail", []) or []:
                waiting = consumer.get("num_pending", 0) + consumer.get("num_ack_pending", 0)
                counts[f"{consumer.get('name')}_waiting"] = waiting
    counts["lag"] = counts.get("analyzer_waiting", 0) + counts.get("persister_waiting", 0)
    return counts
