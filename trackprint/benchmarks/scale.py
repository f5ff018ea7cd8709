"""``trackprint bench-scale N [--folders-of 10] [--keep]``: the whole pipeline at scale, on this machine.

1. **Library**: N distinct 2-s FLAC files (22.05 kHz mono, a tone and a noise of their own each, so
   that no two share a content id) in album-like folders (``artistNNN/albumNNNNN/NN track I.flac``,
   ``--folders-of`` files per album, ten albums per artist). Generation is timed apart.
2. **First run**: ``trackprint up LIBRARY --exit-when-idle`` (embedded NATS, Rust server, watcher,
   analyzers, persister on SQLite; no web page). Every 0.5 s the process tree of ``up`` is read from
   /proc: each process's CPU time (utime + stime of /proc/PID/stat: threads included, children not) and
   peak RSS (VmHWM of /proc/PID/status), by stage (up, watcher, analyzer, persister, nats-server, rust,
   web), the last reading of each pid kept; the events stream's message count from nats-server's
   monitor. Printed: CPU ms per file per stage and in all, files/s (N / time to idle), time to idle
   (from the start of ``up`` to the moment it found the run idle: the line it prints then, less its
   10-s idle wait), peak RSS per process, the store (DATA/nats), database and watcher-state sizes,
   inotify overflows (the watcher's stop line), and the check: rows = N, none failed, the events stream
   stored N messages (its last sequence: 0 duplicates).
3. **Restart** on the unchanged library: time to idle, events the watcher published (0 expected) and
   the stream's last sequence unchanged.
3b. **Second pass** (``--second-pass``, on by default): every file gets a new mtime, so the whole
   library is published, analysed (a reuse: the audio is unchanged) and stored again; the store's size
   after two passes against one (acceptance: within 1.2x; the streams keep each file's latest message).
4. **Stop test** (``--stop-test-files M``, default N/10, at least 500): M new files; ``up`` is
   interrupted (SIGINT) once its watcher has published about half of them; the time until ``up`` has
   exited (acceptance: under 5 s), then a resumed run to idle; the watcher's events over both runs must be
   exactly M, with no duplicate refused by the stream (nothing republished).

Sampling every 0.5 s misses at most the last half second of a process's CPU (its shutdown); the sum
over stages is checked against the total that the kernel accounted for ``up`` and everything it
reaped (wait4), printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SR = 22050
DURATION_S = 2.0
SAMPLE_S = 0.5
IDLE_LINE = re.compile(r"everything discovered is persisted \(idle for ([0-9.]+) s\)")
CLK_TCK = os.sysconf("SC_CLK_TCK")
STAGES = ("up", "watcher", "analyzer", "persister", "nats-server", "rust", "web", "other")


def say(message: str) -> None:
    print(message, flush=True)


# ---------------------------------------------------------------------------------------------- library
def library_paths(library: Path, n: int, folders_of: int) -> list[Path]:
    per_artist = folders_of * 10
    return [library / f"artist{i // per_artist:04d}" / f"album{i // folders_of:06d}" / f"{i % folders_of + 1:02d} track {i}.flac"
            for i in range(n)]


def generate_library(library: Path, n: int, folders_of: int) -> float:
    """N distinct 2-s FLAC files; the seconds it took (0 when an earlier run of the same N left them)."""
    import numpy as np
    import soundfile as sf

    marker = library / ".bench-scale.json"
    if marker.exists() and json.loads(marker.read_text()) == {"files": n, "folders_of": folders_of}:
        return 0.0
    if library.exists():
        shutil.rmtree(library)
    started = time.monotonic()
    t = np.arange(int(SR * DURATION_S)) / SR
    envelope = np.minimum(1.0, np.minimum(t, DURATION_S - t) * 20)  # no clicks
    for i, path in enumerate(library_paths(library, n, folders_of)):
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(i)
        freq = 80.0 * 2 ** ((i % 997) / 120.0)  # ~8 octaves in 997 steps
        beat = 1.0 + (i // 997) % 7  # a tremolo rate: with the pitch, distinct for ~7,000 files ...
        signal_ = 0.4 * np.sin(2 * np.pi * freq * t) * (0.7 + 0.3 * np.sin(2 * np.pi * beat * t))
        signal_ += 0.05 * rng.standard_normal(t.size)  # ... and the noise makes every file distinct
        sf.write(path, (signal_ * envelope).astype(np.float32), SR, subtype="PCM_16", format="FLAC")
        if (i + 1) % 5000 == 0:
            say(f"  generated {i + 1}/{n} ({(i + 1) / (time.monotonic() - started):.0f} files/s)")
    marker.write_text(json.dumps({"files": n, "folders_of": folders_of}))
    return time.monotonic() - started


def touch_all(paths: list[Path]) -> None:
    """A new mtime (one second later) for every file: a full pass of ``changed`` events, audio unchanged."""
    for path in paths:
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def add_files(library: Path, start: int, count: int, folders_of: int) -> None:
    """``count`` more distinct files, numbered from ``start``, in new album folders (for the stop test)."""
    import numpy as np
    import soundfile as sf

    t = np.arange(int(SR * DURATION_S)) / SR
    for i in range(start, start + count):
        path = library / "added" / f"album{i // folders_of:06d}" / f"{i % folders_of + 1:02d} track {i}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(i)
        freq = 90.0 * 2 ** ((i % 991) / 120.0)
        sf.write(path, (0.4 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32),
                 SR, subtype="PCM_16", format="FLAC")


# ---------------------------------------------------------------------------------------------- sampling
def stage_of(cmdline: list[str]) -> str:
    if not cmdline:
        return "other"
    exe = os.path.basename(cmdline[0])
    if exe.startswith("nats-server"):
        return "nats-server"
    if exe.startswith("trackprint-server"):
        return "rust"
    if "trackprint.cli" in cmdline or exe == "trackprint":
        words = [w for w in cmdline[1:] if not w.startswith("-") and w not in ("-m", "trackprint.cli")]
        for word in words:
            if word in ("watcher", "analyzer", "persister", "up"):
                return word
            if word == "serve":
                return "web"
    return "other"


def _read_proc(pid: int) -> tuple[int, float, int, list[str]] | None:
    """(ppid, cpu seconds, peak RSS bytes, cmdline) of a live process; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
        fields = stat[stat.rindex(")") + 2:].split()
        ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
        hwm = 0
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
                    break
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = [w.decode(errors="replace") for w in fh.read().split(b"\0") if w]
    except (OSError, ValueError, IndexError):
        return None
    return ppid, (utime + stime) / CLK_TCK, hwm, cmdline


