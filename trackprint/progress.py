"""The ``up`` console: what a person watching a run needs, and nothing repeated.

Where the numbers come from:

- files discovered: the watcher's state (DATA/watcher.sqlite: one row per file it published, so files, not
  events), plus the files still settling (its health report in the status KV bucket);
- files done and audio done: the database (tracks fingerprinted or failed; the fingerprints' durations);
- moved / deleted: the watcher's report (events published by kind in this run: a rename is "moved");
- lag, offline roots, missing mounts, held deletions, a database not taking writes, streams filling up: the
  bus (:func:`trackprint.bus.inspect.bus_status`);
- a full disk: the free space of the data directory's file system (JetStream's store and SQLite).

The rate is measured over a sliding window (:data:`RATE_WINDOW_S`) of files and audio seconds done. The
ETA is audio time: the audio still to do is estimated from the remaining files' sizes and the seconds of
audio per byte of the files already fingerprinted, divided by the audio seconds done per second in the
window; until durations are known it says "measuring". The window never reaches back before the first file
done: start-up time is not a slow rate.

On a terminal: a tqdm bar, events printed above it. Otherwise: one plain line whenever something
changed (never the same line again while idle), events as their own lines.
"""

from __future__ import annotations

import collections
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

RATE_WINDOW_S = 60.0
# A snapshot rereads the watcher's state and the database, so its cost grows with the library (about 0.2 s
# at 50,000 files). The console waits at least this many times a snapshot's cost before the next one, so it
# never takes more than ~2% of a core however large the library: updates slow down instead.
SNAPSHOT_COST_FACTOR = 50.0


@dataclass
class Snapshot:
    """One reading of the run, for one console update."""

    at: float
    files: dict[str, int] | None = None  # path -> size, from the watcher's state (None: not readable yet)
    settling: int = 0
    fingerprinted: dict[str, str] = field(default_factory=dict)  # path -> engine
    failed: dict[str, str] = field(default_factory=dict)  # path -> code
    audio_s: float = 0.0
    latest: str | None = None
    db_error: str | None = None
    bus: dict[str, Any] = field(default_factory=dict)
    disk_free: int | None = None  # bytes free on the data directory's disk (None: unknown)

    @property
    def done_paths(self) -> set[str]:
        return set(self.fingerprinted) | set(self.failed)

    @property
    def total(self) -> int:
        """Files published by the watcher (those still settling are shown apart: its report lags)."""
        known = len(self.files) if self.files is not None else 0
        return max(known, len(self.fingerprinted) + len(self.failed))

    @property
    def done(self) -> int:
        return len(self.fingerprinted) + len(self.failed)

    @property
    def remaining(self) -> list[str]:
        return sorted(self.files.keys() - self.done_paths) if self.files is not None else []

    def consumer(self, name: str) -> dict:
        return ((self.bus.get("consumers") or {}).get(name)) or {}

    @property
    def lag(self) -> int | None:
        if not self.bus.get("reachable"):
            return None
        return sum(c.get("pending", 0) + c.get("unacked", 0) for c in (self.bus.get("consumers") or {}).values() if c)

    @property
    def events(self) -> int:
        from trackprint import bus

        stream = (self.bus.get("streams") or {}).get(bus.EVENTS_STREAM) or {}
        return stream.get("messages", 0)

    def watcher(self) -> dict:
        return next(iter((self.bus.get("watchers") or {}).values()), {})


def read_watcher_files(state_path: Path) -> dict[str, int] | None:
    """path -> size of every file the watcher published (read-only; None while it does not exist yet)."""
    if not state_path.exists():
        return None
    try:
        with sqlite3.connect(f"file:{state_path}?mode=ro", uri=True, timeout=2) as db:
            return dict(db.execute("SELECT path, size FROM files"))
    except sqlite3.Error:
        return None


