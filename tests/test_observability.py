"""Every Python service serves Prometheus metrics; logs can be JSON lines naming file, stage and code."""

import json
import signal

import httpx

from tests.audio import write_tones
from tests.procs import service
from tests.waiting import wait_until
from trackprint.binaries import free_port


def scrape(port):
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return ""


def metric(text, name):
    """Sum of every sample of ``name`` (all label sets)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_services_serve_metrics_and_json_logs_name_the_file(tmp_path, nats_server, db_url):
    library = tmp_path / "music"
    library.mkdir()
    write_tones(library, [f"t{i}.wav" for i in range(3)], 8000, base_hz=64, step_hz=13, seed=0)
    (library / "bad.flac").write_bytes(b"definitely not audio")
    ports = {name: free_port() for name in ("persister", "analyzer", "watcher")}
    json_logs = ("--log-format", "json")
    db = db_url
    analyzer_log = tmp_path / "analyzer.log"
    procs = [
        service(*json_logs, "persister", "--nats", nats_server.url, "--db", db,
                "--metrics-port", str(ports["persister"])),
        service(*json_logs, "analyzer", "--nats", nats_server.url, "--library", str(library), "--no-rust",
                "--metrics-port", str(ports["analyzer"]), log=analyzer_log),
        service(*json_logs, "watcher", "--nats", nats_server.url, "--state", str(tmp_path / "w.sqlite"),
                "--quiet-s", "0.3", "--metrics-port", str(ports["watcher"]), str(library)),
    ]
    try:
        def persisted():
            text = scrape(ports["persister"])
            return (metric(text, "trackprint_persister_persisted_total"),
                    metric(text, "trackprint_persister_failures_recorded_total"))

        wait_until(persisted, 60, 0.5, "3 persisted and 1 failure recorded (persisted, failures)",
                   until=lambda seen: seen[0] >= 3 and seen[1] >= 1)
        persister, analyzer, watcher = (scrape(ports[n]) for n in ("persister", "analyzer", "watcher"))
        assert metric(persister, "trackprint_persister_persisted_total") == 3
        assert metric(persister, "trackprint_persister_failures_recorded_total") == 1
        assert 'trackprint_analyzer_fingerprints_total{engine="python",reused="false"} 3.0' in analyzer
        assert 'trackprint_analyzer_failures_total{code="unsupported_format"} 1.0' in analyzer
        assert metric(analyzer, "trackprint_analyzer_analysis_seconds_count") == 3
        assert 'trackprint_watcher_events_total{kind="added"} 4.0' in watcher
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
    records = [json.loads(line) for line in analyzer_log.read_text().splitlines() if line.startswith("{")]
    bad = [r for r in records if r.get("path", "").endswith("bad.flac")]
    assert bad and bad[0]["code"] == "unsupported_format" and bad[0]["stage"] == "probe"


def test_status_warns_about_inotify_overflows_a_watcher_reported():
    """A watcher's health report counts inotify overflows; status turns them into a warning with the fix."""
    from trackprint.status import warnings_for

    report = {"database": {}, "bus": {"reachable": True, "streams": {}, "consumers": {},
                                      "watchers": {"host-a": {"inotify": {"overflows": 3, "enough": True},
                                                              "updated_at": __import__("time").time()}}}}
    found = [w for w in warnings_for(report) if "overflowed" in w]
    assert found == ["inotify queue overflowed 3 times on host-a (events lost; each followed by a reconcile): "
                     "raise fs.inotify.max_queued_events"], warnings_for(report)
    report["bus"]["watchers"]["host-a"]["inotify"]["overflows"] = 0
    assert not [w for w in warnings_for(report) if "overflowed" in w]