@dataclass
class ProcSample:
    stage: str
    cpu_s: float = 0.0
    peak_rss: int = 0


@dataclass
class Sampler:
    """Reads the process tree under ``root_pid`` every SAMPLE_S seconds, in a thread."""

    root_pid: int
    monitor_url: str | None = None
    procs: dict[int, ProcSample] = field(default_factory=dict)
    events_in_stream: int | None = None
    events_published: int | None = None  # the stream's last sequence: every event it ever stored
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="bench-sampler")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        next_monitor = 0.0
        while not self._stop.is_set():
            self.sample()
            if time.monotonic() >= next_monitor:
                next_monitor = time.monotonic() + 1.0
                self._read_stream()
            self._stop.wait(SAMPLE_S)

    def sample(self) -> None:
        table: dict[int, tuple[int, float, int, list[str]]] = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                info = _read_proc(int(name))
                if info is not None:
                    table[int(name)] = info
        tree = {self.root_pid}
        changed = True
        while changed:  # descendants of up (its children; their own children, should they have any)
            changed = False
            for pid, (ppid, *_rest) in table.items():
                if ppid in tree and pid not in tree:
                    tree.add(pid)
                    changed = True
        for pid in tree:
            if pid not in table:
                continue
            _, cpu, hwm, cmdline = table[pid]
            sample = self.procs.get(pid)
            if sample is None:
                sample = self.procs[pid] = ProcSample(stage_of(cmdline) if pid != self.root_pid else "up")
            sample.cpu_s = max(sample.cpu_s, cpu)
            sample.peak_rss = max(sample.peak_rss, hwm)

    def _read_stream(self) -> None:
        if not self.monitor_url:
            return
        try:
            import httpx

            jsz = httpx.get(f"{self.monitor_url}/jsz", params={"streams": "true"}, timeout=2.0).json()
            for account in jsz.get("account_details", []):
                for stream in account.get("stream_detail", []):
                    if stream.get("name") == "TRACKPRINT_EVENTS":
                        self.events_in_stream = stream.get("state", {}).get("messages", 0)
                        self.events_published = stream.get("state", {}).get("last_seq", 0)
        except Exception:
            pass

    def by_stage(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for sample in self.procs.values():
            s = out.setdefault(sample.stage, {"processes": 0, "cpu_s": 0.0, "peak_rss_mb": 0.0})
            s["processes"] += 1
            s["cpu_s"] += sample.cpu_s
            s["peak_rss_mb"] = max(s["peak_rss_mb"], sample.peak_rss / 2**20)
        return out


# ---------------------------------------------------------------------------------------------- runs
@dataclass
class UpRun:
    """One ``trackprint up`` to its end (idle, or the interrupt), measured."""

    seconds: float = 0.0  # start to exit
    to_idle_s: float | None = None  # start to the moment up found the run idle
    stop_s: float | None = None  # SIGINT to exit (when interrupted)
    exit_code: int = 0
    stages: dict[str, dict] = field(default_factory=dict)
    events_in_stream: int | None = None
    events_published: int | None = None
    cpu_total_s: float = 0.0  # up and everything it reaped (wait4)
    watcher: dict = field(default_factory=dict)  # from the watcher's stop line


def run_up(library: Path, data: Path, analyzers: int | None, log: Path,
           interrupt_when=None) -> UpRun:
    cmd = [sys.executable, "-m", "trackprint.cli", "up", str(library), "--data-dir", str(data), "--web-port", "0"]
    if analyzers:
        cmd += ["--analyzers", str(analyzers)]
    if interrupt_when is None:
        cmd.append("--exit-when-idle")
    result = UpRun()
    log_offset = len(watcher_log(data)) if (data / "logs").exists() else 0
    started, wall_started = time.monotonic(), time.time() - 1
    lines: list[tuple[float, str]] = []
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=out)
        sampler = Sampler(proc.pid)
        sampler.start()

        def read_output() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                out.write(raw)
                lines.append((time.monotonic(), raw.decode(errors="replace")))

        reader = threading.Thread(target=read_output, daemon=True)
        reader.start()
        interrupted_at = None
        while True:
            try:
                _, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if _:
                proc.returncode = os.waitstatus_to_exitcode(status)
                result.cpu_total_s = rusage.ru_utime + rusage.ru_stime
                break
            if sampler.monitor_url is None and (data / "run.json").exists() and \
                    (data / "run.json").stat().st_mtime >= wall_started:  # this run's, not the last one's
                try:
                    state = json.loads((data / "run.json").read_text())
                    sampler.monitor_url = state.get("nats_monitor_url")
                except ValueError:
                    pass
            if interrupt_when is not None and interrupted_at is None and interrupt_when():
                interrupted_at = time.monotonic()
                proc.send_signal(signal.SIGINT)
            time.sleep(0.05)
        ended = time.monotonic()
        reader.join(10)
        sampler.stop()
    result.seconds = ended - started
    result.exit_code = proc.returncode or 0
    result.stop_s = ended - interrupted_at if interrupted_at is not None else None
    for at, line in lines:
        idle = IDLE_LINE.search(line)
        if idle:  # up says it after being idle a while, and for how long
            result.to_idle_s = at - started - float(idle.group(1))
    result.stages = sampler.by_stage()
    result.events_in_stream = sampler.events_in_stream
    result.events_published = sampler.events_published
    result.watcher = watcher_stop_line(data, log_offset)
    return result


