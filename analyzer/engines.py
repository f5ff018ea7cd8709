"""Which engine analyses a file, and what happens when it fails: the one place that decides.

Every caller (the bus worker, ``trackprint analyze``, ``similar``, ``bench``)
asks this module, and gets one :class:`~trackprint.contracts.EngineOutcome`
per file: a fingerprint or a typed error, with the engine that produced it
and, when the Python engine stood in, why.

The policy, in order (``mode`` ``auto``, the default):

1. the Rust engine (``trackprint-server``, over HTTP): :class:`RustClient`,
   with tenacity-managed retries (``busy`` honouring Retry-After, one retry
   of a dropped connection) and a circuit breaker, so that a dead server
   costs one failed call, not one per file;
2. the Python engine (:func:`python_outcome`, in a process pool) when the
   server cannot be reached or answers with a code of :data:`FALLBACK_CODES`
   (it decodes with other libraries, or has more time); the outcome's
   ``fallback_reason`` says why;
3. anything else the server says is the file's outcome: a typed error is
   final for this engine choice (``not_found``, ``truncated``...).

``mode`` ``rust`` never falls back (a missing server is ``engine_unavailable``
for every file); ``mode`` ``python`` never asks the server.

The local-server lifecycle lives here too: :func:`server_command` and
:func:`wait_ready` are what ``trackprint up`` supervises, and
:class:`LocalServer` is what a one-shot command starts when no server answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
import traceback
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import AsyncIterator, Callable, Iterable, Literal

import aiohttp
import httpx
import msgspec
import tenacity

from trackprint import binaries
from trackprint.contracts import EngineOutcome, EngineProblem
from trackprint.errors import AnalysisError, ErrorCode
from trackprint.paths import Library
from trackprint.supervisor import die_with_parent, stop_pool

log = logging.getLogger("trackprint.analyzer.engines")

Mode = Literal["auto", "rust", "python"]
MODES: tuple[Mode, ...] = ("auto", "rust", "python")
DEFAULT_SERVER = "http://127.0.0.1:7878"

# Rust error codes after which the Python engine gets its own try: it decodes with other libraries
# (unsupported_format, corrupt), it has its own bugs (internal), more time (timeout), or the server
# cannot take the file now (busy, engine_unavailable). Never outside_library: the library boundary is
# a refusal, not a decoding problem, and the Python engine applies the same rule.
FALLBACK_CODES = frozenset({
    ErrorCode.UNSUPPORTED_FORMAT, ErrorCode.CORRUPT, ErrorCode.INTERNAL,
    ErrorCode.TIMEOUT, ErrorCode.BUSY, ErrorCode.ENGINE_UNAVAILABLE,
})


def failed(path: str, code: ErrorCode, message: str, stage: str, engine: str | None) -> EngineOutcome:
    return EngineOutcome(path=path, engine=engine, error=EngineProblem(code=ErrorCode(code), stage=stage,
                                                                       message=message))


# -- the Python engine ------------------------------------------------------------------------------
def python_outcome(path: str, timeout_s: float | None = None, library: Library | None = None) -> EngineOutcome:
    """The Python engine on one file; never raises (safe in a process pool)."""
    from trackprint.pyengine.engine import analyze_file

    try:
        return analyze_file(path, deadline=None if timeout_s is None else time.monotonic() + timeout_s,
                            library=library)
    except AnalysisError as exc:
        return failed(path, exc.code, exc.message, exc.stage, "python")
    except MemoryError:
        return failed(path, ErrorCode.TOO_LARGE, "out of memory", "analyse", "python")
    except Exception as exc:  # a bug: loudly, with its traceback, and the pipeline goes on
        log.error("%s: analyse: internal: Python engine BUG\n%s", path, traceback.format_exc())
        return failed(path, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}", "analyse", "python")


def python_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for the Python engine, with the engine imported once before forking."""
    import trackprint.pyengine.engine  # noqa: F401  forked workers inherit it (scipy takes ~2 s)

    return ProcessPoolExecutor(max_workers=max(1, workers), initializer=die_with_parent)


# -- the Rust engine --------------------------------------------------------------------------------
class RustUnavailable(Exception):
    """The Rust engine cannot answer for this file now (the reason is the message)."""


class _Busy(Exception):
    def __init__(self, retry_after: float | None):
        super().__init__("busy")
        self.retry_after = retry_after


class _ConnectionProblem(Exception):
    pass


class _NoAnswer(Exception):
    """Connected, but the server did not answer within the client's timeout."""


_JSON = {"Content-Type": "application/json"}
_request_encoder = msgspec.json.Encoder()


def _request_body(path: str) -> bytes:
    return _request_encoder.encode({"path": os.path.abspath(path)})


