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
import time
from dataclasses import dataclass, field

log = logging.getLogger("trackprint.supervisor")

RESTART_DELAY_S = (1.0, 2.0, 5.0, 10.0, 30.0)


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """In a child process: receive ``sig`` when the parent dies, even by kill -9 (Linux PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: nothing to do
        pass


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
        out = open(child.log_path, "ab") if child.log_path else subprocess.DEVNULL
        try:
            child.process = subprocess.Popen(
                child.argv, env=child.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_child_setup,
            )
        finally:
            if child.log_path:
                out.close()
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
