"""Starting and stopping the project's services as real subprocesses in tests."""

from __future__ import annotations

import signal
import subprocess
import sys

CLI = [sys.executable, "-m", "trackprint.cli"]


def service(*args: str, log=None, env=None) -> subprocess.Popen:
    """``trackprint ARGS...`` in the background (output to ``log`` when given)."""
    out = open(log, "ab") if log else None
    try:
        return subprocess.Popen([*CLI, *args], stdout=out, stderr=subprocess.STDOUT if out else None, env=env)
    finally:
        if out:
            out.close()


def stop_all(procs, timeout: float = 30.0) -> None:
    """SIGTERM every process (they finish what they hold), then wait; kill what does not stop."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
