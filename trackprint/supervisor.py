"""A small process supervisor for ``trackprint up``: start children, restart crashes, stop cleanly.

Each child is a command line with a name. A child that exits while the
supervisor is running is restarted with a growing delay (capped), and every
restart is counted and logged so a crash loop is visible, never silent.
Stopping sends SIGTERM to the children in reverse start order (so producers
stop before the consumers that drain them), waits, then SIGKILLs stragglers.
Children die with their supervisor even when it is killed with SIGKILL
(Linux PR_SET_PDEATHSIG): an orphaned nats-server would keep the data
directory's store open under a new ``up``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field

from trackprint.logs import stamp_child_line

log = logging.getLogger("trackprint.supervisor")

RESTART_DELAY_S = (1.0, 2.0, 5.0, 10.0, 30.0)


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """In a child process: receive ``sig`` when the parent dies, even by kill -9 (Linux PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: nothing to do
        pass


def stop_pool(pool: Executor, wait_s: float = 10.0) -> None:
    """Cancel what has not started and let the pool's manager thread end, for at most ``wait_s``.

    Python 3.11's exit hook wakes a process pool's manager thread through a pipe that thread closes as
    it ends: a race that prints "Exception ignored ... Bad file descriptor" at exit. A thread that has
    ended closes the pipe first, so the hook finds it closed. ``shutdown`` forgets the thread, hence it
    is taken before. Bounded: a worker stuck on a hung file must not hold the command."""
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    if manager is not None:
        manager.join(wait_s)


LOG_MAX_BYTES = 10 << 20  # per log file; TRACKPRINT_LOG_MAX_BYTES overrides
LOG_BACKUPS = 3  # NAME.log.1 .. NAME.log.3 kept, the oldest dropped


class CappedLog:
    """A child's output (stdout and stderr) in DATA/logs/NAME.log, rotated by size like
    logging.handlers.RotatingFileHandler: at ``max_bytes`` NAME.log becomes NAME.log.1 (.1 becomes .2, ...),
    ``backups`` files are kept. Rotation happens at a line boundary; restarts of the child append."""

    def __init__(self, path: str, max_bytes: int | None = None, backups: int = LOG_BACKUPS):
        self.path = path
        self.max_bytes = max_bytes or int(os.environ.get("TRACKPRINT_LOG_MAX_BYTES") or LOG_MAX_BYTES)
        self.backups = backups
        self._lock = threading.Lock()

    def copy_from(self, pipe) -> None:
        """Copy ``pipe`` line by line until the child closes it (it exited), each line starting with the one
        timestamp format of every log (trackprint.logs.stamp_child_line)."""
        with pipe:
            for line in iter(pipe.readline, b""):
                try:
                    self.write(stamp_child_line(line, time.time()))
                except OSError:  # a full or vanished log disk must not block the child: drop the line
                    pass

    def write(self, data: bytes) -> None:
        with self._lock:
            try:
                size = os.path.getsize(self.path)
            except OSError:
                size = 0
            if size and size + len(data) > self.max_bytes:
                self._rotate()
            with open(self.path, "ab") as out:
                out.write(data)

    def _rotate(self) -> None:
        for i in range(self.backups - 1, 0, -1):
            if os.path.exists(f"{self.path}.{i}"):
                os.replace(f"{self.path}.{i}", f"{self.path}.{i + 1}")
        if self.backups:
            os.replace(self.path, f"{self.path}.1")
        else:
            os.remove(self.path)


def _child_setup() -> None:
    die_with_parent(signal.SIGTERM)  # SIGTERM: a nats-server or a service still shuts down cleanly


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    log_path: str | None = None
    process: subprocess.Popen | None = None
    restarts: int = 0
    last_exit: int | None = None
    next_start: float = 0.0
    started_at: float = 0.0
    log: "CappedLog | None" = None
    reader: threading.Thread | None = None  # copies the child's output into its log

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Supervisor:
    children: list[Child] = field(default_factory=list)
    stopping: bool = False

    def launch(self, child: Child) -> Child:
        """Supervise ``child`` from now on and start it."""
        self.children.append(child)
        self.start(child)
        return child

    def discard(self, child: Child, timeout_s: float = 5.0) -> None:
        """Stop ``child`` and supervise it no more (a start-up that failed its readiness check)."""
        self.children.remove(child)
        self._stop(child, timeout_s)

    def start(self, child: Child) -> None:
        out = subprocess.PIPE if child.log_path else subprocess.DEVNULL
        child.process = subprocess.Popen(
            child.argv, env=child.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_child_setup,
        )
        if child.log_path:
            if child.log is None:
                child.log = CappedLog(child.log_path)
            child.reader = threading.Thread(target=child.log.copy_from, args=(child.process.stdout,), daemon=True,
                                            name=f"log-{child.name}")
            child.reader.start()
        child.started_at = time.monotonic()
        log.info("started %s (pid %d)", child.name, child.process.pid)

    def check(self) -> list[str]:
        """Restart children that exited; returns human-readable notes about restarts."""
        notes = []
        now = time.monotonic()
        for child in self.children:
            if self.stopping or child.process is None:
                continue
            code = child.process.poll()
            if code is None:
                if now - child.started_at > 60:
                    child.next_start = 0.0  # healthy for a minute: reset the backoff
                continue
            if child.next_start == 0.0:
                delay = RESTART_DELAY_S[min(child.restarts, len(RESTART_DELAY_S) - 1)]
                child.last_exit = code
                child.next_start = now + delay
                message = f"{child.name} exited with status {code}; restarting in {delay:.0f} s (restart #{child.restarts + 1})"
                if child.log_path:
                    message += f"; its log: {child.log_path}"
                log.warning(message)
                notes.append(message)
            elif now >= child.next_start:
                child.restarts += 1
                child.next_start = 0.0
                self.start(child)
        return notes

    def stop_all(self, timeout_s: float = 20.0) -> None:
        self.stopping = True
        for child in reversed(self.children):
            self._stop(child, timeout_s)

    def stop_together(self, children: list[Child], timeout_s: float = 20.0) -> None:
        """Stop ``children`` at once (SIGTERM to all, then wait for each), so their exits overlap instead
        of adding up; no restart happens meanwhile."""
        self.stopping = True
        stoppers = [threading.Thread(target=self._stop, args=(child, timeout_s), name=f"stop-{child.name}")
                    for child in children]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()

    def _stop(self, child: Child, timeout_s: float) -> None:
        if not child.running:
            return
        assert child.process is not None
        try:
            os.killpg(child.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            child.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s; killing it", child.name, timeout_s)
            try:
                os.killpg(child.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.process.wait()
        if child.reader is not None:
            child.reader.join(5)  # the last lines the child wrote reach its log
