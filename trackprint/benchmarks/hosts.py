"""``trackprint bench-hosts``: does throughput add up when analyzer hosts are added?

The several-hosts deployment (deploy/README.md, "Several hosts") on one machine: a 3-node NATS cluster
on loopback with R3 streams (:mod:`trackprint.benchmarks.cluster`), one persister on the given database
(PostgreSQL in a real deployment), one watcher (the library host) and, per analyzer host, its own
``trackprint-server`` and its own analyzers, told apart by ``TRACKPRINT_HOST`` (status reports and
results carry it). Nothing is shared between hosts but the bus and the database, as on real machines.

For each host count in ``--hosts`` (default 1 then 2), on a fresh cluster and an empty database:

1. start the cluster, the persister and the hosts, then the watcher on the library (N distinct files
   of ``--seconds`` each, generated once: long enough that analysis, which is what hosts add, dominates);
2. time from the watcher's start until every file has a fingerprint row;
3. check exactly once: N rows, N distinct paths, no failure rows; and read each host's Rust server
   ``/metrics`` (requests answered ``ok``) for the share each host did.

Printed: files/s per host count, the ratio to one host, each host's share. A simulated host has no cores
of its own, so each is given one core's worth of work by default (``--files-at-once 1``: its analyzers
take one file at a time each and its Rust server analyses that many at once); on a machine with C cores
the ratio then shows whether throughput adds up for up to C hosts. Beyond that they compete for the same
cores, and the ratio measures contention, not the design.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from trackprint.benchmarks import cluster as local_cluster

SR = 22050


def say(message: str) -> None:
    print(message, flush=True)


def generate_library(library: Path, n: int, seconds: float) -> None:
    """N distinct FLAC files of ``seconds`` each (a tone with a tremolo and a noise of its own), reused
    when an earlier run made the same set."""
    import numpy as np
    import soundfile as sf

    marker = library / ".bench-hosts.json"
    wanted = {"files": n, "seconds": seconds}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return
    if library.exists():
        shutil.rmtree(library)
    t = np.arange(int(SR * seconds)) / SR
    for i in range(n):
        path = library / f"album{i // 10:04d}" / f"{i % 10 + 1:02d} track {i}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(i)
        x = 0.3 * np.sin(2 * np.pi * 80.0 * 2 ** ((i % 997) / 120.0) * t) * (0.7 + 0.3 * np.sin(2 * np.pi * (1 + i % 5) * t))
        sf.write(path, (x + 0.05 * rng.standard_normal(t.size)).astype(np.float32), SR, subtype="PCM_16", format="FLAC")
    marker.write_text(json.dumps(wanted))


@dataclass
class AnalyzerHost:
    """One simulated analyzer host: its own Rust server and ``analyzers`` analyzer processes."""

    name: str
    library: Path
    logs: Path
    analyzers: int = 1
    files_at_once: int = 1  # per analyzer, and the Rust server's --max-concurrency: a host's share of cores
    server: subprocess.Popen | None = None
    server_url: str = ""
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(self, nats_urls: str, env: dict) -> None:
        from trackprint import binaries
        from trackprint.analyzer.engines import server_command, wait_ready

        binary = binaries.rust_server_binary()
        if binary is None:
            raise SystemExit("bench-hosts: no trackprint-server binary (run `make setup`)")
        port = binaries.free_port()
        self.server_url = f"http://127.0.0.1:{port}"
        with open(self.logs / f"{self.name}-server.log", "ab") as log:
            self.server = subprocess.Popen(server_command(str(binary), port, [str(self.library)],
                                                          max_concurrency=self.files_at_once * self.analyzers),
                                           stdout=log, stderr=subprocess.STDOUT)
        if not wait_ready(self.server_url, 20.0, lambda: self.server.poll() is None):
            raise SystemExit(f"bench-hosts: {self.name}'s trackprint-server did not start "
                             f"(see {self.logs / f'{self.name}-server.log'})")
        host_env = dict(env, TRACKPRINT_HOST=self.name)
        for i in range(self.analyzers):
            self.procs.append(spawn(self.logs / f"{self.name}-analyzer-{i + 1}.log", host_env, "analyzer",
                                    "--nats", nats_urls, "--library", str(self.library), "--server", self.server_url,
                                    "--concurrency", str(self.files_at_once)))

    def analysed(self) -> int:
        """Requests this host's Rust server answered with a fingerprint (its /metrics)."""
        try:
            text = httpx.get(f"{self.server_url}/metrics", timeout=5).text
        except httpx.HTTPError:
            return -1
        found = re.search(r'^trackprint_requests_total\{outcome="ok"\} (\d+)', text, re.M)
        return int(found.group(1)) if found else -1

    def processes(self) -> list[subprocess.Popen]:
        return [*self.procs, *([self.server] if self.server else [])]


