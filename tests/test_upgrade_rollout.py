"""A fingerprint-spec upgrade through the product's own path, on a library stored by the previous release.

The previous release's analyzer is played by this test: it consumes the watcher's events from the durable
``analyzer`` consumer and publishes, for each, a fingerprint of the previous version (the oldest of
``KNOWN_VERSIONS``), which the persister stores. Then the current release takes over: ``status`` calls every
row stale, ``replay --reanalyse`` (throttled) has the current analyzers re-analyse them, and all along
``similar`` keeps answering, each answer within one version (never a distance between rows of two
versions), until no row is stale."""

import asyncio
import json
import os
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from tests.audio import music_like, write_audio
from tests.procs import run_cli, service, stop_all
from tests.waiting import wait_until
from trackprint import bus
from trackprint.contracts import FingerprintResult, decode_event, encode
from trackprint.fingerprint import FINGERPRINT_VERSION, KNOWN_VERSIONS
from trackprint.persister.db import normalize_url

# a whole pipeline of real processes: left out of the quick loop (scripts/test.sh -m "not slow")
pytestmark = pytest.mark.slow

FILES = 24
OLD = min(KNOWN_VERSIONS)


def write_library(library):
    for i in range(FILES):
        path = library / f"album{i // 6}" / f"{i % 6 + 1:02d} track {i}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_audio(path, music_like(6.0, 22050, seed=100 + i), 22050)


async def previous_release_analyzer(nats_url: str, count: int) -> None:
    """What the previous release's analyzer did with each event: analyse, publish, then ack."""
    from pyengine.engine import analyze_file
    from pyengine.identity import content_id

    nc = await bus.connect(nats_url, "previous-release-analyzer")
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe_bind(durable=bus.ANALYZER_CONSUMER, stream=bus.EVENTS_STREAM)
        done = 0
        while done < count:
            try:
                msgs = await sub.fetch(10, timeout=5)
            except Exception:
                continue
            for msg in msgs:
                event = decode_event(msg.data)
                outcome = analyze_file(event.path)
                st = os.stat(event.path)
                result = FingerprintResult(
                    path=event.path, fingerprint=outcome.fingerprint, fingerprint_version=OLD, engine="python",
                    decode=outcome.decode, timings=outcome.timings, content_id=content_id(event.path),
                    size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino,
                    source_seq=msg.metadata.sequence.stream, host="previous-release")
                await bus.publish(js, bus.result_subject(result.path), encode(result), None)
                await msg.ack()
                done += 1
    finally:
        await nc.close()


def versions(db_url) -> dict[int, int]:
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            return dict(conn.execute(text(
                "SELECT f.fingerprint_version, count(*) FROM track_fingerprints f JOIN tracks t ON t.id = f.track_id "
                "WHERE t.state = 'active' GROUP BY f.fingerprint_version")).all())
    except Exception:  # the persister has not created the schema yet
        return {}
    finally:
        engine.dispose()


def test_a_previous_version_library_is_reanalysed_while_similar_keeps_answering(tmp_path, nats_server, db_url,
                                                                                start_rust_server):
    assert OLD < FINGERPRINT_VERSION, "an upgrade needs a previous version among KNOWN_VERSIONS"
    library = tmp_path / "music"
    write_library(library)
    procs = [service("persister", "--nats", nats_server.url, "--db", db_url),
             service("watcher", "--nats", nats_server.url, "--state", str(tmp_path / "w.sqlite"), "--quiet-s", "0.5",
                     str(library))]
    try:
        # 1. the library as the previous release left it
        asyncio.run(asyncio.wait_for(previous_release_analyzer(nats_server.url, FILES), 300))
        wait_until(lambda: versions(db_url), 120, 0.5, f"{FILES} rows of version {OLD}",
                   until=lambda found: found == {OLD: FILES})
        status = json.loads(run_cli("status", "--json", "--db", db_url, "--nats", nats_server.url).stdout)
        assert status["database"]["stale"] == FILES

        # 2. the current release: its analyzers, then a throttled re-analysis, with `similar` asked all along
        server = start_rust_server([library])
        procs.append(service("analyzer", "--nats", nats_server.url, "--library", str(library), "--server", server.url))
        seed = str(library / "album0" / "01 track 0.flac")
        answers, stop = [], threading.Event()

        def ask_similar():
            while not stop.is_set():
                out = run_cli("similar", "--db", db_url, "--json", "-k", "5", seed, timeout=120)
                answers.append((out.returncode, out.stdout, out.stderr))

        asker = threading.Thread(target=ask_similar)
        asker.start()
        try:
            reanalyse = run_cli("replay", "--reanalyse", "--nats", nats_server.url, "--rate", "2", "--max-lag", "2",
                                timeout=300)
            assert reanalyse.returncode == 0, reanalyse.stderr
            wait_until(lambda: versions(db_url), 180, 0.5, "every row re-analysed",
                       until=lambda found: found == {FINGERPRINT_VERSION: FILES})
            time.sleep(3)  # one more answer once every row is current
        finally:
            stop.set()
            asker.join()
        status = json.loads(run_cli("status", "--json", "--db", db_url, "--nats", nats_server.url).stdout)
        assert status["database"]["stale"] == 0

        # 3. every answer came, each from one version: the seed's own. Just after the seed itself is
        # re-analysed it may be the only track of the new version: then the answer says so (exit 1)
        seen_versions, alone = [], 0
        for code, stdout, stderr in answers:
            if code == 1 and "no track but the seeds has fingerprint version" in stderr:
                alone += 1
                continue
            assert code == 0, stderr
            rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
            assert rows, stdout  # (a match re-analysed since the distances were computed is left out)
            within = {row["fingerprint_version"] for row in rows}
            assert len(within) == 1, rows  # never a distance between two versions
            seen_versions.append(within.pop())
        assert len(seen_versions) >= 3 and alone <= 2, (seen_versions, alone)
        assert seen_versions[0] == OLD and seen_versions[-1] == FINGERPRINT_VERSION, seen_versions
    finally:
        stop_all(procs)