def take_snapshot(db_engine, watcher_state: Path, nats_url: str | None) -> Snapshot:
    """Read the watcher's state, the database and the bus; whatever fails is left empty, never raised."""
    from trackprint.bus.inspect import bus_status
    from trackprint.persister.queries import read_done

    snap = Snapshot(at=time.monotonic(), files=read_watcher_files(watcher_state))
    try:
        snap.disk_free = shutil.disk_usage(watcher_state.parent).free  # the data directory: JetStream, SQLite
    except OSError:
        pass
    try:
        with db_engine.connect() as conn:
            done = read_done(conn)
        snap.fingerprinted, snap.failed, snap.audio_s, snap.latest = (done.fingerprinted, done.failed,
                                                                      done.audio_s, done.latest)
    except Exception as exc:  # the persister may still be creating the database or its schema
        snap.db_error = str(getattr(exc, "orig", None) or exc).splitlines()[0][:120]
    if nats_url:
        snap.bus = bus_status(nats_url)
        snap.settling = int(snap.watcher().get("waiting_for_quiescence") or 0)
    return snap


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Console:
    """Turns successive :class:`Snapshot`\\ s into a progress display and event lines."""

    def __init__(self, out: TextIO | None = None, *, tty: bool | None = None, rust_available: bool = True,
                 clock: Callable[[], float] = time.monotonic):
        self.out = out or sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self.rust_available = rust_available
        self.clock = clock
        self.window: collections.deque[tuple[float, int, float]] = collections.deque()
        self.working = False  # a file was done since the first reading (the rate is measured from then on)
        self.last: Snapshot | None = None
        self.last_key: tuple | None = None
        self.bar = None

    # -- what happened since the last snapshot -------------------------------------------------------------
    def events_between(self, old: Snapshot | None, new: Snapshot) -> list[str]:
        notes: list[str] = []
        if old is None:
            return notes
        for path in sorted(new.failed.keys() - old.failed.keys()):
            notes.append(f"failed: {path}: {new.failed[path]}")
        for path in sorted(p for p, engine in new.fingerprinted.items()
                           if engine == "python" and old.fingerprinted.get(p) != "python"):
            if self.rust_available:
                notes.append(f"fallback: {path}: analysed by the Python engine (the Rust engine could not)")
        from trackprint.status import DISK_FULL_BYTES, STREAM_FULL_WARN

        full_before = old.disk_free is not None and old.disk_free < DISK_FULL_BYTES
        if new.disk_free is not None and new.disk_free < DISK_FULL_BYTES and not full_before:
            notes.append(f"DISK FULL: the data directory's disk has {new.disk_free >> 20} MiB free: new events, "
                         "results and rows are held (nothing is lost); everything resumes by itself once space is freed")
        elif full_before and new.disk_free is not None and new.disk_free >= DISK_FULL_BYTES:
            notes.append(f"disk space back: {new.disk_free >> 20} MiB free")
        old_w, new_w = old.watcher(), new.watcher()
        if new.bus.get("reachable") and old.bus.get("reachable"):
            streams_before = old.bus.get("streams") or {}
            for name, stream in sorted((new.bus.get("streams") or {}).items()):
                fill, was = (stream or {}).get("fill") or 0.0, (streams_before.get(name) or {}).get("fill") or 0.0
                if fill >= STREAM_FULL_WARN > was:
                    notes.append(f"stream {name} {100 * fill:.0f}% FULL: new messages are rejected at 100% (until "
                                 "consumers catch up; raise TRACKPRINT_STREAM_MAX_BYTES or free disk space)")
                elif was >= STREAM_FULL_WARN > fill:
                    notes.append(f"stream {name} below {100 * STREAM_FULL_WARN:.0f}% again ({100 * fill:.0f}% full)")
            for key, what, back in (("offline", "library root OFFLINE", "library root back online"),
                                    ("missing_mounts", "mount MISSING", "mount back")):
                before, now = old_w.get(key) or {}, new_w.get(key) or {}
                for root in sorted(now.keys() - before.keys()):
                    notes.append(f"{what}: {root} ({now[root]}); no removals are published for it")
                for root in sorted(before.keys() - now.keys()):
                    notes.append(f"{back}: {root}")
            held_before, held_now = old_w.get("held_deletions") or {}, new_w.get("held_deletions") or {}
            for root in sorted(held_now.keys() - held_before.keys()):
                notes.append(f"MASS DELETION HELD under {root}: {held_now[root].get('count')} files vanished at once; "
                             f"if that is real, run `trackprint confirm-deletions {root}`")
            for host, persister in (new.bus.get("persisters") or {}).items():
                was = (old.bus.get("persisters") or {}).get(host) or {}
                if persister.get("db_ok") is False and was.get("db_ok") is not False:
                    notes.append(f"database not taking writes ({persister.get('reason')}): results are held, "
                                 "nothing is lost")
                elif persister.get("db_ok") is True and was.get("db_ok") is False:
                    notes.append("database takes writes again")
        return notes

    # -- rates ---------------------------------------------------------------------------------------------
    def _rates(self, snap: Snapshot) -> tuple[float | None, float | None]:
        """(files per minute, audio seconds per second) over the sliding window; None until measurable."""
        self.window.append((snap.at, snap.done, snap.audio_s))
        if not self.working:
            # start-up (the services starting, the scan, the first analyses in flight) is not work done: the
            # window begins at the last reading before the first file was done, so a slow start does not
            # inflate the first ETAs (a 20-s run once said 10.5 min)
            if self.window[0][1:] == (snap.done, snap.audio_s):
                while len(self.window) > 1:
                    self.window.popleft()
                return None, None
            self.working = True
            while len(self.window) > 2:
                self.window.popleft()
        while len(self.window) > 2 and snap.at - self.window[1][0] >= RATE_WINDOW_S:
            self.window.popleft()
        t0, done0, audio0 = self.window[0]
        elapsed = snap.at - t0
        if elapsed < 1.0:
            return None, None
        return (snap.done - done0) / elapsed * 60.0, (snap.audio_s - audio0) / elapsed

    def _eta(self, snap: Snapshot, audio_rate: float | None) -> str:
        remaining = snap.remaining
        if snap.files is not None and not remaining and not snap.settling:
            return "done" if snap.total else "-"
        sizes = snap.files or {}
        done_bytes = sum(sizes.get(p, 0) for p in snap.fingerprinted)
        if not done_bytes or not snap.audio_s:
            return "measuring"
        audio_left = sum(sizes.get(p, 0) for p in remaining) * snap.audio_s / done_bytes
        if not audio_rate or audio_rate <= 0:
            return f"measuring ({_duration(audio_left)} of audio left)"
        return f"{_duration(audio_left / audio_rate)} ({_duration(audio_left)} of audio left)"

    def _current(self, snap: Snapshot) -> str | None:
        """The files now being analysed, from the analyzers' reports (fresh ones: a report older than a
        minute is from an analyzer that stopped)."""
        analysing = sorted({path for report in (snap.bus.get("analyzers") or {}).values()
                            if isinstance(report, dict) and time.time() - float(report.get("at") or 0) < 60
                            for path in report.get("analysing") or ()} - snap.done_paths)
        if not analysing:
            return None
        return ", ".join(Path(p).name for p in analysing[:3]) + (f" (+{len(analysing) - 3})" if len(analysing) > 3 else "")

    @staticmethod
    def consumer_unacked(snap: Snapshot, name: str) -> int:
        return int(snap.consumer(name).get("unacked") or 0)

    # -- the display ---------------------------------------------------------------------------------------
    def describe(self, snap: Snapshot) -> tuple[tuple, str]:
        """(what changed, the line): the key leaves out rate and ETA so an idle run prints nothing new."""
        if snap.db_error and not snap.fingerprinted and not snap.failed:
            state = ("starting (the persister is creating the database)" if "no such table" in snap.db_error
                     or "no database" in snap.db_error or "does not exist" in snap.db_error
                     else f"waiting for the database ({snap.db_error})")
            return ("db", state, snap.total), f"progress: {state}; discovered {snap.total} files"
        files_rate, audio_rate = self._rates(snap)
        total, done = snap.total, snap.done
        percent = 100.0 * done / total if total else 0.0
        failed_by: dict[str, int] = collections.Counter(snap.failed.values())
        failed = ", ".join(f"{code} {n}" for code, n in sorted(failed_by.items())) or "none"
        kinds = snap.watcher().get("published_by_kind") or {}
        engines = collections.Counter(snap.fingerprinted.values())
        share = ", ".join(f"{name} {n}" for name, n in sorted(engines.items())) or "-"
        if engines and self.rust_available:
            share += f" ({100 * engines.get('python', 0) / sum(engines.values()):.0f}% fallback)"
        if not self.rust_available:
            share += "; RUST SERVER DOWN: Python engine only"
        current = self._current(snap)
        rate = "rate measuring" if files_rate is None else (
            f"{files_rate:.1f} files/min" + (f", {audio_rate:.{0 if audio_rate >= 10 else 1}f}x real time" if audio_rate else ""))
        settling = f" (+{snap.settling} settling)" if snap.settling else ""
        line = (f"progress: {percent:3.0f}% {done}/{total} files{settling}, {snap.audio_s / 3600:.2f} h audio; "
                f"{rate}; ETA {self._eta(snap, audio_rate)}; failed {len(snap.failed)} ({failed}); "
                f"moved {kinds.get('moved', 0)}, deleted {kinds.get('removed', 0)}; engines: {share}"
                + (f"; analysing {current}" if current else ""))
        key = (done, total, snap.settling, len(snap.failed), kinds.get("moved", 0), kinds.get("removed", 0), share,
               current)
        return key, line

    def update(self, snap: Snapshot, *, force: bool = False) -> None:
        """Print the events since the last snapshot, then the progress if anything changed (or ``force``)."""
        for note in self.events_between(self.last, snap):
            self.note(note)
        self.last = snap
        key, line = self.describe(snap)
        if self.tty:
            self._bar(snap, line)
        elif force or key != self.last_key:
            self._print(line)
        self.last_key = key

    def note(self, text: str) -> None:
        """An event (a restart, a failure, an offline root): its own line, at once."""
        if self.bar is not None:
            self.bar.write(text, file=self.out)
        else:
            self._print(text)

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _bar(self, snap: Snapshot, line: str) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=max(snap.total, 1), file=self.out, unit="file", dynamic_ncols=True,
                            bar_format="{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} files{postfix}")
        self.bar.total = max(snap.total, 1)
        self.bar.n = snap.done
        # tqdm puts ", " before the postfix: "2/4 files, 0.01 h audio; ..." as on the plain line
        self.bar.set_postfix_str(line.split(" files", 1)[1].lstrip(" ,"), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class RunConsole:
    """The console of one ``up`` run: reads its database, its watcher's state and its bus every tick."""

    def __init__(self, db_url: str, data_dir: Path, nats_url: str | None, *, rust_available: bool,
                 out: TextIO | None = None):
        from trackprint.persister.db import make_engine

        self.db_engine = None  # created once the persister has created the database (never by the console)
        self.db_url = db_url
        self.watcher_state = data_dir / "watcher.sqlite"
        self.nats_url = nats_url
        self.console = Console(out, rust_available=rust_available)
        self._make_engine = make_engine
        self.next_due = 0.0  # time.monotonic() of the next tick (see SNAPSHOT_COST_FACTOR)

    def snapshot(self) -> Snapshot:
        if self.db_engine is None:
            try:
                self.db_engine = self._make_engine(self.db_url, must_exist=True)  # never creates the database
            except Exception as exc:
                snap = Snapshot(at=time.monotonic(), files=read_watcher_files(self.watcher_state),
                                db_error=str(exc).splitlines()[0])
                if self.nats_url:
                    from trackprint.bus.inspect import bus_status

                    snap.bus = bus_status(self.nats_url)
                return snap
        return take_snapshot(self.db_engine, self.watcher_state, self.nats_url)

    def due(self, now: float) -> bool:
        """Whether the next tick is due (``every_s`` after the last one, or later when snapshots are costly)."""
        return now >= self.next_due

    def tick(self, *, every_s: float = 0.0, force: bool = False) -> Snapshot:
        started = time.monotonic()
        snap = self.snapshot()
        self.console.update(snap, force=force)
        cost = time.monotonic() - started
        self.next_due = started + max(every_s, SNAPSHOT_COST_FACTOR * cost)
        return snap

    def note(self, text: str) -> None:
        self.console.note(text)

    def close(self) -> None:
        self.console.close()
        if self.db_engine is not None:
            self.db_engine.dispose()
