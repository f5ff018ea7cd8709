"""One `up` per data directory, and nothing of it survives a kill -9 (real `up`, nats-server, services)."""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.audio import write_tones
from tests.procs import run_cli, service, sqlite_fingerprint_count, stop_all
from tests.waiting import wait_until

# a whole pipeline of real processes: left out of the quick loop (scripts/test.sh -m "not slow")
pytestmark = pytest.mark.slow

SR = 22050


def children_of(pid: int) -> set[int]:
    """Every process whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # fields: state, ppid, ...
            found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def rows_persisted(data) -> int:
    report = json.loads(run_cli("status", "--json", "--data-dir", str(data), timeout=60).stdout)
    return report["database"].get("active", 0)


def test_a_second_up_is_refused_and_a_killed_up_leaves_no_child_behind(tmp_path):
    library, data = tmp_path / "music", tmp_path / "data"
    write_tones(library, [f"t{i}.flac" for i in range(4)], SR, base_hz=300, step_hz=71, seed=3, duration_s=1.0)
    first = service("up", str(library), "--data-dir", str(data), "--analyzers", "1",
                    log=tmp_path / "first.log")
    try:
        # polled cheaply in-process first (a `trackprint status` a second takes a core from the pipeline)
        wait_until(lambda: sqlite_fingerprint_count(data / "trackprint.db"), 180, 0.3,
                   "the first up to fingerprint the library", until=lambda n: n >= 4)
        wait_until(lambda: rows_persisted(data), 60, 1.0, "the first up to persist the library",
                   until=lambda n: n == 4, ignore=(ValueError, KeyError))

        second = run_cli("up", str(library), "--data-dir", str(data), timeout=60)
        assert second.returncode == 1, second.stdout + second.stderr
        assert f"pid {first.pid}" in second.stderr and "data directory" in second.stderr
        report = json.loads(run_cli("status", "--json", "--data-dir", str(data), timeout=60).stdout)
        assert report["instance"]["up_pid"] == first.pid
        assert any("second `trackprint up`" in w and str(first.pid) in w for w in report["warnings"])

        kids = children_of(first.pid)
        assert len(kids) >= 5, kids  # nats-server, rust-server (or not), persister, analyzer, watcher
        first.send_signal(signal.SIGKILL)
        first.wait()
        wait_until(lambda: [k for k in kids if alive(k)], 30, 0.5, "every child of the killed up to exit",
                   until=lambda left: not left)
    finally:
        stop_all([first])

    # the lock died with its holder: the next up starts, resumes and finds nothing new to do
    write_tones(library, ["new.flac"], SR, base_hz=900, step_hz=1, seed=9, duration_s=1.0)
    again = run_cli("up", str(library), "--data-dir", str(data), "--analyzers", "1", "--exit-when-idle",
                    timeout=240)
    assert again.returncode == 0, again.stdout + again.stderr
    assert rows_persisted(data) == 5
