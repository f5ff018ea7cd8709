"""The Rust analysis server (rust-server/): parity with the Python engine, the
EBU Tech 3341 loudness cases, typed errors for bad input, a fuzz run, library
roots, saturation (503 busy) and the CLI's use of it.

Runs the real binary (scripts/setup.sh builds it into .venv/bin) through
tests/fixtures_rust.py. A missing binary is a failure, not a skip: the fast
engine silently missing is the very failure this product exists to prevent.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.audio import GOLDEN, id3v2_tag, music_like, segments, write_audio
from tests.fixtures_rust import RustServer, rust_server_binary
from tests.procs import run_cli
from trackprint.binaries import free_port
from trackprint.fingerprint import DIMENSIONS, FINGERPRINT_VERSION, PARITY_TOLERANCE

SR = 44_100

STATUS = {
    "not_found": 404, "not_a_file": 422, "empty_file": 422, "unsupported_format": 415, "corrupt": 422,
    "truncated": 422, "too_short": 422, "outside_library": 403, "timeout": 504, "too_large": 413,
    "io_error": 500, "internal": 500, "busy": 503, "bad_request": 400,
}


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("library")


@pytest.fixture(scope="module")
def server(library, tmp_path_factory):
    s = RustServer([library, GOLDEN], max_concurrency=4, log_path=tmp_path_factory.mktemp("logs") / "server.log")
    s.start()
    yield s
    assert s.healthy(), "the server died during the tests"
    s.stop()


def assert_typed(response: httpx.Response, code: str | None = None) -> dict:
    """200 with 25 finite numbers, or a typed error whose status matches its code."""
    body = response.json()
    if response.status_code == 200:
        fp = body["fingerprint"]
        assert list(fp) == list(DIMENSIONS)
        assert all(np.isfinite(v) for v in fp.values())
        assert body["engine"] == "rust" and body["fingerprint_version"] == FINGERPRINT_VERSION
        assert code is None, f"expected {code}, got a fingerprint"
        return body
    error = body["error"]
    assert STATUS[error["code"]] == response.status_code, body
    assert error["message"]
    if code is not None:
        assert error["code"] == code, body
    return body


# -- parity ---------------------------------------------------------------------------
def test_golden_parity(server):
    golden = json.loads((GOLDEN / "golden.json").read_text())["files"]
    failures, worst = [], dict.fromkeys(DIMENSIONS, 0.0)
    for name, expected in golden.items():
        response = server.fingerprint(GOLDEN / name)
        if not expected["ok"]:
            assert_typed(response, expected["code"])
            continue
        body = assert_typed(response)
        assert body["decode"]["sample_rate"] == expected["decode"]["sample_rate"], name
        assert body["decode"]["channels"] == expected["decode"]["channels"], name
        for dim in DIMENSIONS:
            diff = abs(body["fingerprint"][dim] - expected["fingerprint"][dim])
            worst[dim] = max(worst[dim], diff)
            if diff > PARITY_TOLERANCE[dim]:
                failures.append(f"{name}: {dim} rust={body['fingerprint'][dim]} python={expected['fingerprint'][dim]}")
    print("max |rust - python|:", json.dumps(worst, indent=1))
    assert not failures, "\n".join(failures)


def test_tolerance_copy_is_current():
    assert json.loads((GOLDEN / "tolerance.json").read_text()) == PARITY_TOLERANCE


# -- EBU Tech 3341 ----------------------------------------------------------------------
EBU_3341 = {
    1: ([(-23, 20)], -23.0),
    2: ([(-33, 20)], -33.0),
    3: ([(-36, 10), (-23, 60), (-36, 10)], -23.0),
    4: ([(-72, 10), (-36, 10), (-23, 60), (-36, 10), (-72, 10)], -23.0),
    5: ([(-26, 20), (-20, 20.1), (-26, 20)], -23.0),
}


@pytest.mark.parametrize("case", sorted(EBU_3341))
def test_ebu_3341(server, library, case):
    parts, expected = EBU_3341[case]
    path = library / f"ebu3341_case{case}.flac"
    write_audio(path, segments(parts, freq=1000.0, sr=48_000, channels=2), 48_000, subtype="PCM_24")
    body = assert_typed(server.fingerprint(path))
    assert abs(body["fingerprint"]["lufs"] - expected) <= 0.1


# -- robustness ---------------------------------------------------------------------------
def _music(duration_s: float, sr: int = SR, channels: int = 2, seed: int = 0) -> np.ndarray:
    return music_like(duration_s, sr, seed=seed, channels=channels)


@pytest.fixture(scope="module")
def bad_inputs(library) -> dict[str, tuple[Path, str | None]]:
    d = library / "robustness"
    d.mkdir()
    cases: dict[str, tuple[Path, str | None]] = {}

    def put(name, data: bytes, code):
        (d / name).write_bytes(data)
        cases[name] = (d / name, code)

    put("empty.flac", b"", "empty_file")
    (d / "a_directory.flac").mkdir()
    cases["directory"] = (d / "a_directory.flac", "not_a_file")
    put("text.mp3", b"this is not audio, just some text\n" * 20, "unsupported_format")
    put("random.flac", random.Random(1).randbytes(50_000), "unsupported_format")
    write_audio(d / "whole.flac", _music(4.0), SR)
    whole = (d / "whole.flac").read_bytes()
    cases["whole.flac"] = (d / "whole.flac", None)
    put("truncated.flac", whole[: len(whole) // 2], "truncated")
    put("header_only.flac", whole[:8192 if len(whole) > 8192 else 100][:200], "truncated")
    write_audio(d / "whole.wav", _music(4.0), SR)
    wav = (d / "whole.wav").read_bytes()
    put("truncated.wav", wav[: len(wav) // 2], "truncated")
    put("flac_named.mp3", whole, None)
    put("id3_prefixed.flac", id3v2_tag("title", padding=100) + whole, None)
    write_audio(d / "hires.flac", _music(2.0, 96_000), 96_000, subtype="PCM_24")
    cases["hires.flac"] = (d / "hires.flac", None)
    write_audio(d / "mono.flac", _music(2.0, channels=1), SR)
    cases["mono.flac"] = (d / "mono.flac", None)
    write_audio(d / "six.flac", _music(2.0, channels=6), SR)
    cases["six.flac"] = (d / "six.flac", None)
    write_audio(d / "five_ms.flac", _music(0.005), SR)
    cases["five_ms.flac"] = (d / "five_ms.flac", "too_short")
    write_audio(d / "silence.flac", np.zeros((2 * SR, 2), dtype=np.float32), SR)
    cases["silence.flac"] = (d / "silence.flac", None)
    cases["missing.flac"] = (d / "missing.flac", "not_found")
    return cases


ROBUSTNESS = ["empty.flac", "directory", "text.mp3", "random.flac", "whole.flac", "truncated.flac",
              "header_only.flac", "truncated.wav", "flac_named.mp3", "id3_prefixed.flac", "hires.flac",
              "mono.flac", "six.flac", "five_ms.flac", "silence.flac", "missing.flac"]


@pytest.mark.parametrize("name", ROBUSTNESS)
def test_bad_and_odd_inputs_are_typed(server, bad_inputs, name):
    path, code = bad_inputs[name]
    body = assert_typed(server.fingerprint(path), code)
    if code is not None:
        # the raw reason and the stage: the path is the request's own, never repeated in the message
        assert body["error"]["stage"] and str(path) not in body["error"]["message"]
    assert server.healthy()


def test_id3_tag_does_not_change_the_fingerprint(server, bad_inputs):
    plain = server.fingerprint(bad_inputs["whole.flac"][0]).json()["fingerprint"]
    tagged = server.fingerprint(bad_inputs["id3_prefixed.flac"][0]).json()["fingerprint"]
    assert plain == tagged


def test_silence_and_layouts(server, bad_inputs):
    silence = server.fingerprint(bad_inputs["silence.flac"][0]).json()
    assert silence["fingerprint"]["silence_ratio"] == 1.0 and silence["fingerprint"]["lufs"] == -70.0
    hires = server.fingerprint(bad_inputs["hires.flac"][0]).json()["decode"]
    assert (hires["sample_rate"], hires["bits_per_sample"]) == (96_000, 24)
    assert server.fingerprint(bad_inputs["six.flac"][0]).json()["decode"]["channels"] == 6


def test_bad_request_is_typed(server):
    response = server.client.post(f"{server.url}/v1/fingerprint", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"


# -- fuzz -----------------------------------------------------------------------------------
def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(5)
    if kind == 0:  # bit flips
        for _ in range(rng.randint(1, 20)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncation
        b = b[: rng.randrange(1, len(b))]
    elif kind == 2:  # inserted run
        i = rng.randrange(len(b))
        b[i:i] = rng.randbytes(rng.randint(1, 64))
    elif kind == 3:  # deleted run
        i = rng.randrange(len(b))
        del b[i:i + rng.randint(1, 64)]
    else:  # header damage: flips in the first 256 bytes
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(min(256, len(b)))
            b[i] = rng.randrange(256)
    return bytes(b)


def test_fuzz_mutated_files(server, library):
    d = library / "fuzz"
    d.mkdir()
    music = _music(0.6, 22_050, channels=2, seed=3)
    seeds = {}
    for name in ("s.flac", "s.wav", "s.mp3", "s.ogg"):
        seeds[name] = write_audio(d / name, music, 22_050).read_bytes()
    rng = random.Random(20240601)
    jobs = []
    for i in range(3200):
        name = rng.choice(sorted(seeds))
        path = d / f"m{i % 64:02d}_{i}{Path(name).suffix}"
        path.write_bytes(_mutate(rng, seeds[name]))
        jobs.append(path)
    started = time.monotonic()
    codes: dict[str, int] = {}

    def one(path: Path) -> str:
        response = server.fingerprint(path, deadline_ms=20_000)
        assert_typed(response)
        path.unlink()
        return "ok" if response.status_code == 200 else response.json()["error"]["code"]

    with ThreadPoolExecutor(4) as pool:
        for code in pool.map(one, jobs):
            codes[code] = codes.get(code, 0) + 1
    elapsed = time.monotonic() - started
    print("fuzz outcomes:", codes, f"{elapsed:.1f} s")
    internal = [line for line in server.log_text().splitlines() if "internal" in line]
    # a panic inside a decoder is caught and answered as `internal`; anything else internal is our bug
    assert all("panic" in line for line in internal), internal
    assert elapsed < 180
    assert server.healthy()


# -- library roots --------------------------------------------------------------------------
def test_paths_outside_the_roots(server, library, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    write_audio(outside / "secret.flac", _music(1.0), SR)
    escape = library / ".." / outside.name / "secret.flac"
    assert_typed(server.fingerprint(escape), "outside_library")
    link = library / "escape_link.flac"
    link.symlink_to(outside / "secret.flac")
    assert_typed(server.fingerprint(link), "outside_library")
    dir_link = library / "escape_dir"
    dir_link.symlink_to(outside)
    assert_typed(server.fingerprint(dir_link / "secret.flac"), "outside_library")
    assert_typed(server.fingerprint("/etc/passwd"), "outside_library")
    assert_typed(server.fingerprint("relative/path.flac"), "bad_request")  # refused before any filesystem call


# -- saturation, deadlines, endpoints ---------------------------------------------------------
@pytest.fixture(scope="module")
def long_file(library) -> Path:
    path = library / "long.flac"
    write_audio(path, _music(120.0, SR, channels=2, seed=9), SR)
    return path


def test_busy_when_saturated(library, long_file, start_rust_server):
    s = start_rust_server([library], max_concurrency=1)
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda _: s.fingerprint(long_file), range(6)))
    statuses = [r.status_code for r in responses]
    assert 200 in statuses, statuses
    busy = [r for r in responses if r.status_code == 503]
    assert busy, statuses
    for r in busy:
        assert r.json()["error"]["code"] == "busy" and r.headers.get("retry-after")
    ready = s.client.get(f"{s.url}/ready").json()
    assert ready["max_concurrency"] == 1 and ready["free_slots"] == 1
    metrics = s.client.get(f"{s.url}/metrics").text
    assert 'trackprint_requests_total{outcome="busy"}' in metrics
    assert s.healthy()


def test_deadline_stops_the_work(server, long_file):
    response = server.fingerprint(long_file, deadline_ms=5)
    assert_typed(response, "timeout")
    assert response.status_code == 504


def test_endpoints(server, library):
    assert server.client.get(f"{server.url}/health").json()["status"] == "ok"
    ready = server.client.get(f"{server.url}/ready").json()
    assert ready["fingerprint_version"] == FINGERPRINT_VERSION and ready["max_concurrency"] == 4
    assert str(library.resolve()) in ready["roots"]
    metrics = server.client.get(f"{server.url}/metrics").text
    for needle in ("trackprint_requests_total{outcome=\"ok\"}", "trackprint_errors_total{code=\"not_found\"}",
                   "trackprint_decode_seconds_sum", "trackprint_analysis_seconds_bucket", "trackprint_in_flight"):
        assert needle in metrics


def test_sigterm_stops_cleanly(library, start_rust_server):
    s = start_rust_server([library])
    s.process.terminate()
    assert s.process.wait(timeout=10) == 0


# -- the CLI ------------------------------------------------------------------------------------
def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "TRACKPRINT_SERVER": f"http://127.0.0.1:{free_port()}", **env}
    return run_cli("analyze", "--json", *args, env=full_env, timeout=300)


def _lines(out: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def test_cli_starts_a_local_server(library):
    out = _cli(["--engine", "rust", str(GOLDEN / "tone_mid_1khz.flac"), str(GOLDEN / "click_120bpm.flac"),
                str(library / "nope.flac")], {"TRACKPRINT_SERVER_BIN": rust_server_binary()})
    results = _lines(out)
    assert [r["engine"] for r in results] == ["rust", "rust", "rust"], out.stderr
    assert results[0]["ok"] and results[0]["fingerprint"]["mid_pct"] > 99
    assert not results[2]["ok"] and results[2]["error"]["code"] == "not_found"
    assert out.returncode == 1


def test_cli_uses_a_running_server(server):
    out = _cli(["--engine", "rust", "--server", server.url, str(GOLDEN / "tone_mid_1khz.flac")],
               {"TRACKPRINT_SERVER_BIN": "/nonexistent"})
    (result,) = _lines(out)
    assert result["ok"] and result["engine"] == "rust", out.stderr
    assert out.returncode == 0


def test_cli_rust_without_binary_fails_clearly(tmp_path):
    out = _cli(["--engine", "rust", str(GOLDEN / "tone_mid_1khz.flac")], {"TRACKPRINT_SERVER_BIN": str(tmp_path)})
    (result,) = _lines(out)
    assert not result["ok"] and result["error"]["code"] == "engine_unavailable"
    assert "trackprint-server" in result["error"]["message"] and "setup.sh" in result["error"]["message"]
    assert out.returncode == 1


def test_cli_auto_without_binary_warns_and_uses_python(tmp_path):
    out = _cli(["--engine", "auto", str(GOLDEN / "tone_mid_1khz.flac"), str(GOLDEN / "silence.flac")],
               {"TRACKPRINT_SERVER_BIN": str(tmp_path)})
    results = _lines(out)
    assert all(r["ok"] and r["engine"] == "python" and r["fallback_reason"] for r in results)
    assert out.stderr.count("WARNING") == 1 and "trackprint-server" in out.stderr


def test_cli_auto_falls_back_per_file(server, library):
    # a chained Ogg Vorbis file (two streams one after the other): the Rust engine leaves chained
    # Ogg to the Python engine (unsupported_format), libsndfile decodes it
    one = library / "one.ogg"
    write_audio(one, _music(1.0, 44_100), 44_100)
    chained = library / "chained.ogg"
    chained.write_bytes(one.read_bytes() * 2)
    out = _cli(["--engine", "auto", "--server", server.url, str(chained), str(GOLDEN / "tone_mid_1khz.flac")], {})
    first, second = _lines(out)
    assert first["ok"] and first["engine"] == "python" and "unsupported_format" in first["fallback_reason"]
    assert second["ok"] and second["engine"] == "rust" and "fallback_reason" not in second


@pytest.mark.parametrize("value,accepted", [("yes", True), ("1", True), ("off", True), ("false", True),
                                            ("maybe", False), ("enabled", False)])
def test_the_symlink_switch_takes_the_settings_words_and_refuses_others(value, accepted):
    """TRACKPRINT_ALLOW_SYMLINKS_OUTSIDE means the same to the server as to the settings (trackprint/settings.py):
    a word that is neither true nor false is an error naming the option, never a silent 'on'."""
    env = {**os.environ, "TRACKPRINT_ALLOW_SYMLINKS_OUTSIDE": value}
    done = subprocess.run([rust_server_binary(), "--list-error-codes"], env=env, capture_output=True, text=True,
                          timeout=30)
    if accepted:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode == 2 and "allow-symlinks-outside" in done.stderr and value in done.stderr