def spawn(log: Path, env: dict, *args: str) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "trackprint.cli", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def stop(procs: list[subprocess.Popen], timeout: float = 30.0) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def count_rows(db_url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    from trackprint.persister.db import normalize_url

    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            one = lambda sql: int(conn.execute(text(sql)).scalar_one())  # noqa: E731
            return {"fingerprints": one("SELECT count(*) FROM track_fingerprints"),
                    "tracks": one("SELECT count(*) FROM tracks"),
                    "distinct_paths": one("SELECT count(DISTINCT path) FROM tracks"),
                    "failures": one("SELECT count(*) FROM analysis_failures")}
    except Exception:  # the persister has not created the schema yet
        return {"fingerprints": 0, "tracks": 0, "distinct_paths": 0, "failures": 0}
    finally:
        engine.dispose()


def empty_database(db_url: str, work: Path, run_name: str) -> str:
    """A fresh database for one run: a new SQLite file, or the PostgreSQL database with its tables dropped."""
    if db_url.startswith("sqlite"):
        return f"sqlite:///{work / f'{run_name}.db'}"
    from sqlalchemy import MetaData, create_engine

    from trackprint.persister.db import normalize_url

    engine = create_engine(normalize_url(db_url))
    try:
        meta = MetaData()
        meta.reflect(engine)
        meta.drop_all(engine)
    finally:
        engine.dispose()
    return db_url


def wait_for_analyzers(nats_urls: str, count: int, timeout_s: float = 120.0) -> None:
    """Block until ``count`` analyzers are pulling from the events consumer (its waiting pull requests), so
    the timed run starts with every host ready, not with the first one to finish importing."""
    import asyncio

    from trackprint import bus

    async def waiting() -> int:
        nc = await bus.connect(nats_urls, name="trackprint-bench-hosts")
        try:
            info = await nc.jetstream().consumer_info(bus.EVENTS_STREAM, bus.ANALYZER_CONSUMER)
            return int(info.num_waiting or 0)
        finally:
            await nc.close()

    deadline = time.monotonic() + timeout_s
    found = 0
    while time.monotonic() < deadline:
        try:
            found = asyncio.run(waiting())
        except Exception:  # the consumer is created by the first service to start
            found = 0
        if found >= count:
            return
        time.sleep(0.5)
    raise SystemExit(f"bench-hosts: only {found} of {count} analyzers pulling after {timeout_s:.0f} s")


def run_hosts(library: Path, files: int, hosts: int, analyzers_per_host: int, db_url: str, work: Path,
              timeout_s: float, files_at_once: int = 1) -> dict:
    """One measured run with ``hosts`` analyzer hosts; the figures as a dict."""
    run_dir = work / f"hosts-{hosts}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    logs = run_dir / "logs"
    logs.mkdir(parents=True)
    db = empty_database(db_url, run_dir, "trackprint")
    nodes = local_cluster.start_cluster(run_dir / "nats")
    urls = local_cluster.urls(nodes)
    env = dict(os.environ, TRACKPRINT_STREAM_REPLICAS="3")
    procs: list[subprocess.Popen] = []
    group = [AnalyzerHost(f"host-{chr(ord('a') + i)}", library, logs, analyzers_per_host, files_at_once)
             for i in range(hosts)]
    try:
        local_cluster.wait_for_jetstream(nodes[0].url)
        procs.append(spawn(logs / "persister.log", env, "persister", "--nats", urls, "--db", db))
        for host in group:
            host.start(urls, env)
        wait_for_analyzers(urls, hosts * analyzers_per_host)
        started = time.monotonic()
        procs.append(spawn(logs / "watcher.log", env, "watcher", "--nats", urls, "--state",
                           str(run_dir / "watcher.sqlite"), "--quiet-s", "0.5", str(library)))
        rows = count_rows(db)
        shown = started
        while rows["fingerprints"] + rows["failures"] < files:
            if time.monotonic() - started > timeout_s:
                raise SystemExit(f"bench-hosts: {hosts} host(s): only {rows['fingerprints']}/{files} rows after "
                                 f"{timeout_s:.0f} s (logs in {logs})")
            time.sleep(0.5)
            rows = count_rows(db)
            if time.monotonic() - shown >= 10:
                shown = time.monotonic()
                say(f"  {hosts} host(s): {rows['fingerprints']}/{files} persisted")
        seconds = time.monotonic() - started
        time.sleep(2.0)  # anything still in flight would show up now as a duplicate or an extra row
        rows = count_rows(db)
        shares = {host.name: host.analysed() for host in group}
        return {"hosts": hosts, "analyzers_per_host": analyzers_per_host, "files_at_once": files_at_once,
                "files": files, "seconds": seconds,
                "files_per_s": files / seconds, "rows": rows, "analysed_by_host": shares,
                "exactly_once": rows["fingerprints"] == rows["tracks"] == rows["distinct_paths"] == files
                and rows["failures"] == 0}
    finally:
        stop(procs)
        for host in group:
            stop(host.processes())
        for node in nodes:
            node.kill()


def run(args: argparse.Namespace) -> int:
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="trackprint-bench-hosts-"))
    library = work / "library"
    say(f"bench-hosts: {args.files} files of {args.seconds:g} s in {library}; {os.cpu_count()} cores here; "
        f"database {args.db or 'SQLite (one file per run)'}")
    generate_library(library, args.files, args.seconds)
    results = []
    for hosts in args.hosts:
        say(f"bench-hosts: {hosts} analyzer host(s), {args.analyzers_per_host} analyzer(s) each ...")
        results.append(run_hosts(library, args.files, hosts, args.analyzers_per_host,
                                 args.db or "sqlite:///", work, args.timeout, args.files_at_once))
    base = results[0]["files_per_s"]
    say(f"{'hosts':>5} {'files/s':>8} {'ratio':>6}  exactly once  analysed by host (Rust server /metrics)")
    for r in results:
        say(f"{r['hosts']:>5} {r['files_per_s']:8.2f} {r['files_per_s'] / base:6.2f}  "
            f"{'yes' if r['exactly_once'] else 'NO: ' + json.dumps(r['rows']):<12}  "
            + ", ".join(f"{name} {n}" for name, n in r["analysed_by_host"].items()))
    if args.json:
        print(json.dumps({"cores": os.cpu_count(), "runs": results}))
    if not args.keep and not args.dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r["exactly_once"] for r in results) else 1
