"""The one service skeleton the watcher, the analyzers and the persister are built on.

Every service has the same life, so it is written once, here:

1. ``prepare()``: work that must succeed before the bus is worth joining
   (the persister's schema migrations); ``False`` means "stopped meanwhile".
2. Connect to NATS with ``bus.connect`` (reconnects forever), unless the
   service was given a connected JetStream context (tests, embedding), and
   ``bus.ensure_topology`` (idempotent, retried while JetStream is not ready:
   on the embedded bus whichever service starts first creates the streams;
   on a bus with users and permissions the admin's ``trackprint topology``
   does, and a service only checks that what it needs is there).
3. ``setup(js)``: bind subscriptions, start observers, log what it runs with.
4. ``step()`` again and again until a stop is asked; every
   ``progress_every_s`` a progress line (``progress()``) and
   ``refresh_metrics()`` (metrics that need a round trip, e.g. consumer lag).
5. ``finish_work_in_hand()``, then ``teardown()``, then the clean close:
   ``bus.close`` unsubscribes ``subscriptions()`` and drains the connection
   (only a connection the service opened itself; a given one is the caller's).

Stopping: ``stop()``, or SIGTERM/SIGINT when ``run`` installs the handlers
(``run_service`` does). The first signal lets the work in hand finish, so
nothing is acked twice or half-written; a second one cancels it at once,
which loses nothing either: whatever was not acked is redelivered.

Metrics: with a port, Prometheus on 127.0.0.1:PORT serving
``metrics_registry`` (the default registry unless the service keeps its own).

Event loop: ``run_service`` (and ``replay``) run on uvloop (``run_loop``); a
service handles each file in a few bus round trips, so the loop's own
machinery is much of its CPU. A service given to ``run`` by a test runs on
whatever loop the test uses.

A subclass writes only its own logic::

    class Echo(Service):
        name = "echo"
        async def setup(self, js): self.sub = ...
        async def step(self): await handle(await self.fetch(self.sub, 10, timeout=1))
        def subscriptions(self): return [self.sub]

    sys.exit(run_service(Echo(nats_url), metrics_port=9100))
"""

from __future__ import annotations

import abc
import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
import uvloop

from trackprint import bus

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
EXIT_ABORTED = 130  # a second signal cut the work in hand short (the shell's "interrupted")
TOPOLOGY_RETRY_MAX_S = 10.0
T = TypeVar("T")


def host_name() -> str:
    """The name this process reports under (status reports, results' ``host``): $TRACKPRINT_HOST, else the
    machine's host name. Two "hosts" simulated on one machine (tests, ``bench-hosts``) set it apart."""
    return os.environ.get("TRACKPRINT_HOST") or socket.gethostname()