def watcher_log(data: Path) -> str:
    text = ""
    for path in sorted((data / "logs").glob("watcher.log*"), reverse=True):  # .3 .2 .1 then the current one
        try:
            text += path.read_text(errors="replace")
        except OSError:
            pass
    return text


def watcher_stop_line(data: Path, since: int = 0) -> dict:
    """published / overflows / duplicates of one run, from the watcher's log after offset ``since``."""
    text = watcher_log(data)[since:]
    found = re.findall(r"watcher stopped: published (\d+).*?(\d+) inotify overflows", text)
    if not found:
        return {}
    published, overflows = found[-1]
    return {"published": int(published), "overflows": int(overflows),
            "duplicates": text.count(", duplicate)")}


def watcher_state_count(data: Path) -> int:
    try:
        with sqlite3.connect(f"file:{data / 'watcher.sqlite'}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
    except sqlite3.Error:
        return 0


def database_counts(data: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "trackprint.cli", "status", "--json", "--data-dir", str(data)],
                         capture_output=True, text=True, timeout=300)
    try:
        db = json.loads(out.stdout)["database"]
    except (ValueError, KeyError):
        return {}
    return {k: db.get(k) for k in ("active", "pending", "failed", "known", "failures_by_code")}


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


# ---------------------------------------------------------------------------------------------- report
def stage_table(run: UpRun, n: int) -> list[str]:
    lines = [f"  {'stage':<12} {'procs':>5} {'CPU s':>8} {'ms/file':>8} {'peak RSS MB':>12}"]
    total = 0.0
    for stage in STAGES:
        s = run.stages.get(stage)
        if not s:
            continue
        total += s["cpu_s"]
        lines.append(f"  {stage:<12} {s['processes']:>5} {s['cpu_s']:>8.1f} {1000 * s['cpu_s'] / n:>8.2f} "
                     f"{s['peak_rss_mb']:>12.0f}")
    lines.append(f"  {'all':<12} {'':>5} {total:>8.1f} {1000 * total / n:>8.2f}   (kernel's total for up and "
                 f"what it reaped: {run.cpu_total_s:.1f} s)")
    lines.append(f"  pipeline overhead (all but the Rust engine, which decodes and analyses): "
                 f"{overhead_ms_per_file(run, n):.2f} ms/file")
    return lines


