"""``trackprint analyze``: the JSON contract, exit statuses, table output, parallel runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.audio import SR, assert_valid, click_track, music_like, sine, stereo, write_audio
from tests.procs import run_cli
from trackprint.fingerprint import DIMENSIONS, FINGERPRINT_VERSION

OK_KEYS = {"path", "ok", "fingerprint", "fingerprint_version", "engine", "duration_s"}


def trackprint(*args: str) -> subprocess.CompletedProcess:
    return run_cli(*args, timeout=300)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> list[Path]:
    """Six short, different tracks."""
    d = tmp_path_factory.mktemp("library")
    signals = [
        stereo(sine(1000, 2.0)),
        stereo(click_track(120, 6.0)),
        music_like(4.0, seed=1),
        music_like(3.0, seed=2, bpm=90),
        stereo(sine(100, 2.5, db=-12)),
        music_like(2.0, seed=3),
    ]
    return [write_audio(d / f"track{i}.flac", x, SR) for i, x in enumerate(signals)]


def test_json_one_object_per_line_in_input_order(library):
    paths = [str(p) for p in library]
    # default --jobs: every core, results still in input order
    out = trackprint("analyze", "--engine", "python", "--json", *paths)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == len(paths)
    results = [json.loads(line) for line in lines]
    assert [r["path"] for r in results] == paths
    for r in results:
        assert OK_KEYS <= set(r)
        assert r["ok"] is True and r["engine"] == "python"
        assert r["fingerprint_version"] == FINGERPRINT_VERSION
        assert list(r["fingerprint"]) == list(DIMENSIONS)
        assert_valid(r["fingerprint"])
        assert r["duration_s"] > 1.5
    assert results[0]["fingerprint"]["mid_pct"] > 99
    assert results[1]["fingerprint"]["tempo_bpm"] == pytest.approx(120, abs=1)
    assert results[4]["fingerprint"]["bass_pct"] > 95


def test_parallel_run_matches_the_engine_in_process(library):
    from trackprint.pyengine.engine import analyze_file

    paths = [str(p) for p in library]
    parallel = trackprint("analyze", "--engine", "python", "--json", "--jobs", "2", *paths)
    assert parallel.returncode == 0, parallel.stderr
    got = [json.loads(line)["fingerprint"] for line in parallel.stdout.splitlines()]
    assert got == [analyze_file(p).fingerprint.as_dict() for p in paths]


def test_any_failure_gives_status_1_and_a_typed_error(library, tmp_path):
    missing = str(tmp_path / "gone.flac")
    junk = tmp_path / "junk.flac"
    junk.write_bytes(b"definitely not audio" * 100)
    out = trackprint("analyze", "--engine", "python", "--json", str(library[0]), missing, str(junk))
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    ok, gone, bad = [json.loads(line) for line in out.stdout.splitlines()]
    assert ok["ok"] is True
    for result, code, path in ((gone, "not_found", missing), (bad, "unsupported_format", str(junk))):
        assert result["ok"] is False and result["path"] == path
        assert result["error"]["code"] == code
        assert path in result["error"]["message"] and code in result["error"]["message"]
        assert "fingerprint" not in result


def test_a_finished_command_leaves_no_pool_thread_for_the_exit_hook_to_race(library):
    """The cause of a rare "Exception ignored ... Bad file descriptor" traceback after ``analyze``: Python
    3.11's exit hook writes to the pipe of any process pool whose manager thread is still alive, while
    that thread closes the pipe. Once the engines are closed no such thread may be left."""
    import asyncio
    import concurrent.futures.process as pool_internals

    from trackprint.analyzer.engines import analyse_many

    async def run() -> list:
        return [o async for o in analyse_many([str(p) for p in library[:2]], "python", jobs=2)]

    assert all(o.error is None for o in asyncio.run(run()))
    assert not [t for t, wakeup in pool_internals._threads_wakeups.items() if t.is_alive() and not wakeup._closed]


def test_table_output(library, tmp_path):
    missing = str(tmp_path / "gone.flac")
    out = trackprint("analyze", "--engine", "python", str(library[1]), missing)
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert "LUFS" in lines[0] and "BPM" in lines[0] and "path" in lines[0]
    assert lines[1].startswith("python") and lines[1].endswith(str(library[1]))
    assert "120" in lines[1]  # the click track's tempo
    assert lines[2].startswith("FAILED") and "not_found" in lines[2]
    assert not any(line.lstrip().startswith("{") for line in lines)
    assert "1 fingerprinted, 1 failed" in out.stderr


def test_default_engine_fingerprints(library):
    out = trackprint("analyze", "--json", str(library[0]))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["ok"] and result["engine"] in ("python", "rust")
    assert_valid(result["fingerprint"])


def test_usage_errors_exit_2():
    assert trackprint("analyze").returncode == 2
    assert trackprint("analyze", "--engine", "nope", "x.flac").returncode == 2


def test_bench_reports_decode_and_engine_columns(library):
    folder = library[0].parent
    out = trackprint("bench", str(folder), "--engines", "decode,python", "--jobs", "1", "--limit", "2", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "bench: 2 FLAC files" in out.stdout
    lines = out.stdout.splitlines()
    assert any(line.startswith("decode ") for line in lines) and any(line.startswith("python ") for line in lines)
    figures = json.loads(lines[-1])
    assert figures["files"] == 2 and set(figures["engines"]) == {"decode", "python"}
    for entry in figures["engines"].values():
        assert entry["failed"] == 0 and entry["wall_s"] > 0 and entry["x_realtime"] > 1
        assert 10 < entry["peak_worker_rss_mb"] < 2000
    assert figures["engines"]["decode"]["ratio_to_decode"] == 1.0


def test_bench_refuses_a_folder_without_flac(tmp_path):
    out = trackprint("bench", str(tmp_path))
    assert out.returncode == 2 and "no .flac files" in out.stderr