class Service(abc.ABC):
    """A long-running bus service: connect, set up, loop ``step()`` until stopped, close cleanly."""

    #: short name: the logger ``trackprint.<name>`` and the log lines' prefix
    name: str = "service"
    #: seconds between progress lines (and ``refresh_metrics`` calls)
    progress_every_s: float = 30.0
    #: what the first signal waits for, as the log line says it
    work_in_hand: str = "the work in hand"
    #: the least level of ``trackprint.*`` logs shown by ``run_service`` even without -v
    #: (INFO for services whose per-file lines are their main output; None: the command line decides)
    default_log_level: int | None = None

    def __init__(self, nats_servers: str | list[str], *, js: Any = None, topology: bus.Topology | None = None,
                 connection_name: str | None = None):
        self.nats_servers = nats_servers
        self.js = js
        self.topology = topology  # None: bus.Topology() defaults (and the TRACKPRINT_* environment)
        self.connection_name = connection_name or f"trackprint-{self.name}"
        self.log = logging.getLogger(f"trackprint.{self.name}")
        self.stop_event = asyncio.Event()
        self._signals_seen = 0
        self._task: asyncio.Task | None = None
        self._aborted = False

    # ------------------------------------------------------------ what a service writes
    async def prepare(self) -> bool:
        """Before connecting to NATS; return False to end the run at once (a stop arrived meanwhile)."""
        return True

    async def setup(self, js) -> None:
        """Connected and the topology is in place: bind subscriptions, start observers."""

    @abc.abstractmethod
    async def step(self) -> None:
        """One turn of the loop. Must return within about a second when idle, so a stop is noticed."""

    def progress(self) -> str:
        """The body of the periodic progress line and of the final 'stopped' line."""
        return "running"

    async def refresh_metrics(self) -> None:
        """With each progress line: refresh metrics that cost a round trip. Must never raise."""

    async def finish_work_in_hand(self) -> None:
        """After the last step, before teardown: wait for work started by ``step`` (not yet acked)."""

    async def teardown(self) -> None:
        """Release the service's own resources (pools, observers, files); runs even when setup failed."""

    def subscriptions(self) -> list:
        """Pull subscriptions to unsubscribe before the connection is drained."""
        return []

    @property
    def metrics_registry(self):
        """What the metrics port serves: prometheus_client's default registry unless overridden."""
        from prometheus_client import REGISTRY

        return REGISTRY

    # ------------------------------------------------------------ what every service gets
    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    def stop(self) -> None:
        """Finish the work in hand, then stop (idempotent)."""
        if not self.stop_event.is_set():
            self.log.info("%s: stopping (finishing %s)", self.name, self.work_in_hand)
            self.stop_event.set()

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep`` that a stop cuts short."""
        try:
            await asyncio.wait_for(self.stop_event.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    async def fetch(self, sub, batch: int, *, timeout: float, lean: bool = False) -> list:
        """Up to ``batch`` messages from a pull subscription; [] when idle or after a logged, paused failure.

        ``bus.fetch`` absorbs timeouts and transient errors; what is left is a
        connection closed under us, which is the normal end while stopping.
        """
        try:
            return await bus.fetch(sub, batch, timeout=timeout, lean=lean)
        except nats.errors.ConnectionClosedError:
            if self.stopping:
                return []
            raise

    def _on_signal(self, sig: int) -> None:
        self._signals_seen += 1
        name = signal.Signals(sig).name
        if self._signals_seen == 1:
            self.log.info("signal %s: finishing %s, then stopping (a second signal stops at once)",
                          name, self.work_in_hand)
            self.stop_event.set()
        elif self._task is not None and not self._aborted:
            self.log.warning("signal %s again: stopping NOW; what was not acked is redelivered", name)
            self._aborted = True
            self.stop_event.set()
            self._task.cancel()

    # ------------------------------------------------------------ the life of a service
    async def run(self, *, install_signal_handlers: bool = False, metrics_port: int | None = None) -> int:
        """Run until stopped; the exit status (0, or EXIT_ABORTED after a second signal).

        Signal handlers and the metrics server are process-wide, so they are
        opt-in: a command wants them (``run_service``), a test does not.
        """
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        handled = _install_signal_handlers(loop, self._on_signal) if install_signal_handlers else []
        metrics_server = _serve_metrics(metrics_port, self.metrics_registry) if metrics_port else None
        try:
            return await self._live()
        except asyncio.CancelledError:
            if not self._aborted:
                raise
            if self._task is not None:
                self._task.uncancel()
            return EXIT_ABORTED
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()

    async def _live(self) -> int:
        nc = None
        try:
            if not await self.prepare():
                return 0
            if self.js is None:
                nc = await bus.connect(self.nats_servers, self.connection_name)
                self.js = nc.jetstream()
            if not await self._ensure_topology():
                return 0
            await self.setup(self.js)
            next_progress = time.monotonic() + self.progress_every_s
            while not self.stopping:
                await self.step()
                if time.monotonic() >= next_progress:
                    next_progress = time.monotonic() + self.progress_every_s
                    self.log.info("%s progress: %s", self.name, self.progress())
                    await self.refresh_metrics()
            await self.finish_work_in_hand()
            return 0
        finally:
            try:
                await self.teardown()
            finally:
                await self._close(nc)
                self.log.info("%s stopped: %s", self.name, self.progress())

    async def _ensure_topology(self) -> bool:
        """``bus.ensure_topology`` until it succeeds (False: stopped meanwhile).

        Connected is not the same as JetStream being ready: a cluster that is
        still electing its leaders, or services creating the same replicated
        streams at once, time out for a few seconds. That is retried like a
        reconnect; only a request JetStream rejects as invalid (400: our
        configuration, which no retry fixes) ends the service.
        """
        attempt = 0
        while not self.stopping:
            try:
                await bus.ensure_topology(self.js, self.topology)
                return True
            except nats.js.errors.BadRequestError:
                raise
            except (nats.errors.Error, asyncio.TimeoutError) as exc:
                delay = min(TOPOLOGY_RETRY_MAX_S, 0.5 * 2 ** attempt)
                attempt += 1
                self.log.warning("%s: setting up the streams failed (%s: %s); retrying in %.1f s "
                                 "(JetStream not ready yet?)", self.name, type(exc).__name__, exc, delay)
                await self.sleep(delay)
        return False

    async def _close(self, nc) -> None:
        subscriptions = [s for s in self.subscriptions() if s is not None]
        if nc is not None:
            await bus.close(nc, subscriptions)
            return
        for sub in subscriptions:  # a borrowed connection stays open: only our own subscriptions go
            try:
                await sub.unsubscribe()
            except Exception as exc:  # already closed, connection gone
                self.log.debug("unsubscribe: %s", exc)


def _install_signal_handlers(loop: asyncio.AbstractEventLoop, handler) -> list[int]:
    installed = []
    for sig in STOP_SIGNALS:
        try:
            loop.add_signal_handler(sig, handler, sig)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals on this platform
            pass
    return installed


def _serve_metrics(port: int, registry):
    """Prometheus on 127.0.0.1 only: metrics are for the local agent, not the network."""
    from prometheus_client import start_http_server

    started = start_http_server(port, addr="127.0.0.1", registry=registry)
    return started[0] if isinstance(started, tuple) else None


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop, for every long-running command.

    A service handles each file in a few short steps (bus requests, an HTTP call, a thread hop), so
    the event loop's own machinery was about a quarter of an analyzer's CPU under py-spy; uvloop (libuv)
    does the same work for a fraction of that (figures in watcher/README.md, bench-scale).
    """
    return uvloop.run(main)


def run_service(service: Service, *, metrics_port: int | None = None) -> int:
    """A command's whole job once it has built the service: run it as this process, return the exit status."""
    if service.default_log_level is not None:
        root_level = logging.getLogger().level
        logging.getLogger("trackprint").setLevel(min(root_level, service.default_log_level))
    try:
        return run_loop(service.run(install_signal_handlers=True, metrics_port=metrics_port or None))
    except bus.CredentialsError as exc:  # a configuration mistake: say it once, do not retry forever
        logging.getLogger(f"trackprint.{service.name}").error("%s: cannot connect to NATS: %s", service.name, exc)
        return 2
