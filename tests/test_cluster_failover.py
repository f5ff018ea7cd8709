"""The several-hosts topology on loopback: a 3-node NATS cluster with R3 streams, two analyzers,
the persister on PostgreSQL; the stream leader is killed in the middle of a backfill."""

import asyncio
import os
import time

import nats
import pytest
from sqlalchemy import create_engine, text

from trackprint import bus
from tests.audio import write_tone_library
from tests.procs import service, stop_all
from tests.waiting import wait_until
from trackprint.persister.db import normalize_url
from trackprint.benchmarks.cluster import start_cluster, urls as cluster_urls, wait_for_jetstream

# a whole pipeline of real processes: left out of the quick loop (scripts/test.sh -m "not slow")
pytestmark = pytest.mark.slow

FILES = 200
SR = 16000


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
    urls = cluster_urls(nodes)
    env = dict(os.environ, TRACKPRINT_STREAM_REPLICAS="3", TRACKPRINT_ACK_WAIT_S="20")
    procs = []
    try:
        wait_for_jetstream(nodes[0].url)
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
