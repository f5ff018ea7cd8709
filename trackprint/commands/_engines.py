"""Engine selection for ``analyze``: the Rust server, with per-file Python fallback.

``analyze_with_rust`` finds a running trackprint-server (``--server``, else
``TRACKPRINT_SERVER``, else http://127.0.0.1:7878) through ``GET /health``;
when none answers it starts a local one (binary from ``TRACKPRINT_SERVER_BIN``,
else the virtual environment's ``bin/``, ``PATH`` or ``rust-server/target/release``)
on a free loopback port with a ``--root`` per file's parent directory, waits
for ``/ready`` and stops it at the end. Requests go out in parallel (``jobs``
threads).

With ``fallback`` (``--engine auto``) a file goes to the Python engine when the
server cannot decode it (``unsupported_format``, ``corrupt``) or cannot be
reached; the result's ``engine`` says which engine produced it and
``fallback_reason`` why. Without a binary, ``auto`` warns loudly once and uses
Python; ``rust`` fails every path with ``engine_unavailable``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

from trackprint.embedded import (RUST_BUILD_HINT, RUST_SERVER, free_port, rust_server_binary,
                                 rust_server_candidates)
from trackprint.errors import ErrorCode

DEFAULT_SERVER = "http://127.0.0.1:7878"
FALLBACK_CODES = {ErrorCode.UNSUPPORTED_FORMAT.value, ErrorCode.CORRUPT.value}
BUSY_RETRIES = 50
REQUEST_TIMEOUT_S = 900.0


def _healthy(client, url: str) -> bool:
    import httpx

    try:
        return client.get(f"{url}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _roots(paths: list[str]) -> list[str]:
    parents = sorted({os.path.dirname(os.path.realpath(os.path.abspath(p))) for p in paths})
    existing = [p for p in parents if os.path.isdir(p)]
    return existing if existing and len(existing) <= 64 else ["/"]


class LocalServer:
    """A trackprint-server child process on a free loopback port, stopped on exit."""

    def __init__(self, binary: str, roots: list[str], jobs: int):
        self.binary, self.roots, self.jobs = binary, roots, jobs
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self, client) -> None:
        import httpx

        for _ in range(3):  # a free port can be taken between the probe and the bind
            port = free_port()
            args = [str(self.binary), "--bind", f"127.0.0.1:{port}", "--max-concurrency", str(self.jobs)]
            for root in self.roots:
                args += ["--root", root]
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 15.0
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    if client.get(f"{self.url}/ready", timeout=1.0).status_code == 200:
                        return
                except httpx.HTTPError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"{self.binary} did not become ready")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _rust_result(path: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "path": path,
        "ok": True,
        "fingerprint": body["fingerprint"],
        "fingerprint_version": body["fingerprint_version"],
        "engine": "rust",
        "duration_s": body["decode"]["decoded_duration_s"],
        "decode": body["decode"],
        "timings": body["timings"],
    }


def _python(path: str, reason: str) -> dict[str, Any]:
    from trackprint.commands.analyze import analyze_python

    result = analyze_python(path)
    result["fallback_reason"] = reason
    return result


def _analyze_one(client, url: str, path: str, fallback: bool) -> dict[str, Any]:
    import httpx

    from trackprint.commands.analyze import failure

    for _ in range(BUSY_RETRIES):
        try:
            response = client.post(f"{url}/v1/fingerprint", json={"path": os.path.abspath(path)},
                                   timeout=REQUEST_TIMEOUT_S)
        except httpx.HTTPError as exc:
            reason = f"rust server unreachable at {url}: {type(exc).__name__}: {exc}"
            if fallback:
                return _python(path, reason)
            return failure(path, ErrorCode.ENGINE_UNAVAILABLE, f"{path}: analyse: engine_unavailable: {reason}", "rust")
        try:
            body = response.json()
        except ValueError:
            body = {"error": {"code": ErrorCode.INTERNAL.value, "message": f"{path}: non-JSON answer {response.status_code}"}}
        if response.status_code == 200:
            return _rust_result(path, body)
        error = body.get("error", {})
        code, message = error.get("code", ErrorCode.INTERNAL.value), error.get("message", "")
        if code == ErrorCode.BUSY.value:
            time.sleep(float(response.headers.get("retry-after", "1")) * 0.2)
            continue
        if fallback and code in FALLBACK_CODES:
            return _python(path, f"rust: {code}: {message}")
        return failure(path, ErrorCode(code) if code in ErrorCode._value2member_map_ else ErrorCode.INTERNAL, message, "rust")
    return failure(path, ErrorCode.BUSY, f"{path}: analyse: busy: the server stayed saturated", "rust")


def analyze_with_rust(paths: list[str], jobs: int, server: str | None, *, fallback: bool) -> Iterator[dict[str, Any]]:
    import httpx

    from trackprint.commands.analyze import _results, failure

    url = (server or os.environ.get("TRACKPRINT_SERVER") or DEFAULT_SERVER).rstrip("/")
    jobs = max(1, jobs)
    with httpx.Client(limits=httpx.Limits(max_connections=jobs + 2)) as client:
        local: LocalServer | None = None
        if not _healthy(client, url):
            binary = rust_server_binary()
            problem = None
            if binary is None:
                looked = ", ".join(str(p) for p in rust_server_candidates())
                problem = (f"no Rust server answers at {url} and the {RUST_SERVER} binary was not found "
                           f"(looked in {looked}); {RUST_BUILD_HINT}")
            else:
                local = LocalServer(binary, _roots(paths), jobs)
                try:
                    local.start(client)
                    url = local.url
                except (RuntimeError, OSError) as exc:
                    local = None
                    problem = f"cannot start {binary}: {exc}"
            if problem is not None:
                if fallback:
                    print(f"WARNING: trackprint: the Rust engine is unavailable, using the much slower Python engine: "
                          f"{problem}", file=sys.stderr, flush=True)
                    for result in _results(paths, "python", jobs, server):
                        if result.get("ok"):
                            result["fallback_reason"] = f"rust engine unavailable: {problem}"
                        yield result
                    return
                for path in paths:
                    yield failure(path, ErrorCode.ENGINE_UNAVAILABLE, f"{path}: analyse: engine_unavailable: {problem}", "rust")
                return
        try:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                yield from pool.map(lambda p: _analyze_one(client, url, p, fallback), paths)
        finally:
            if local is not None:
                local.stop()
