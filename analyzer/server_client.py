"""Client of the Rust server (trackprint-server): POST {server}/v1/fingerprint {"path": ...}.

- per-call timeout (httpx), retries with jittered exponential backoff for 503
  busy (honouring Retry-After) and for connection errors (tenacity);
- a circuit breaker: after ``breaker_threshold`` consecutive connection
  failures or timeouts the server is skipped for ``breaker_cooldown_s``; then
  one probe call is let through (half-open). A dead server costs one failed
  call, not one per file. Opening and closing are logged loudly.

``fingerprint()`` returns an :class:`analyzer.engine.EngineOutput` or raises
:class:`trackprint.errors.AnalysisError` (the server's typed error) or
:class:`RustUnavailable` (down, breaker open, timeout, saturated after retries,
malformed answer): the caller falls back to the Python engine.
"""

from __future__ import annotations

import logging
import time

import httpx
import msgspec
import tenacity

from analyzer.engine import EngineOutput
from trackprint.contracts import DecodeFacts, Fingerprint, Timings
from trackprint.errors import AnalysisError, ErrorCode

log = logging.getLogger("trackprint.analyzer.rust")


class RustUnavailable(Exception):
    """The Rust engine cannot answer for this file now (the reason is the message)."""


class _Busy(Exception):
    def __init__(self, retry_after: float | None):
        super().__init__("busy")
        self.retry_after = retry_after


class _ConnectionProblem(Exception):
    pass


class RustServerClient:
    def __init__(self, base_url: str, *, timeout_s: float = 300.0, connect_timeout_s: float = 2.0,
                 busy_retries: int = 5, connect_retries: int = 1, breaker_threshold: int = 3,
                 breaker_cooldown_s: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self.busy_retries = busy_retries
        self.connect_retries = connect_retries
        self.breaker_threshold = max(1, breaker_threshold)
        self.breaker_cooldown_s = breaker_cooldown_s
        self.consecutive_failures = 0
        self.open_until = 0.0
        self.calls = 0  # HTTP requests sent
        self.connection_failures = 0
        self.client = httpx.AsyncClient(timeout=self.timeout)

    @property
    def breaker_open(self) -> bool:
        return time.monotonic() < self.open_until

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

    async def _post(self, path: str) -> httpx.Response:
        self.calls += 1
        try:
            response = await self.client.post(f"{self.base_url}/v1/fingerprint", json={"path": path})
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise _ConnectionProblem(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 503:
            retry_after = response.headers.get("Retry-After")
            try:
                seconds = float(retry_after) if retry_after else None
            except ValueError:
                seconds = None
            raise _Busy(seconds)
        return response

    async def fingerprint(self, path: str) -> EngineOutput:
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

        retrying = tenacity.AsyncRetrying(retry=should_retry, wait=wait, reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        response = await self._post(path)
                    except _ConnectionProblem as exc:
                        self._failure(str(exc))
                        raise
        except _Busy:
            raise RustUnavailable(f"busy (HTTP 503) after {self.busy_retries} retries") from None
        except _ConnectionProblem as exc:
            raise RustUnavailable(f"cannot connect: {exc}") from None
        except httpx.TimeoutException as exc:
            self._failure(f"timeout: {exc}")
            raise RustUnavailable(f"timeout after {self.timeout.read} s") from None
        except httpx.HTTPError as exc:
            self._failure(str(exc))
            raise RustUnavailable(f"HTTP error: {type(exc).__name__}: {exc}") from None
        self._success()
        return self._parse(path, response)

    def _parse(self, path: str, response: httpx.Response) -> EngineOutput:
        try:
            body = response.json()
        except ValueError:
            raise RustUnavailable(f"HTTP {response.status_code} with a non-JSON body") from None
        if response.status_code >= 400 or "error" in body:
            error = body.get("error") or {}
            try:
                code = ErrorCode(error.get("code"))
            except ValueError:
                raise RustUnavailable(f"HTTP {response.status_code}: unknown error {error!r}") from None
            raise AnalysisError(code, str(error.get("message", "")), path=path, stage=error.get("stage", "rust"))
        try:
            fp = msgspec.convert(body["fingerprint"], Fingerprint)
            decode = msgspec.convert(body["decode"], DecodeFacts)
            timings = msgspec.convert(body.get("timings") or {"total_s": 0.0}, Timings)
            version = int(body["fingerprint_version"])
        except (KeyError, TypeError, ValueError, msgspec.ValidationError) as exc:
            raise RustUnavailable(f"malformed answer: {exc}") from None
        return EngineOutput(fingerprint=fp.as_dict(), fingerprint_version=version, decode=decode,
                            timings=timings, engine="rust")

    async def aclose(self) -> None:
        await self.client.aclose()
