"""The Rust server under hostile requests (defect 11, "Nothing lost, nothing let in").

Runs the real binary (scripts/setup.sh builds it into .venv/bin) and checks
behaviour, not speed: while requests with 80 KB paths are in flight /health
still answers; a path no file can have (NUL byte, over PATH_MAX) is a 400
``bad_request``, never 503 (which the client retries as busy); a 1 MB body is
a 413 ``too_large``; and half-open connections (half a request line, then
nothing) neither stop /health nor stay open past the header-read timeout.
Time bounds are liveness checks, generous for a shared, noisy machine.
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from trackprint.analyzer.engines import LocalServer
from trackprint.binaries import rust_server_binary

LIVENESS_S = 5.0  # /health must answer within this, whatever else is going on


@pytest.fixture(scope="module")
def binary() -> str:
    found = rust_server_binary()
    assert found, "trackprint-server is not built: run scripts/setup.sh"
    return found


def fingerprint(url: str, path: str, timeout: float = 60.0) -> httpx.Response:
    return httpx.post(f"{url}/v1/fingerprint", json={"path": path}, timeout=timeout)


def health_seconds(url: str) -> float:
    started = time.monotonic()
    response = httpx.get(f"{url}/health", timeout=LIVENESS_S * 4)
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    return time.monotonic() - started


def assert_error(response: httpx.Response, status: int, code: str, stage: str = "request") -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "stage", "message"}, body
    assert (response.status_code, body["error"]["code"], body["error"]["stage"]) == (status, code, stage), body
    assert "retry-after" not in response.headers
    return body["error"]


def test_long_paths_do_not_block_health_and_are_bad_requests(binary, tmp_path):
    with LocalServer(binary, [str(tmp_path)], 2) as server:
        long_paths = [str(tmp_path) + "/a" * 40_000, str(tmp_path) + "/b" * 40_000]  # 80 KB, 40,000 components
        with ThreadPoolExecutor(2) as pool:
            answers = [pool.submit(fingerprint, server.url, p) for p in long_paths]
            time.sleep(0.3)  # both in flight
            assert health_seconds(server.url) < LIVENESS_S
            responses = [a.result() for a in answers]
        for response in responses:
            assert "PATH_MAX" in assert_error(response, 400, "bad_request")["message"]
        # a component over NAME_MAX within PATH_MAX
        error = assert_error(fingerprint(server.url, f"{tmp_path}/{'c' * 300}.flac"), 400, "bad_request")
        assert "NAME_MAX" in error["message"]
        assert health_seconds(server.url) < LIVENESS_S


def test_nul_byte_and_relative_paths_are_bad_requests_not_busy(binary, tmp_path):
    with LocalServer(binary, [str(tmp_path)], 2) as server:
        for path in (f"{tmp_path}/a\x00b.flac", "\x00", "relative/a.flac"):
            response = fingerprint(server.url, path)
            assert response.status_code != 503
            error = assert_error(response, 400, "bad_request")
            assert "a\x00b" not in error["message"]


def test_a_1mb_body_is_too_large(binary, tmp_path):
    with LocalServer(binary, [str(tmp_path)], 2) as server:
        response = httpx.post(f"{server.url}/v1/fingerprint", timeout=60.0,
                              json={"path": f"{tmp_path}/a.flac", "padding": "z" * (1 << 20)})
        assert_error(response, 413, "too_large")
        # the other rejections axum makes keep the typed shape
        for content, ctype in ((b"{not json", "application/json"), (b"{}", "application/json"),
                               (b'{"path": "/x"}', "text/plain")):
            response = httpx.post(f"{server.url}/v1/fingerprint", content=content,
                                  headers={"content-type": ctype}, timeout=60.0)
            assert_error(response, 400, "bad_request")


def _closed(sock: socket.socket) -> bool:
    """True once the server has closed the socket (EOF, or a reset); False while it is open."""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_half_open_connections_do_not_hold_the_server(binary, tmp_path, monkeypatch):
    header_timeout_s = 2.0
    monkeypatch.setenv("TRACKPRINT_HEADER_TIMEOUT_MS", str(int(header_timeout_s * 1000)))
    with LocalServer(binary, [str(tmp_path)], 2) as server:
        host, port = server.url.removeprefix("http://").split(":")
        sockets = []
        try:
            for _ in range(300):
                sock = socket.create_connection((host, int(port)), timeout=10)
                sock.sendall(b"POST /v1/fing")  # half a request line, then nothing
                sock.setblocking(False)
                sockets.append(sock)
            assert health_seconds(server.url) < LIVENESS_S
            deadline = time.monotonic() + header_timeout_s + 10
            open_ = list(sockets)
            while open_ and time.monotonic() < deadline:
                open_ = [s for s in open_ if not _closed(s)]
                time.sleep(0.2)
            assert not open_, f"{len(open_)} of {len(sockets)} half-open connections still open"
        finally:
            for sock in sockets:
                sock.close()
        assert health_seconds(server.url) < LIVENESS_S
        assert_error(fingerprint(server.url, f"{tmp_path}/missing.flac"), 404, "not_found", "open")
