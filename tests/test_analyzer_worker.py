"""The analyzer worker against a real nats-server, Python engine (and a dead Rust server URL)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time

import nats.js.errors
import numpy as np
import soundfile as sf

from tests.waiting import wait_until_async
from trackprint.paths import Library
from trackprint.analyzer.engines import python_outcome
from trackprint.analyzer.worker import AnalyzerWorker, Transient, WorkerConfig
from trackprint import bus
from trackprint.binaries import free_port
from trackprint.contracts import AnalysisFailure, FileEvent, FingerprintResult, TrackMoved, TrackRemoved, \
    decode_result, encode
from trackprint.errors import ErrorCode


def run(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def make_library(d):
    d.mkdir(exist_ok=True)
    t = np.arange(44100 * 2) / 44100
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype("float32")
    sf.write(str(d / "ok.flac"), np.stack([x, 0.5 * x], 1), 44100)
    sf.write(str(d / "ok.wav"), (0.2 * np.sin(2 * np.pi * 220 * t)).astype("float32"), 44100)
    data = (d / "ok.flac").read_bytes()
    (d / "trunc.flac").write_bytes(data[: len(data) // 2])
    (d / "empty.flac").write_bytes(b"")
    (d / "text.mp3").write_text("hello, not audio " * 20)
    return d


async def results(js, stream=bus.RESULTS_STREAM):
    info = await js.stream_info(stream)
    out = []
    if info.state.messages:
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                out.append(await js.get_msg(stream, seq))
            except nats.js.errors.NotFoundError:  # replaced by a later message of the same file
                continue
    return out


async def _last_seq(js, stream=bus.RESULTS_STREAM) -> int:
    return (await js.stream_info(stream)).state.last_seq


async def wait_results(js, n, timeout=60, stream=bus.RESULTS_STREAM):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msgs = await results(js, stream)
        if len(msgs) >= n:
            return msgs
        await asyncio.sleep(0.2)
    raise AssertionError(f"only {len(await results(js, stream))} of {n} messages")


async def publish_event(js, **kw):
    ev = FileEvent(root=kw.pop("root", "/"), **kw)
    await bus.publish(js, bus.event_subject(ev.path), encode(ev), ev.msg_id())


class Running:
    def __init__(self, url, config, topology=None):
        self.url, self.config, self.topology = url, config, topology

    async def __aenter__(self):
        self.nc = await bus.connect(self.url, "test")
        self.js = self.nc.jetstream()
        await bus.ensure_topology(self.js, self.topology)
        self.worker = AnalyzerWorker(self.config, js=self.js)
        self.task = asyncio.create_task(self.worker.run())
        return self

    async def __aexit__(self, *exc):
        self.worker.stop()
        await asyncio.wait_for(self.task, 30)
        await bus.close(self.nc)


def test_python_engine_results_failures_reuse_and_deadletter(nats_server, tmp_path):
    lib = make_library(tmp_path / "lib")

    async def main():
        cfg = WorkerConfig(use_rust=False, concurrency=2, library=Library((str(tmp_path),)))
        async with Running(nats_server.url, cfg) as r:
            js = r.js
            names = ["ok.flac", "ok.wav", "trunc.flac", "empty.flac", "text.mp3", "missing.flac"]
            for name in names:
                p = lib / name
                await publish_event(js, kind="added", path=str(p), size=p.stat().st_size if p.exists() else None)
            msgs = await wait_results(js, len(names))
            by_path = {}
            for m in msgs:
                res = decode_result(m.data)
                by_path[os.path.basename(res.path)] = (m, res)
            ok = by_path["ok.flac"][1]
            assert isinstance(ok, FingerprintResult) and ok.engine == "python" and not ok.reused
            assert ok.content_id.startswith("flac-") and ok.source_seq == 1 and ok.fallback_reason is None
            assert by_path["ok.flac"][0].subject == bus.result_subject(str(lib / "ok.flac"))  # the file's own subject
            assert isinstance(by_path["ok.wav"][1], FingerprintResult)
            codes = {n: by_path[n][1].code for n in ("trunc.flac", "empty.flac", "text.mp3", "missing.flac")}
            assert codes == {"trunc.flac": ErrorCode.TRUNCATED, "empty.flac": ErrorCode.EMPTY_FILE,
                             "text.mp3": ErrorCode.UNSUPPORTED_FORMAT, "missing.flac": ErrorCode.NOT_FOUND}
            assert by_path["text.mp3"][0].subject == bus.result_subject(str(lib / "text.mp3"))
            assert all(isinstance(by_path[n][1], AnalysisFailure) for n in codes)

            # the same audio at another path (a copy with a different tag block): reused, no analysis
            copy = tmp_path / "lib" / "copy.flac"
            shutil.copy(lib / "ok.flac", copy)
            engine_runs = r.worker.counts.get("engine_python", 0)
            before = (await js.stream_info(bus.RESULTS_STREAM)).state.last_seq
            await publish_event(js, kind="added", path=str(copy), size=copy.stat().st_size)
            # a move, as the watcher publishes it: the old path's tombstone carries the row, and the new path
            # gets its own outcome
            os.rename(lib / "ok.flac", lib / "new.flac")
            await publish_event(js, kind="removed", path=str(lib / "ok.flac"), reason="moved",
                                new_path=str(lib / "new.flac"))
            await publish_event(js, kind="moved", path=str(lib / "new.flac"), old_path=str(lib / "ok.flac"))
            await publish_event(js, kind="removed", path=str(lib / "ok.wav"))
            await wait_until_async(lambda: _last_seq(js), 60, message="4 more results",
                                   until=lambda last: last >= before + 4)
            extra = [decode_result(m.data) for m in await results(js) if m.seq > before]
            assert len(extra) == 4
            reused = [x for x in extra if isinstance(x, FingerprintResult)]
            assert len(reused) == 2 and all(x.reused and x.fingerprint == ok.fingerprint for x in reused)
            assert {x.path for x in reused} == {str(copy), str(lib / "new.flac")}
            assert r.worker.counts.get("engine_python", 0) == engine_runs
            assert any(isinstance(x, TrackMoved) and x.old_path == str(lib / "ok.flac")
                       and x.path == str(lib / "new.flac") for x in extra)
            assert any(isinstance(x, TrackRemoved) and x.path == str(lib / "ok.wav") for x in extra)

            # a malformed event: terminated, and recorded in the dead-letter stream
            await bus.publish(js, bus.event_subject("added"), b'{"type": "file_event", "kind": "exploded"}', "bad")
            dead = await wait_results(js, 1, stream=bus.DEADLETTER_STREAM)
            records = [json.loads(m.data) for m in dead if m.subject == "trackprint.deadletter.malformed"]
            assert records and "malformed event" in records[0]["reason"]
            await wait_results(js, 2, stream=bus.DEADLETTER_STREAM)  # + the MSG_TERMINATED advisory
            assert (await js.stream_info(bus.RESULTS_STREAM)).state.last_seq == before + 4  # no result for it
            info = await js.consumer_info(bus.EVENTS_STREAM, bus.ANALYZER_CONSUMER)
            assert info.num_ack_pending == 0

    run(main())


def test_dead_rust_server_costs_one_connection_failure(nats_server, tmp_path):
    lib = make_library(tmp_path / "lib")

    async def main():
        cfg = WorkerConfig(use_rust=True, server=f"http://127.0.0.1:{free_port()}", concurrency=1,
                           breaker_threshold=1, breaker_cooldown_s=600, library=Library((str(tmp_path),)))
        async with Running(nats_server.url, cfg) as r:
            for name in ("ok.flac", "ok.wav", "text.mp3"):
                await publish_event(r.js, kind="added", path=str(lib / name))
            msgs = await wait_results(r.js, 3)
            res = [decode_result(m.data) for m in msgs]
            fps = [x for x in res if isinstance(x, FingerprintResult)]
            assert len(fps) == 2 and all(x.engine == "python" for x in fps)
            assert all(x.fallback_reason and "rust unavailable" in x.fallback_reason for x in fps)
            failure = [x for x in res if isinstance(x, AnalysisFailure)][0]
            assert failure.code == ErrorCode.UNSUPPORTED_FORMAT and failure.engine == "python"
            assert r.worker.rust.calls == 1 and r.worker.rust.connection_failures == 1
            assert r.worker.rust.breaker_open

    run(main())


def test_transient_error_naks_then_final_failure_and_term(nats_server, tmp_path, monkeypatch):
    async def always_transient(self, event, seq, attempts):
        raise Transient(ErrorCode.IO_ERROR, "EIO reading the file", "decode", "python")

    monkeypatch.setattr(AnalyzerWorker, "_analyse", always_transient)

    async def main():
        topo = bus.Topology(max_deliver=3, ack_wait_s=5)
        cfg = WorkerConfig(use_rust=False, concurrency=1, nak_delay_s=0.2, topology=topo,
                           library=Library((str(tmp_path),)))
        async with Running(nats_server.url, cfg, topo) as r:
            await publish_event(r.js, kind="added", path=str(tmp_path / "x.flac"))
            msgs = await wait_results(r.js, 1, timeout=30)
            failure = decode_result(msgs[0].data)
            assert isinstance(failure, AnalysisFailure)
            assert failure.code == ErrorCode.IO_ERROR and failure.attempts == 3
            assert r.worker.counts["naks"] == 2
            dead = await wait_results(r.js, 1, stream=bus.DEADLETTER_STREAM)
            assert "MSG_TERMINATED" in dead[0].subject

    run(main())


def test_the_library_boundary_holds_whatever_the_bus_says(nats_server, start_rust_server, tmp_path):
    """Events naming paths outside the library, directly or through a symlink, are refused by both
    engines alike (no fallback), no byte of such a file reaches any message, and a removal or move
    outside the library is a dead letter, not a tombstone."""
    lib = make_library(tmp_path / "lib")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:*:19000:0:99999:7:::\n")
    (lib / "link.flac").symlink_to(secret)
    server = start_rust_server([lib])

    async def main():
        cfg = WorkerConfig(use_rust=True, server=server.url, concurrency=1, library=Library((str(lib),)))
        async with Running(nats_server.url, cfg) as r:
            js = r.js
            await publish_event(js, kind="added", path=str(secret))
            await publish_event(js, kind="added", path=str(lib / "link.flac"))
            await publish_event(js, kind="added", path=str(lib / ".." / "secret.txt"))
            got = await wait_results(js, 3)
            for m in got:
                assert b"root:" not in m.data
                result = decode_result(m.data)
                assert isinstance(result, AnalysisFailure) and result.code == ErrorCode.OUTSIDE_LIBRARY, result
                assert result.engine is None  # refused before any engine saw it
            assert any("symlink" in decode_result(m.data).message for m in got)
            await publish_event(js, kind="removed", path="/etc/passwd")
            await publish_event(js, kind="moved", path="/etc/passwd", old_path=str(lib / "ok.flac"))
            async def malformed_reasons():
                dead = await results(js, bus.DEADLETTER_STREAM)  # the records and the servers' advisories
                return [json.loads(m.data)["reason"] for m in dead if m.subject == "trackprint.deadletter.malformed"]

            reasons = await wait_until_async(malformed_reasons, 60, 0.2, "both refusals dead-lettered",
                                             until=lambda r: len(r) >= 2)
            assert len(reasons) == 2 and all("outside the library" in r for r in reasons), reasons
            assert len(await results(js)) == 3

    run(main())


def test_symlinks_leaving_the_library_when_the_user_allows_them(nats_server, start_rust_server, tmp_path):
    """With allow_symlinks_outside, a symlink in the library to music elsewhere is analysed, by the
    Rust engine (no fallback: both engines apply the same policy) and the Python engine alike, to the
    same fingerprint; a path that is itself outside, or escapes with ``..``, is still refused."""
    lib, elsewhere = tmp_path / "lib", make_library(tmp_path / "elsewhere")
    lib.mkdir()
    (lib / "link.flac").symlink_to(elsewhere / "ok.flac")
    allowing = Library((str(lib),), allow_symlinks_outside=True)
    server = start_rust_server([lib], allow_symlinks_outside=True)

    async def main():
        cfg = WorkerConfig(use_rust=True, server=server.url, concurrency=1, library=allowing)
        async with Running(nats_server.url, cfg) as r:
            await publish_event(r.js, kind="added", path=str(lib / "link.flac"))
            await publish_event(r.js, kind="added", path=str(elsewhere / "ok.flac"))
            await publish_event(r.js, kind="added", path=str(lib / ".." / "elsewhere" / "ok.wav"))
            return [decode_result(m.data) for m in await wait_results(r.js, 3)]

    got = run(main())
    linked = next(x for x in got if x.path == str(lib / "link.flac"))
    assert isinstance(linked, FingerprintResult) and linked.engine == "rust", linked
    refused = [x for x in got if x is not linked]
    assert all(isinstance(x, AnalysisFailure) and x.code == ErrorCode.OUTSIDE_LIBRARY for x in refused), refused
    python = python_outcome(str(lib / "link.flac"), library=allowing)
    assert python.error is None and python.engine == "python", python
    by_engine = {"rust": linked.fingerprint, "python": python.fingerprint}
    assert abs(by_engine["rust"].lufs - by_engine["python"].lufs) < 0.5, by_engine


def test_the_files_in_hand_are_reported_in_the_status_bucket(nats_server, tmp_path):
    """While an analyzer works on a file, its status report names it (what `up`'s console shows as
    "analysing ..."); once done, the report is empty again."""
    lib = tmp_path / "lib"
    lib.mkdir()
    t = np.arange(22050 * 600) / 22050  # ten minutes: seconds of analysis for the Python engine
    sf.write(str(lib / "long.flac"), (0.3 * np.sin(2 * np.pi * 440 * t)).astype("float32"), 22050)

    async def main():
        cfg = WorkerConfig(use_rust=False, concurrency=1, library=Library((str(lib),)))
        async with Running(nats_server.url, cfg) as r:
            await publish_event(r.js, kind="added", path=str(lib / "long.flac"))

            async def reports():
                kv = await bus.status_kv(r.js)
                found = []
                for key in await kv.keys():
                    if key.startswith("analyzer."):
                        found += json.loads((await kv.get(key)).value)["analysing"]
                return found

            await wait_until_async(reports, 60, 0.1, "the file in hand reported",
                                   until=lambda paths: paths == [str(lib / "long.flac")], ignore=(Exception,))
            await wait_results(r.js, 1, timeout=120)
            await wait_until_async(reports, 60, 0.5, "the report emptied", until=lambda paths: paths == [])

    run(main(), timeout=300)