_outcome_decoder = msgspec.json.Decoder(EngineOutcome)


def _bad_request(path: str, body: bytes) -> EngineOutcome | None:
    """The server's ``bad_request`` (a path no file can have: a NUL byte, longer than PATH_MAX...), as the
    file's ``not_found``: the one code outside the shared taxonomy never reaches the bus."""
    try:
        error = msgspec.json.decode(body).get("error") or {}
    except (msgspec.DecodeError, AttributeError):
        return None
    if error.get("code") != "bad_request":
        return None
    return failed(path, ErrorCode.NOT_FOUND, f"no file can have this path: {error.get('message', '')}", "request",
                  "rust")


class RustClient:
    """``POST {server}/v1/fingerprint {"path": ...}``, decided by the answer's ``code``, never by HTTP status.

    ``analyse`` returns the server's outcome (a fingerprint or its typed error)
    or raises :class:`RustUnavailable` (down, breaker open, timeout, still busy
    after the retries, malformed answer).
    """

    def __init__(self, base_url: str, *, timeout_s: float = 300.0, connect_timeout_s: float = 2.0,
                 busy_retries: int = 5, connect_retries: int = 1, breaker_threshold: int = 3,
                 breaker_cooldown_s: float = 30.0, max_connections: int = 100):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        # aiohttp, not httpx, on this path: one request per file, and httpx (over anyio and httpcore) took
        # ~1 ms of CPU per request against ~0.3 ms (measured against this server on loopback)
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, sock_read=timeout_s)
        self.max_connections = max_connections
        self.busy_retries = busy_retries
        self.connect_retries = connect_retries
        self.breaker_threshold = max(1, breaker_threshold)
        self.breaker_cooldown_s = breaker_cooldown_s
        self.consecutive_failures = 0
        self.open_until = 0.0
        self.calls = 0  # HTTP requests sent
        self.connection_failures = 0
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """Made on first use, in the event loop that uses it (an aiohttp session belongs to one loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout,
                                                  connector=aiohttp.TCPConnector(limit=self.max_connections))
        return self._session

    @property
    def breaker_open(self) -> bool:
        return time.monotonic() < self.open_until

    async def healthy(self) -> bool:
        try:
            async with self.session.get(f"{self.base_url}/health", timeout=aiohttp.ClientTimeout(total=1.0)) as answer:
                return answer.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    def _failure(self, reason: str) -> None:
        self.connection_failures += 1
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.breaker_threshold and not self.breaker_open:
            self.open_until = time.monotonic() + self.breaker_cooldown_s
            log.error("RUST SERVER UNAVAILABLE at %s (%s): circuit breaker OPEN for %.0f s; files go to the "
                      "Python engine (much slower)", self.base_url, reason, self.breaker_cooldown_s)

    def _success(self) -> None:
        if self.consecutive_failures >= self.breaker_threshold:
            log.warning("Rust server at %s answers again: circuit breaker CLOSED", self.base_url)
        self.consecutive_failures = 0
        self.open_until = 0.0

    async def _post(self, path: str) -> EngineOutcome:
        self.calls += 1
        try:
            async with self.session.post(f"{self.base_url}/v1/fingerprint", data=_request_body(path),
                                         headers=_JSON) as response:
                content = await response.read()
                status, retry_after = response.status, response.headers.get("Retry-After")
        except aiohttp.ConnectionTimeoutError as exc:  # no connection in time: as refused, retried once
            raise _ConnectionProblem(f"connect timeout: {exc}") from exc
        except (aiohttp.SocketTimeoutError, asyncio.TimeoutError) as exc:  # connected, but no answer in time
            raise _NoAnswer() from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:  # refused, reset, cut mid-answer
            raise _ConnectionProblem(f"{type(exc).__name__}: {exc}") from exc
        try:
            outcome = _outcome_decoder.decode(content)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            refused = _bad_request(path, content)
            if refused is not None:
                return refused
            raise RustUnavailable(f"HTTP {status} with a malformed answer: {exc}") from None
        if outcome.error is not None and outcome.error.code == ErrorCode.BUSY:
            try:
                raise _Busy(float(retry_after) if retry_after else None)
            except ValueError:
                raise _Busy(None) from None
        if outcome.error is None and outcome.fingerprint is None:
            raise RustUnavailable(f"HTTP {status}: neither a fingerprint nor an error")
        outcome.path, outcome.engine = path, "rust"
        return outcome

    async def analyse(self, path: str) -> EngineOutcome:
        if self.breaker_open:
            raise RustUnavailable("circuit breaker open (Rust server unavailable)")

        def wait(retry_state: tenacity.RetryCallState) -> float:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            base = tenacity.wait_random_exponential(multiplier=0.2, max=5)(retry_state)
            if isinstance(exc, _Busy) and exc.retry_after:
                return min(exc.retry_after, 10) + base
            return base

        def should_retry(retry_state: tenacity.RetryCallState) -> bool:
            exc = retry_state.outcome.exception()
            if isinstance(exc, _Busy):
                return retry_state.attempt_number <= self.busy_retries
            if isinstance(exc, _ConnectionProblem):
                return retry_state.attempt_number <= self.connect_retries and not self.breaker_open
            return False

        try:
            async for attempt in tenacity.AsyncRetrying(retry=should_retry, wait=wait, reraise=True):
                with attempt:
                    try:
                        outcome = await self._post(path)
                    except _ConnectionProblem as exc:
                        self._failure(str(exc))
                        raise
        except _Busy:
            raise RustUnavailable(f"busy after {self.busy_retries} retries") from None
        except _ConnectionProblem as exc:
            raise RustUnavailable(f"cannot connect: {exc}") from None
        except _NoAnswer:
            self._failure("timeout")
            raise RustUnavailable(f"no answer within {self.timeout_s} s") from None
        except aiohttp.ClientError as exc:
            self._failure(str(exc))
            raise RustUnavailable(f"HTTP error: {type(exc).__name__}: {exc}") from None
        self._success()
        return outcome

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


# -- the local server's lifecycle -------------------------------------------------------------------
def server_command(binary: str, port: int, roots: Iterable[str], max_concurrency: int | None = None,
                   allow_symlinks_outside: bool = False) -> list[str]:
    """The trackprint-server command line: loopback only, reading only under ``roots`` (and where
    symlinks in them lead when ``allow_symlinks_outside``: the same policy as :class:`Library`)."""
    argv = [binary, "--bind", f"127.0.0.1:{port}"]
    if max_concurrency:
        argv += ["--max-concurrency", str(max_concurrency)]
    if allow_symlinks_outside:
        argv += ["--allow-symlinks-outside"]
    for root in roots:
        argv += ["--root", root]
    return argv


def wait_ready(url: str, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> bool:
    """Poll ``GET /ready`` until it answers 200 (True), the process dies or time runs out (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        try:
            if httpx.get(f"{url}/ready", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False


def missing_binary_reason() -> str:
    looked = ", ".join(str(p) for p in binaries.rust_server_candidates())
    return (f"the {binaries.RUST_SERVER} binary was not found (looked in {looked}); {binaries.RUST_BUILD_HINT}")


class LocalServer:
    """A trackprint-server child process on a free loopback port, stopped on exit."""

    def __init__(self, binary: str, roots: list[str], max_concurrency: int, *, log_path: str | None = None,
                 allow_symlinks_outside: bool = False):
        self.binary, self.roots, self.max_concurrency, self.log_path = binary, roots, max_concurrency, log_path
        self.allow_symlinks_outside = allow_symlinks_outside
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> "LocalServer":
        for _ in range(3):  # a free port can be taken between the probe and the bind
            port = binaries.free_port()
            out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
            self.process = subprocess.Popen(server_command(self.binary, port, self.roots, self.max_concurrency,
                                                           self.allow_symlinks_outside),
                                            stdout=out, stderr=out)
            self.url = f"http://127.0.0.1:{port}"
            if wait_ready(self.url, 15.0, lambda: self.process.poll() is None):
                return self
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

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def roots_of(paths: Iterable[str]) -> list[str]:
    """Library roots for a one-shot server: the files' folders (``/`` when there are too many)."""
    parents = sorted({os.path.dirname(os.path.realpath(os.path.abspath(p))) for p in paths})
    existing = [p for p in parents if os.path.isdir(p)]
    return existing if existing and len(existing) <= 64 else ["/"]


# -- the choice -------------------------------------------------------------------------------------
def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


class Engines:
    """The engine choice for one process: ``await engines.analyse(path)`` -> EngineOutcome (never raises).

    ``rust`` is None when no server is to be asked; ``rust_problem`` then says
    why (it becomes the ``fallback_reason`` in ``auto`` mode and the
    ``engine_unavailable`` message in ``rust`` mode). With ``library``, the Python engine refuses paths
    outside it exactly as the Rust server refuses paths outside its roots.
    """

    def __init__(self, mode: Mode, *, rust: RustClient | None, python: Executor | None,
                 timeout_s: float | None = None, rust_problem: str | None = None, library: Library | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown engine mode {mode!r}; one of {', '.join(MODES)}")
        self.mode, self.rust, self.python, self.timeout_s, self.library = mode, rust, python, timeout_s, library
        self.rust_problem = rust_problem or ("disabled" if rust is None else None)

    async def analyse(self, path: str) -> EngineOutcome:
        if self.mode == "python":
            return await self._python(path)
        if self.rust is None:
            return await self._unavailable(path, f"rust engine unavailable: {self.rust_problem}")
        if not _utf8(path):  # JSON carries text: a name that is not UTF-8 cannot be sent to the server
            return await self._unavailable(path, "the file name is not UTF-8 (the Rust server takes UTF-8 paths)")
        try:
            outcome = await self.rust.analyse(path)
        except RustUnavailable as exc:
            return await self._unavailable(path, f"rust unavailable: {exc}")
        if outcome.error is not None and self.mode == "auto" and outcome.error.code in FALLBACK_CODES:
            return await self._fall_back(path, f"rust {outcome.error.code.value}: {outcome.error.message}")
        return outcome

    async def _unavailable(self, path: str, reason: str) -> EngineOutcome:
        if self.mode == "rust":
            return failed(path, ErrorCode.ENGINE_UNAVAILABLE, reason, "analyse", "rust")
        return await self._fall_back(path, reason)

    async def _fall_back(self, path: str, reason: str) -> EngineOutcome:
        log.info("%s: fallback to Python: %s", path, reason)
        outcome = await self._python(path)
        outcome.fallback_reason = reason
        return outcome

    async def _python(self, path: str) -> EngineOutcome:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.python, python_outcome, path, self.timeout_s, self.library)

    async def aclose(self) -> None:
        if self.rust is not None:
            await self.rust.aclose()


@contextlib.asynccontextmanager
async def open_engines(mode: Mode, paths: list[str], jobs: int, server: str | None = None,
                       warn: Callable[[str], None] | None = None) -> AsyncIterator[Engines]:
    """Engines for a one-shot command: a running server (``server``, ``$TRACKPRINT_SERVER``, else
    :data:`DEFAULT_SERVER`) or a :class:`LocalServer` started for ``paths``, and a Python pool of
    ``jobs`` processes (threads when there is one job). ``warn`` hears, once, that Rust is missing."""
    jobs = max(1, jobs)
    python: Executor = (ThreadPoolExecutor(1) if jobs == 1 or len(paths) <= 1 else python_pool(min(jobs, len(paths))))
    local: LocalServer | None = None
    rust: RustClient | None = None
    problem: str | None = None
    try:
        if mode != "python":
            url = (server or os.environ.get("TRACKPRINT_SERVER") or DEFAULT_SERVER).rstrip("/")
            rust = RustClient(url, timeout_s=900.0, busy_retries=50, max_connections=jobs + 2)
            if not await rust.healthy():
                await rust.aclose()
                rust = None
                binary = binaries.rust_server_binary()
                if binary is None:
                    problem = f"no Rust server answers at {url} and {missing_binary_reason()}"
                else:
                    try:
                        local = await asyncio.to_thread(LocalServer(binary, roots_of(paths), jobs).start)
                        rust = RustClient(local.url, timeout_s=900.0, busy_retries=50, max_connections=jobs + 2)
                    except (RuntimeError, OSError) as exc:
                        problem = f"cannot start {binary}: {exc}"
            if problem and mode == "auto" and warn is not None:
                warn(f"WARNING: trackprint: the Rust engine is unavailable, using the much slower Python engine: "
                     f"{problem}")
        engines = Engines(mode, rust=rust, python=python, rust_problem=problem)
        try:
            yield engines
        finally:
            await engines.aclose()
    finally:
        await asyncio.to_thread(stop_pool, python)
        if local is not None:
            await asyncio.to_thread(local.stop)


async def analyse_many(paths: list[str], mode: Mode = "auto", jobs: int = 1, server: str | None = None,
                       warn: Callable[[str], None] | None = None) -> AsyncIterator[EngineOutcome]:
    """One outcome per path, in the order given, ``jobs`` files at a time."""
    jobs = max(1, jobs)
    async with open_engines(mode, paths, jobs, server, warn) as engines:
        gate = asyncio.Semaphore(jobs)

        async def one(path: str) -> EngineOutcome:
            async with gate:
                return await engines.analyse(path)

        tasks = [asyncio.ensure_future(one(path)) for path in paths]
        try:
            for task in tasks:
                yield await task
        finally:
            for task in tasks:
                task.cancel()


def analyse_one(path: str, mode: Mode = "auto") -> EngineOutcome:
    """One file, from synchronous code (``similar``)."""

    async def first() -> EngineOutcome:
        async for outcome in analyse_many([path], mode, 1, warn=warn_on_stderr):
            return outcome
        raise AssertionError("analyse_many yielded nothing")

    return asyncio.run(first())


def warn_on_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
