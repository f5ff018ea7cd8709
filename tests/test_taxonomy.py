"""One error taxonomy: the Rust server's codes are the Python codes plus ``bad_request``, and a failure
looks the same whichever engine produced it (code, stage, the raw reason; no path, no pre-formatting)."""

from __future__ import annotations

import asyncio
import subprocess

import httpx
import pytest

from tests.audio import SR, music_like, write_audio
from tests.fixtures_rust import rust_server_binary
from trackprint.analyzer.engines import Engines, RustClient
from trackprint.errors import ErrorCode

STAGES = {"open", "probe", "decode", "analyse", "identity", "request"}


@pytest.fixture(scope="module")
def binary() -> str:
    return rust_server_binary()


def test_rust_codes_are_the_python_codes_plus_bad_request(binary):
    listed = subprocess.run([binary, "--list-error-codes"], capture_output=True, text=True, timeout=30, check=True)
    rust = listed.stdout.split()
    assert len(rust) == len(set(rust))
    assert set(rust) == {code.value for code in ErrorCode} | {"bad_request"}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    """One file per failure the two engines both recognise, named by the code they must give."""
    folder = tmp_path_factory.mktemp("bad")
    (folder / "empty.flac").write_bytes(b"")
    (folder / "text.flac").write_bytes(b"hello, this is not audio at all\n" * 100)
    good = folder / "good.flac"
    write_audio(good, music_like(3.0, seed=4), SR)
    (folder / "cut.flac").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (folder / "folder.flac").mkdir()
    return folder, {"empty.flac": ErrorCode.EMPTY_FILE, "text.flac": ErrorCode.UNSUPPORTED_FORMAT,
                    "cut.flac": ErrorCode.TRUNCATED, "missing.flac": ErrorCode.NOT_FOUND,
                    "folder.flac": ErrorCode.NOT_A_FILE}


def _outcomes(mode: str, url: str | None, paths: list[str]):
    from concurrent.futures import ThreadPoolExecutor

    async def run():
        rust = RustClient(url) if url else None
        engines = Engines(mode, rust=rust, python=ThreadPoolExecutor(2))
        try:
            return [await engines.analyse(p) for p in paths]
        finally:
            await engines.aclose()

    return asyncio.run(run())


def test_a_failure_looks_the_same_from_either_engine(bad_files, start_rust_server):
    folder, expected = bad_files
    paths = [str(folder / name) for name in expected]
    server = start_rust_server([folder], max_concurrency=2)
    rust = _outcomes("rust", server.url, paths)
    python = _outcomes("python", None, paths)
    for path, from_rust, from_python in zip(paths, rust, python):
        code = expected[path.rsplit("/", 1)[1]]
        assert from_rust.engine == "rust" and from_python.engine == "python"
        for outcome in (from_rust, from_python):
            assert outcome.error is not None, (path, outcome)
            problem = outcome.error
            assert problem.code == code, (path, outcome.engine, problem)
            assert problem.stage in STAGES, (path, outcome.engine, problem)
            assert problem.message and path not in problem.message, (outcome.engine, problem)
            assert not problem.message.startswith(f"{problem.stage}:"), (outcome.engine, problem)
            assert f"{code.value}:" not in problem.message, (outcome.engine, problem)
        assert from_rust.error.stage == from_python.error.stage, (path, from_rust.error, from_python.error)


def test_the_rust_error_body_names_code_stage_and_reason(bad_files, start_rust_server):
    """What `curl` shows: {"error": {"code", "stage", "message"}}, the HTTP status derived from the code."""
    folder, _ = bad_files
    server = start_rust_server([folder], max_concurrency=1)
    body = httpx.post(f"{server.url}/v1/fingerprint", json={"path": str(folder / "text.flac")}).json()
    assert set(body["error"]) == {"code", "stage", "message"}
    assert body["error"]["code"] == "unsupported_format" and body["error"]["stage"] == "probe"
    bad = httpx.post(f"{server.url}/v1/fingerprint", content=b"{not json",
                     headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"
