"""The several-hosts topology on loopback: a 3-node NATS cluster with R3 streams, two analyzers,
the persister on PostgreSQL; the stream leader is killed in the middle of a backfill."""

import asyncio
import os
import signal
import subprocess
import time

import nats
import pytest
from sqlalchemy import create_engine, text

from trackprint import bus
from tests.audio import write_tone_library
from tests.procs import service, stop_all
from tests.waiting import wait_until, wait_until_async
from trackprint.persister.db import normalize_url
from trackprint.binaries import free_port, nats_server_binary

# a whole pipeline of real processes: left out of the quick loop (scripts/test.sh -m "not slow")
pytestmark = pytest.mark.slow

FILES = 200
SR = 16000


class ClusterNode:
    def __init__(self, name, base, port, cluster_port, routes):
        self.name, self.port = name, port
        self.store = base / name
        self.store.mkdir(parents=True)
        self.config = base / f"{name}.conf"
        self.log = base / f"{name}.log"
        self.config.write_text(
            f"server_name: {name}\nlisten: 127.0.0.1:{port}\n"
            f"jetstream {{ store_dir: \"{self.store}\", sync_interval: always }}\n"
            f"cluster {{ name: trackprint-test, listen: 127.0.0.1:{cluster_port}, "
            f"routes: [{', '.join(f'nats-route://127.0.0.1:{p}' for p in routes)}] }}\n"
        )
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([nats_server_binary(), "-c", str(self.config)],
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def start_cluster(base):
    ports = [free_port() for _ in range(3)]
    cluster_ports = [free_port() for _ in range(3)]
    nodes = [ClusterNode(f"n{i + 1}", base, ports[i], cluster_ports[i],
                         [p for j, p in enumerate(cluster_ports) if j != i]) for i in range(3)]
    for node in nodes:
        node.start()
    return nodes


async def jetstream_answers(url):
    nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=0)
    try:
        return await nc.jetstream().account_info()
    finally:
        await nc.close()


async def wait_for_jetstream(url, timeout=60):
    await wait_until_async(lambda: jetstream_answers(url), timeout, 0.5,
                           "the 3-node cluster to elect a JetStream meta leader", ignore=(Exception,))


async def stream_leader(url):
    nc = await nats.connect(url, connect_timeout=2)
    try:
        info = await nc.jetstream().stream_info(bus.EVENTS_STREAM)
        return info.cluster.leader, info.config.num_replicas
    finally:
        await nc.close()


def count(engine, sql):
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def test_leader_killed_mid_backfill_every_file_persisted_exactly_once(tmp_path, pg_url):
    library = tmp_path / "music"
    library.mkdir()
    write_tone_library(library, FILES, SR, base_hz=110, step_hz=7, seed=3)

    nodes = start_cluster(tmp_path / "nats")
    urls = ",".join(f"nats://127.0.0.1:{n.port}" for n in nodes)
    env = dict(os.environ, TRACKPRINT_STREAM_REPLICAS="3", TRACKPRINT_ACK_WAIT_S="20")
    procs = []
    try:
        asyncio.run(wait_for_jetstream(f"nats://127.0.0.1:{nodes[0].port}"))
        logs = tmp_path / "logs"
        logs.mkdir()

        def spawn(name, *args):
            proc = service(*args, log=logs / f"{name}.log", env=env)
            procs.append(proc)
            return proc

        spawn("persister", "persister", "--nats", urls, "--db", pg_url)
        spawn("analyzer-1", "analyzer", "--nats", urls, "--library", str(library), "--no-rust")
        spawn("analyzer-2", "analyzer", "--nats", urls, "--library", str(library), "--no-rust")
        spawn("watcher", "watcher", "--nats", urls, "--state", str(tmp_path / "watcher.sqlite"),
              "--quiet-s", "0.5", str(library))

        engine = create_engine(normalize_url(pg_url))
        done = wait_until(lambda: count(engine, "SELECT count(*) FROM track_fingerprints"), 120, 0.5,
                          "the backfill to reach the kill point", until=lambda n: n >= FILES // 5,
                          ignore=(Exception,))
        assert 0 < done < FILES, f"backfill did not reach the kill point in time ({done} rows)"

        leader, replicas = asyncio.run(stream_leader(urls.split(",")[0]))
        assert replicas == 3
        victim = next(n for n in nodes if n.name == leader)
        victim.kill()  # the events stream's leader dies in the middle of the backfill

        wait_until(lambda: count(engine, "SELECT count(*) FROM track_fingerprints"), 240, 1.0,
                   f"{FILES} fingerprint rows", until=lambda n: n >= FILES)
        time.sleep(3.0)  # anything still in flight would show up as a duplicate or an extra row now
        assert count(engine, "SELECT count(*) FROM track_fingerprints") == FILES
        assert count(engine, "SELECT count(*) FROM tracks") == FILES
        assert count(engine, "SELECT count(DISTINCT path) FROM tracks") == FILES
        assert count(engine, "SELECT count(*) FROM analysis_failures") == 0
        engine.dispose()
    finally:
        stop_all(procs)
        for node in nodes:
            node.kill()
