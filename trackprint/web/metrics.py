"""``/metrics``: one Prometheus endpoint for the whole library (and, under ``up``, the whole run).

Computed on each scrape, from the database and the bus (cached :data:`CACHE_S` seconds):

- ``trackprint_library_tracks{state}``: rows of ``tracks`` by state (active, pending, failed, deleted);
- ``trackprint_library_fingerprinted``: active tracks with a fingerprint;
- ``trackprint_library_stale``: known tracks whose fingerprint_version is below the current one;
- ``trackprint_library_failed{code}``: tracks in state failed by their latest failure code;
- ``trackprint_library_fingerprints{engine}``: fingerprints by engine (rust, python);
- ``trackprint_library_readable``: 1 when the database could be read (0: the gauges above are absent);
- ``trackprint_bus_reachable``, ``trackprint_bus_consumer_waiting{consumer}`` (pending),
  ``trackprint_bus_consumer_unacked{consumer}``, ``trackprint_bus_consumer_redelivered{consumer}``,
  ``trackprint_bus_stream_messages{stream}``, ``trackprint_bus_stream_fill{stream}`` (0..1).

Federated: each service of a run serves its own counters when given ``--metrics-port`` (``trackprint up
--metrics-port P``: persister on P, analyzers on P+1.., watcher after them). ``up`` hands those addresses to
its web server (``serve --federate NAME=URL``), and this endpoint then repeats every sample of every
service with a ``service="NAME"`` label added (``trackprint_analyzer_fingerprints_total{engine="rust",
service="analyzer-1"}``), merged by metric name, so one scrape of the web port covers the whole run. A
service that does not answer is ``trackprint_federate_up{service="NAME"} 0``.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CACHE_S = 2.0
FEDERATE_TIMEOUT_S = 2.0


class LibraryCollector(Collector):
    def __init__(self, db_url: str, bus_report: Callable[[], dict]):
        self.db_url = db_url
        self.bus_report = bus_report
        self._lock = threading.Lock()
        self._cached: tuple[float, list] | None = None

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= CACHE_S:
                self._cached = (now, self._read())
            return list(self._cached[1])

    def _read(self) -> list[Metric]:
        out: list[Metric] = []
        readable = GaugeMetricFamily("trackprint_library_readable", "1 when the database could be read")
        try:
            by_state, c = _library_counts(self.db_url)
        except Exception:
            readable.add_metric([], 0)
            by_state = c = None
        else:
            readable.add_metric([], 1)
        out.append(readable)
        if c is not None:
            g = GaugeMetricFamily("trackprint_library_tracks", "Tracks by state", labels=["state"])
            for state in ("active", "pending", "failed", "deleted"):
                g.add_metric([state], by_state.get(state, 0))
            out.append(g)
            out.append(GaugeMetricFamily("trackprint_library_fingerprinted", "Active tracks with a fingerprint",
                                         value=c.active))
            out.append(GaugeMetricFamily("trackprint_library_stale",
                                         "Known tracks whose fingerprint_version is below the current one",
                                         value=c.stale))
            g = GaugeMetricFamily("trackprint_library_failed", "Tracks in state failed, by failure code",
                                  labels=["code"])
            for code, n in sorted(c.failed_by_code.items()):
                g.add_metric([code], n)
            out.append(g)
            g = GaugeMetricFamily("trackprint_library_fingerprints", "Fingerprints by engine", labels=["engine"])
            for engine, n in sorted(c.engine_share.items()):
                g.add_metric([engine], n)
            out.append(g)
        out.extend(_bus_metrics(self.bus_report()))
        return out


def _library_counts(db_url: str):
    from sqlalchemy import func, select

    from trackprint.persister.db import make_engine
    from trackprint.persister.models import tracks
    from trackprint.persister.queries import counts

    engine = make_engine(db_url, must_exist=True)
    try:
        with engine.connect() as conn:
            by_state = dict(conn.execute(select(tracks.c.state, func.count()).group_by(tracks.c.state)).all())
            return by_state, counts(conn)
    finally:
        engine.dispose()


def _bus_metrics(report: dict) -> list[Metric]:
    reachable = GaugeMetricFamily("trackprint_bus_reachable", "1 when NATS answered")
    reachable.add_metric([], 1 if report.get("reachable") else 0)
    out: list[Metric] = [reachable]
    if not report.get("reachable"):
        return out
    families = {key: GaugeMetricFamily(f"trackprint_bus_consumer_{key}", doc, labels=["consumer"])
                for key, doc in (("waiting", "Messages waiting for the consumer"),
                                 ("unacked", "Messages delivered, not acknowledged yet"),
                                 ("redelivered", "Messages delivered more than once"))}
    for name, c in sorted((report.get("consumers") or {}).items()):
        if c:
            families["waiting"].add_metric([name], c.get("pending", 0))
            families["unacked"].add_metric([name], c.get("unacked", 0))
            families["redelivered"].add_metric([name], c.get("redelivered", 0))
    messages = GaugeMetricFamily("trackprint_bus_stream_messages", "Messages in the stream", labels=["stream"])
    fill = GaugeMetricFamily("trackprint_bus_stream_fill", "Share of the stream's byte limit used", labels=["stream"])
    for name, s in sorted((report.get("streams") or {}).items()):
        if s:
            messages.add_metric([name], s.get("messages", 0))
            fill.add_metric([name], s.get("fill", 0.0))
    return out + list(families.values()) + [messages, fill]


class FederatedCollector(Collector):
    """Every sample of each service's own /metrics, with a ``service`` label, merged by metric name."""

    def __init__(self, targets: dict[str, str]):
        self.targets = dict(targets)

    def collect(self) -> Iterable[Metric]:
        import httpx
        from prometheus_client.parser import text_string_to_metric_families

        merged: dict[str, Metric] = {}
        up = GaugeMetricFamily("trackprint_federate_up", "1 when the service's own /metrics answered",
                               labels=["service"])
        for service, url in sorted(self.targets.items()):
            try:
                text = httpx.get(url, timeout=FEDERATE_TIMEOUT_S).text
                families = list(text_string_to_metric_families(text))
            except Exception:
                up.add_metric([service], 0)
                continue
            up.add_metric([service], 1)
            for family in families:
                target = merged.get(family.name)
                if target is None:
                    target = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                elif target.type != family.type:
                    continue
                for sample in family.samples:
                    target.samples.append(sample._replace(labels={**sample.labels, "service": service}))
        yield up
        yield from merged.values()