def overhead_ms_per_file(run: UpRun, n: int) -> float:
    """CPU per file of every process but the analysis server: what moving the files costs."""
    return 1000 * sum(s["cpu_s"] for stage, s in run.stages.items() if stage != "rust") / n


def run(args: argparse.Namespace) -> int:
    n = args.files
    if n <= 0:
        print("bench-scale: N must be positive", file=sys.stderr)
        return 2
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="trackprint-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    library, data, logs = work / "library", work / "data", work / "bench-logs"
    logs.mkdir(exist_ok=True)
    if data.exists():
        shutil.rmtree(data)  # every benchmark starts from an empty pipeline
    shutil.rmtree(library / "added", ignore_errors=True)  # an earlier stop test's files
    figures: dict = {"files": n, "folders_of": args.folders_of, "work": str(work), "cores": os.cpu_count()}
    try:
        say(f"bench-scale: {n} files, {args.folders_of} per album, in {work}")
        generated = generate_library(library, n, args.folders_of)
        say(f"library: {'generated in %.0f s' % generated if generated else 'reused'} "
            f"({size_of(library) / 2**20:.0f} MB, {n // args.folders_of} albums)")

        say("first run: trackprint up --exit-when-idle ...")
        first = run_up(library, data, args.analyzers, logs / "up-1.log")
        counts = database_counts(data)
        figures["first"] = _run_figures(first, n)
        figures["first"]["database"] = counts
        figures["sizes_mb"] = {"store": size_of(data / "nats") / 2**20,
                               "database": sum(size_of(p) for p in data.glob("trackprint.db*")) / 2**20,
                               "watcher_state": sum(size_of(p) for p in data.glob("watcher.sqlite*")) / 2**20}
        say(f"first run: exit {first.exit_code} after {first.seconds:.0f} s; time to idle "
            f"{_s(first.to_idle_s)}; {n / first.to_idle_s if first.to_idle_s else 0:.1f} files/s end to end")
        for line in stage_table(first, n):
            say(line)
        missing = n - (counts.get("active") or 0)
        say(f"  rows: {counts.get('active')} fingerprinted, {counts.get('failed')} failed, "
            f"{counts.get('pending')} pending: {missing} missing; events published: {first.events_published} "
            f"({(first.events_published or 0) - n} duplicates), kept in the stream: {first.events_in_stream}; "
            f"watcher: {first.watcher}")
        sizes = figures["sizes_mb"]
        say(f"  sizes: store {sizes['store']:.0f} MB, database {sizes['database']:.0f} MB, watcher state "
            f"{sizes['watcher_state']:.0f} MB")

        say("restart on the unchanged library ...")
        second = run_up(library, data, args.analyzers, logs / "up-2.log")
        figures["restart"] = _run_figures(second, n)
        say(f"restart: time to idle {_s(second.to_idle_s)}, events published {second.watcher.get('published')}, "
            f"events published {first.events_published} -> {second.events_published}, watcher peak RSS "
            f"{second.stages.get('watcher', {}).get('peak_rss_mb', 0):.0f} MB")

        if args.second_pass:
            say("second pass: every file touched (a new mtime), so each is published, analysed (a reuse of its "
                "fingerprint) and stored again ...")
            touch_all(library_paths(library, n, args.folders_of))
            again = run_up(library, data, args.analyzers, logs / "up-pass-2.log")
            store = size_of(data / "nats") / 2**20
            figures["second_pass"] = {**_run_figures(again, n), "store_mb": store,
                                      "store_ratio": store / sizes["store"] if sizes["store"] else None,
                                      "database": database_counts(data)}
            say(f"second pass: time to idle {_s(again.to_idle_s)}; events published {second.events_published} -> "
                f"{again.events_published}, kept {again.events_in_stream}; store {sizes['store']:.1f} MB after one "
                f"pass, {store:.1f} MB after two: {figures['second_pass']['store_ratio']:.2f}x")

        m = args.stop_test_files if args.stop_test_files is not None else max(500, n // 10)
        if m:
            add_files(library, n, m, args.folders_of)
            known = watcher_state_count(data)
            say(f"stop test: {m} files added; SIGINT once the watcher has published about half of them ...")
            third = run_up(library, data, args.analyzers, logs / "up-3.log",
                           interrupt_when=lambda: watcher_state_count(data) >= known + m // 2)
            published_before = third.watcher.get("published", 0)
            fourth = run_up(library, data, args.analyzers, logs / "up-4.log")
            counts = database_counts(data)
            figures["stop_test"] = {"files": m, "stop_s": third.stop_s, "exit_code": third.exit_code,
                                    "published_before_stop": published_before,
                                    "published_after_restart": fourth.watcher.get("published"),
                                    "duplicates": (third.watcher.get("duplicates", 0)
                                                   + fourth.watcher.get("duplicates", 0)),
                                    "events_in_stream": fourth.events_in_stream, "database": counts}
            st = figures["stop_test"]
            say(f"stop test: up exited {_s(third.stop_s)} after SIGINT (exit {third.exit_code}); watcher published "
                f"{published_before} before the stop and {st['published_after_restart']} after the restart "
                f"(sum {published_before + (st['published_after_restart'] or 0)} for {m} files), duplicates "
                f"{st['duplicates']}; rows {counts.get('active')} of {n + m}")
        if args.json:
            print(json.dumps(figures, indent=2))
        (logs / "figures.json").write_text(json.dumps(figures, indent=2))
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep:
            say(f"kept {work} (library, data, bench-logs/figures.json)")
    return 0


def _run_figures(run: UpRun, n: int) -> dict:
    return {"seconds": run.seconds, "to_idle_s": run.to_idle_s, "exit_code": run.exit_code,
            "files_per_s": n / run.to_idle_s if run.to_idle_s else None,
            "stages": {k: {**v, "ms_per_file": 1000 * v["cpu_s"] / n} for k, v in run.stages.items()},
            "overhead_ms_per_file": overhead_ms_per_file(run, n),
            "cpu_total_s": run.cpu_total_s, "events_in_stream": run.events_in_stream, "watcher": run.watcher}


def _s(seconds: float | None) -> str:
    return f"{seconds:.1f} s" if seconds is not None else "-"
