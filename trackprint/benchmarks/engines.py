"""``trackprint bench DIR [--jobs N] [--limit N] [--long-file]``: what whole-track analysis costs.

On the audio files in DIR (FLAC, Opus, Vorbis, MP3, AAC/M4A, WavPack, WAV...: a
mixed library, recognised by content) it measures, in one run and on the same files:

* ``decode``: the reference decoders decoding only (the Python engine's own
  decoding: libsndfile's libFLAC/libvorbis/mpg123, FFmpeg through PyAV for
  MP4, AAC, WavPack, APE and its libopus wrapper for Opus), every block as float32: the floor for any
  whole-track analysis, reported per codec too;
* ``rust-decode``: the Rust engine's decoders only (``trackprint-server
  --decode FILE`` to /dev/null, one process per file; a file's seconds are the
  decoding's own, as the binary measures it, without the ~50 ms process start,
  so that it compares with a request to a running server; the wall time of a
  round still includes the starts);
* ``bliss``: bliss-audio (``pip install 'trackprint[bench]'``), the peer:
  ``bliss_audio.Song(path).analysis`` per file, when it is installed;
* ``python``: the Python engine (:func:`trackprint.pyengine.engine.analyze_file`);
* ``rust``: the Rust engine, through the analyzers' own ``RustClient``, to a trackprint-server
  started for the run with ``--max-concurrency`` = ``--jobs`` (requests ``--jobs``
  at a time); its per-file seconds are the request's wall time and its RSS
  column is the server's peak (VmHWM);

each in a fresh pool of ``--jobs`` worker processes, started and warmed
(imports done) before the clock starts. It prints wall seconds, tracks/s,
times real time, the ratio to decode-only, per-file medians and the peak RSS
of the workers. ``--long-file`` also writes (streaming) a 2-hour 44.1 kHz
stereo FLAC from the tracks, analyses it in a subprocess and reports that
process's peak RSS, which must stay under 500 MB; with the ``rust`` column it
also analyses it on a fresh server and reports the server's peak RSS (limit
150 MB).

An engine is a top-level function ``path -> dict`` (keys ``ok``, ``seconds``,
``audio_s``, ``rss_kb`` and, on failure, ``error``) that a process pool can
run; :data:`ENGINES` lists them in column order. Another engine (the Rust
server) is added by appending an :class:`Engine` to it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

LONG_FILE_SECONDS = 2 * 3600
LONG_FILE_RSS_LIMIT_MB = 500
LONG_FILE_RATE = 44_100
RUST_LONG_FILE_RSS_LIMIT_MB = 150
RUST_URL_ENV, RUST_PID_ENV = "TRACKPRINT_BENCH_RUST_URL", "TRACKPRINT_BENCH_RUST_PID"


# -- engines: top-level functions a process pool can pickle ----------------------------------
def _rss_kb() -> int:
    """This process's peak resident set so far, KiB (Linux ru_maxrss unit)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def decode_only(path: str) -> dict[str, Any]:
    """The reference decoders (the Python engine's decoding: libsndfile or PyAV), every block, nothing computed."""
    from trackprint.pyengine.decode import open_stream
    from trackprint.pyengine.engine import block_frames

    started = time.perf_counter()
    try:
        with open(path, "rb") as handle:
            stream = open_stream(handle, path, os.fstat(handle.fileno()).st_size, block_frames)
            for _ in stream.blocks:
                pass
            audio_s = stream.decoded_duration_s
    except Exception as exc:  # noqa: BLE001 - a bench reports, it does not stop
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - started,
                "audio_s": 0.0, "rss_kb": _rss_kb()}
    return {"ok": True, "seconds": time.perf_counter() - started, "audio_s": audio_s, "rss_kb": _rss_kb()}


def rust_decode_only(path: str) -> dict[str, Any]:
    """The Rust engine's decoders alone: ``trackprint-server --decode FILE`` with the samples to /dev/null."""
    from trackprint import binaries

    started = time.perf_counter()
    proc = subprocess.Popen([binaries.rust_server_binary() or "trackprint-server", "--decode", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    try:
        facts = json.loads(err.decode(errors="replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        facts = {"ok": False, "error": {"code": "internal", "message": err.decode(errors="replace")[-500:]}}
    if os.waitstatus_to_exitcode(status) != 0 or not facts.get("ok"):
        error = facts.get("error") or {}
        return {"ok": False, "error": f"{error.get('code')}: {error.get('message')}", "seconds": seconds,
                "audio_s": 0.0, "rss_kb": usage.ru_maxrss}
    # the binary's own decoding time (from 0.1 on; before: the process's, start included)
    seconds = float(facts.get("seconds", seconds))
    return {"ok": True, "seconds": seconds, "audio_s": facts["decode"]["decoded_duration_s"], "rss_kb": usage.ru_maxrss}


def bliss_engine(path: str) -> dict[str, Any]:
    """bliss-audio's analysis of one song (its own FFmpeg decodes); a panic is a failure, not a crash."""
    import bliss_audio

    started = time.perf_counter()
    try:
        song = bliss_audio.Song(path)
        _ = song.analysis
        audio_s = float(getattr(song, "duration", 0.0) or 0.0)
    except BaseException as exc:  # noqa: BLE001 - bliss panics (pyo3 PanicException) on a few files
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - started,
                "audio_s": 0.0, "rss_kb": _rss_kb()}
    return {"ok": True, "seconds": time.perf_counter() - started, "audio_s": audio_s, "rss_kb": _rss_kb()}


def _warm_bliss() -> int:
    import bliss_audio  # noqa: F401

    return os.getpid()


def bliss_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("bliss_audio") is not None


def _result(outcome, seconds: float, rss_kb: int) -> dict[str, Any]:
    if outcome.error is not None:
        return {"ok": False, "error": f"{outcome.error.code.value}: {outcome.error.message}", "seconds": seconds,
                "audio_s": 0.0, "rss_kb": rss_kb}
    return {"ok": True, "seconds": seconds, "audio_s": outcome.decode.decoded_duration_s, "rss_kb": rss_kb}


def python_engine(path: str) -> dict[str, Any]:
    """The Python engine, whole file: decode + all 25 dimensions."""
    from trackprint.analyzer.engines import python_outcome

    started = time.perf_counter()
    outcome = python_outcome(path)
    return _result(outcome, time.perf_counter() - started, _rss_kb())


def _server_peak_rss_kb(pid: int) -> int:
    """VmHWM (peak resident set, KiB) of a process, from /proc."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


_rust: dict[str, Any] = {}  # per worker process: its event loop and RustClient (made by _warm_rust)


def rust_engine(path: str) -> dict[str, Any]:
    """One request through the analyzers' own RustClient; seconds = the request's wall time."""
    from trackprint.analyzer.engines import RustUnavailable, failed
    from trackprint.errors import ErrorCode

    if _rust.get("url") != os.environ[RUST_URL_ENV]:  # first call, or a fresh server (the long files)
        _warm_rust()
    started = time.perf_counter()
    try:
        outcome = _rust["loop"].run_until_complete(_rust["client"].analyse(path))
    except RustUnavailable as exc:
        outcome = failed(path, ErrorCode.ENGINE_UNAVAILABLE, str(exc), "analyse", "rust")
    return _result(outcome, time.perf_counter() - started, _server_peak_rss_kb(int(os.environ[RUST_PID_ENV])))


def _warm_rust() -> int:
    import asyncio

    from trackprint.analyzer.engines import RustClient

    _rust["loop"] = asyncio.new_event_loop()
    _rust["url"] = os.environ[RUST_URL_ENV]
    _rust["client"] = RustClient(_rust["url"], timeout_s=3600.0, busy_retries=50)
    _rust["loop"].run_until_complete(_rust["client"].healthy())
    return os.getpid()


def start_rust_server(roots: list[str], jobs: int):
    """A trackprint-server for the bench; exits when the binary is missing."""
    from trackprint import binaries
    from trackprint.analyzer.engines import LocalServer

    binary = binaries.rust_server_binary()
    if binary is None:
        raise SystemExit(f"bench: the {binaries.RUST_SERVER} binary was not found; {binaries.RUST_BUILD_HINT}, "
                         "or leave the column out with --engines decode,python")
    return LocalServer(binary, roots, jobs).start()


def _warm_python() -> int:
    """Import what the workers need before the clock starts."""
    import scipy.fft  # noqa: F401
    import scipy.signal  # noqa: F401
    import soundfile  # noqa: F401

    import trackprint.analyzer.engines  # noqa: F401
    import trackprint.pyengine.engine  # noqa: F401

    return os.getpid()


@dataclass(frozen=True)
class Engine:
    name: str
    run: Callable[[str], dict[str, Any]]  # path -> result; top-level so a pool can pickle it
    warm: Callable[[], Any] = _warm_python  # runs once per worker before timing
    description: str = ""


ENGINES: list[Engine] = [
    Engine("decode", decode_only, description="reference decoders only (libsndfile: libFLAC/libvorbis/mpg123; "
                                              "FFmpeg via PyAV: MP4/AAC/WavPack/APE, libopus), float32 blocks"),
    Engine("rust-decode", rust_decode_only, description="the Rust engine's decoders only (trackprint-server --decode; "
                                                      "per file: the decoding's own time, process start excluded)"),
    Engine("python", python_engine, description="Python engine, analyze_file"),
    Engine("rust", rust_engine, warm=_warm_rust,
           description="Rust engine, RustClient to trackprint-server --max-concurrency JOBS"),
    Engine("bliss", bliss_engine, warm=_warm_bliss, description="bliss-audio 0.2 (the peer), Song(path).analysis"),
]
BASELINE = "decode"


@dataclass
class EngineRun:
    engine: Engine
    wall_s: float
    startup_s: float
    results: list[dict[str, Any]]

    @property
    def ok(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r["ok"]]

    @property
    def audio_s(self) -> float:
        return sum(r["audio_s"] for r in self.ok)

    @property
    def peak_rss_mb(self) -> float:
        return max((r["rss_kb"] for r in self.results), default=0) / 1024.0


def run_engine(engine: Engine, paths: list[str], jobs: int) -> EngineRun:
    """All ``paths`` through ``engine`` in a fresh pool of ``jobs`` warmed workers; wall time excludes startup."""
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        # one warm-up per worker: submit them together so each worker takes one
        warm = [pool.submit(_warm_barrier, engine.warm, jobs) for _ in range(jobs)]
        for future in warm:
            future.result()
        startup = time.perf_counter() - started
        clock = time.perf_counter()
        results = list(pool.map(engine.run, paths, chunksize=1))
        wall = time.perf_counter() - clock
    return EngineRun(engine, wall, startup, results)


def _warm_barrier(warm: Callable[[], Any], jobs: int) -> Any:
    out = warm()
    time.sleep(0.2)  # hold this worker so the other warm-ups go to the other workers
    return out


# -- the 2-hour file --------------------------------------------------------------------
def write_long_file(sources: list[str], dest: str, seconds: float = LONG_FILE_SECONDS) -> float:
    """Concatenate ``sources`` (repeating them) into a 44.1 kHz stereo 16-bit FLAC, block by block."""
    import numpy as np
    import soundfile

    target = int(seconds * LONG_FILE_RATE)
    written = 0
    usable = [s for s in sources if soundfile.info(s).samplerate == LONG_FILE_RATE]
    if not usable:
        raise SystemExit(f"no {LONG_FILE_RATE} Hz FLAC among the tracks to build the long file from")
    partial = dest + ".part"
    with soundfile.SoundFile(partial, "w", LONG_FILE_RATE, 2, "PCM_16", format="FLAC") as out:
        while written < target:
            for source in usable:
                with soundfile.SoundFile(source) as sound:
                    for block in sound.blocks(blocksize=1 << 18, dtype="float32", always_2d=True):
                        if block.shape[1] == 1:
                            block = np.repeat(block, 2, axis=1)
                        block = block[:, :2][: target - written]
                        out.write(block)
                        written += len(block)
                        if written >= target:
                            break
                if written >= target:
                    break
    os.replace(partial, dest)
    return written / LONG_FILE_RATE


_LONG_CHILD = """
import json, resource, sys, time
from trackprint.analyzer.engines import python_outcome
t = time.perf_counter()
out = python_outcome(sys.argv[1])
if out.error is not None:
    sys.exit(f"{out.error.stage}: {out.error.code.value}: {out.error.message}")
print(json.dumps({"seconds": time.perf_counter() - t, "audio_s": out.decode.decoded_duration_s,
                  "lufs": out.fingerprint.lufs, "tempo_bpm": out.fingerprint.tempo_bpm,
                  "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def analyse_in_subprocess(path: str) -> dict[str, Any]:
    """analyze_file in a fresh interpreter; its peak RSS from wait4 (the kernel's count, not its own)."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _LONG_CHILD, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout = proc.stdout.read()  # type: ignore[union-attr]
    stderr = proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        return {"ok": False, "error": stderr.decode(errors="replace")[-2000:], "wall_s": wall,
                "rss_mb": usage.ru_maxrss / 1024.0}
    result = json.loads(stdout)
    return {"ok": True, "wall_s": wall, "rss_mb": usage.ru_maxrss / 1024.0, **result}


# -- the command ------------------------------------------------------------------------
AUDIO_SUFFIXES = {".flac", ".opus", ".ogg", ".oga", ".mp3", ".m4a", ".mp4", ".aac", ".wav", ".aif", ".aiff", ".wv",
                  ".ape", ".caf", ".w64"}


def _audio_files(root: str, limit: int) -> list[str]:
    files = sorted(str(p) for p in Path(root).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    return files[:limit] if limit > 0 else files


def _flac_files(root: str, limit: int) -> list[str]:
    return [p for p in _audio_files(root, 0) if p.lower().endswith(".flac")][: limit or None]


def codec_of(path: str) -> str:
    """The codec a file holds, by content (the sniffer both engines use): opus, vorbis, flac, mp3, mp4 (AAC/ALAC)..."""
    from trackprint.pyengine.sniff import sniff_file

    try:
        with open(path, "rb") as f:
            found, _ = sniff_file(f, os.fstat(f.fileno()).st_size)
    except OSError:
        return "unreadable"
    if found is None:
        return "unknown"
    return found.codec or found.container


def run(args: argparse.Namespace) -> int:
    if not os.path.isdir(args.dir):
        print(f"bench: {args.dir}: not a directory", file=sys.stderr)
        return 2
    paths = _audio_files(args.dir, args.limit)
    if not paths:
        print(f"bench: no .flac files (nor other audio: {' '.join(sorted(AUDIO_SUFFIXES))}) under {args.dir}",
              file=sys.stderr)
        return 2
    default = [e.name for e in ENGINES if e.name != "bliss" or bliss_installed()]
    wanted = [n.strip() for n in (args.engines or ",".join(default)).split(",") if n.strip()]
    by_name = {e.name: e for e in ENGINES}
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        print(f"bench: unknown engine(s) {', '.join(unknown)}; known: {', '.join(by_name)}", file=sys.stderr)
        return 2
    if "bliss" in wanted and not bliss_installed():
        print("bench: bliss-audio is not installed (pip install 'trackprint[bench]'); leave it out with --engines",
              file=sys.stderr)
        return 2
    jobs = max(1, args.jobs)
    size_mb = sum(os.path.getsize(p) for p in paths) / 1e6
    codecs = [codec_of(p) for p in paths]
    counts = {c: codecs.count(c) for c in sorted(set(codecs))}
    if set(counts) == {"flac"}:
        print(f"bench: {len(paths)} FLAC files ({size_mb:.0f} MB) in {args.dir}, {jobs} worker processes per engine")
    else:
        mix = ", ".join(f"{n} {c}" for c, n in counts.items())
        print(f"bench: {len(paths)} audio files ({mix}; {size_mb:.0f} MB) in {args.dir}, "
              f"{jobs} worker processes per engine")

    server = None
    if "rust" in wanted:
        server = start_rust_server(sorted({os.path.dirname(os.path.realpath(p)) for p in paths}), jobs)
        os.environ[RUST_URL_ENV], os.environ[RUST_PID_ENV] = server.url, str(server.process.pid)
    rounds = max(1, args.rounds)
    all_runs: dict[str, list[EngineRun]] = {name: [] for name in wanted}
    try:
        for index in range(rounds):
            # alternate the order so that a slow or fast phase of the machine hits every engine alike
            for name in (wanted if index % 2 == 0 else list(reversed(wanted))):
                all_runs[name].append(run_engine(by_name[name], paths, jobs))
    finally:
        if server is not None:
            server.stop()
    runs = [_median_run(all_runs[name]) for name in wanted]
    ratios = _round_ratios(all_runs) if rounds > 1 else None
    report = _report(runs, paths, ratios)
    per_codec = _per_codec(all_runs, codecs) if len(counts) > 1 or "rust-decode" in wanted else None
    fallback = _fallback_share(all_runs, paths, codecs)
    # bliss panics on a few files its FFmpeg cannot open: its failures are reported, not fatal
    failed = any(len(r.ok) != len(paths) for r in runs if r.engine.name != "bliss")

    long_result = rust_long = None
    if args.long_file:
        flacs = [p for p, c in zip(paths, codecs) if c == "flac"]
        long_result = _long_file(flacs, args.long_file_path)
        failed = failed or not long_result["ok"] or long_result["rss_mb"] >= LONG_FILE_RSS_LIMIT_MB
        if "rust" in wanted:
            rust_long = {"flac": _long_file_rust(long_result["path"])}
            for fmt, encode in LONG_FILE_LOSSY.items():
                lossy = _long_lossy(long_result["path"], fmt, encode)
                if lossy is not None:
                    rust_long[fmt] = _long_file_rust(lossy)
            failed = failed or any(not r["ok"] or r["rss_mb"] >= RUST_LONG_FILE_RSS_LIMIT_MB for r in rust_long.values())
    if args.json:
        print(json.dumps({"files": len(paths), "jobs": jobs, "codecs": counts, "engines": report,
                          "round_ratios": ratios, "per_codec": per_codec, "fallback": fallback,
                          "long_file": long_result, "rust_long_file": rust_long}))
    return 1 if failed else 0


LONG_FILE_LOSSY = {"opus": ["-c:a", "libopus", "-b:a", "128k"], "m4a": ["-c:a", "aac", "-b:a", "192k"]}


def _long_lossy(flac: str, fmt: str, encode: list[str]) -> str | None:
    """The 2-hour file encoded as Opus or AAC with ffmpeg (reused when present); None without ffmpeg."""
    import shutil

    dest = os.path.splitext(flac)[0] + "." + fmt
    if os.path.exists(dest):
        return dest
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        print(f"long file ({fmt}): ffmpeg not found, not encoded")
        return None
    started = time.perf_counter()
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", flac, *encode, dest + ".part." + fmt], check=True)
    os.replace(dest + ".part." + fmt, dest)
    print(f"long file ({fmt}): encoded {dest} in {time.perf_counter() - started:.0f} s")
    return dest


def _per_codec(all_runs: dict[str, list[EngineRun]], codecs: list[str]) -> dict[str, Any]:
    """Per codec: the summed per-file seconds of every engine (median over rounds) and their ratios."""
    names = list(all_runs)
    table: dict[str, Any] = {}
    for codec in sorted(set(codecs)):
        idx = [i for i, c in enumerate(codecs) if c == codec]
        entry: dict[str, Any] = {"files": len(idx)}
        for name in names:
            totals = [sum(run.results[i]["seconds"] for i in idx) for run in all_runs[name]]
            entry[f"{name}_s"] = statistics.median(totals)
            entry[f"{name}_failed"] = sum(not all_runs[name][0].results[i]["ok"] for i in idx)
            # the audio as any engine decoded it (a failed file counts 0 there): the largest sum
            audio_s = sum(all_runs[name][0].results[i].get("audio_s") or 0.0 for i in idx)
            entry["audio_s"] = max(entry.get("audio_s", 0.0), audio_s)
        for top, bottom in (("rust", BASELINE), ("rust", "rust-decode"), ("rust-decode", BASELINE),
                            ("python", "rust"), ("bliss", "rust")):
            if top in all_runs and bottom in all_runs:
                per_round = [sum(a.results[i]["seconds"] for i in idx) / max(1e-9, sum(b.results[i]["seconds"] for i in idx))
                             for a, b in zip(all_runs[top], all_runs[bottom])]
                entry[f"{top}/{bottom}"] = statistics.median(per_round)
        table[codec] = entry
    cols = [k for k in next(iter(table.values())) if "/" in k]
    print()
    print("per codec (sum of per-file seconds, median over rounds; ratios: median of per-round ratios)")
    header = f"{'codec':<10} {'files':>5} {'audio min':>9} " + " ".join(f"{n + ' s':>13}" for n in names) + " " + \
        " ".join(f"{c:>17}" for c in cols)
    print(header)
    print("-" * len(header))
    for codec, e in table.items():
        print(f"{codec:<10} {e['files']:>5} {e.get('audio_s', 0) / 60:>9.1f} "
              + " ".join(f"{e[n + '_s']:>13.2f}" for n in names) + " "
              + " ".join(f"{e[c]:>16.2f}x" for c in cols))
    return table


def _fallback_share(all_runs: dict[str, list[EngineRun]], paths: list[str], codecs: list[str]) -> dict[str, Any] | None:
    """What `--engine auto` would hand to the Python engine: the Rust engine's answers with a fallback code."""
    if "rust" not in all_runs:
        return None
    from trackprint.analyzer.engines import FALLBACK_CODES

    codes = {c.value for c in FALLBACK_CODES}
    results = all_runs["rust"][0].results
    falling = [i for i, r in enumerate(results) if not r["ok"] and r.get("error", "").split(":")[0] in codes]
    audio = [r["audio_s"] for r in all_runs[BASELINE][0].results] if BASELINE in all_runs else [0.0] * len(paths)
    share = {"files": len(falling), "of_files": len(paths), "file_share": len(falling) / len(paths),
             "audio_share": (sum(audio[i] for i in falling) / sum(audio)) if sum(audio) else 0.0,
             "by_codec": {c: sum(codecs[i] == c for i in falling) for c in sorted({codecs[i] for i in falling})},
             "reasons": sorted({results[i].get("error", "")[:160] for i in falling})}
    print(f"fallback: {share['files']} of {len(paths)} files ({100 * share['file_share']:.1f}%, "
          f"{100 * share['audio_share']:.1f}% of the audio) would go to the Python engine"
          + (f": {share['by_codec']}" if falling else ""))
    return share


def _times(ratio: float, width: int) -> str:
    """``1.23x`` right-aligned in ``width``; ``-`` when there is no ratio (no decode-only column ran)."""
    return f"{'-' if math.isnan(ratio) else f'{ratio:.2f}x':>{width}}"


def _median_run(runs: list[EngineRun]) -> EngineRun:
    """The run with the median wall time (the lower middle one for an even count)."""
    return sorted(runs, key=lambda r: r.wall_s)[(len(runs) - 1) // 2]


def _round_ratios(all_runs: dict[str, list[EngineRun]]) -> dict[str, Any]:
    """Ratios measured side by side within each round, and their medians."""
    pairs = [("python", BASELINE), ("rust", BASELINE), ("python", "rust"), ("rust", "rust-decode"),
             ("rust-decode", BASELINE), ("bliss", "rust")]
    out: dict[str, Any] = {}
    for top, bottom in pairs:
        if top in all_runs and bottom in all_runs:
            per_round = [a.wall_s / b.wall_s for a, b in zip(all_runs[top], all_runs[bottom]) if b.wall_s > 0]
            out[f"{top}/{bottom}"] = {"per_round": per_round, "median": statistics.median(per_round)}
    rounds = len(next(iter(all_runs.values())))
    print(f"rounds: {rounds}, order alternated; wall seconds per round: "
          + "; ".join(f"{name} " + " ".join(f"{r.wall_s:.1f}" for r in runs) for name, runs in all_runs.items()))
    for key, value in out.items():
        print(f"  {key}: per round " + " ".join(f"{x:.2f}x" for x in value["per_round"])
              + f", median {value['median']:.2f}x")
    print()
    return out


def _report(runs: list[EngineRun], paths: list[str], ratios: dict[str, Any] | None = None) -> dict[str, Any]:
    baseline = next((r for r in runs if r.engine.name == BASELINE), None)
    audio_s = max((r.audio_s for r in runs), default=0.0)
    print(f"audio: {audio_s:.0f} s ({audio_s / 60:.1f} min), median track {_median_audio(runs):.0f} s")
    print()
    header = (f"{'engine':<8} {'wall s':>8} {'tracks/s':>9} {'x realtime':>11} {'vs decode':>10} "
              f"{'median file s':>14} {'median vs decode':>17} {'peak worker RSS':>16} {'startup s':>10}")
    print(header)
    print("-" * len(header))
    report: dict[str, Any] = {}
    for r in runs:
        ok = r.ok
        per_file = [x["seconds"] for x in ok]
        ratio = r.wall_s / baseline.wall_s if baseline and baseline.wall_s > 0 else float("nan")
        per_file_ratio = float("nan")
        if baseline is not None and r is not baseline:
            pairs = [a["seconds"] / b["seconds"] for a, b in zip(r.results, baseline.results)
                     if a["ok"] and b["ok"] and b["seconds"] > 0]
            per_file_ratio = statistics.median(pairs) if pairs else float("nan")
        elif r is baseline:
            per_file_ratio = 1.0
        entry = {
            "wall_s": r.wall_s,
            "startup_s": r.startup_s,
            "tracks_per_s": len(ok) / r.wall_s if r.wall_s > 0 else 0.0,
            "x_realtime": r.audio_s / r.wall_s if r.wall_s > 0 else 0.0,
            "ratio_to_decode": ratio,
            "median_file_s": statistics.median(per_file) if per_file else float("nan"),
            "median_ratio_to_decode": per_file_ratio,
            "peak_worker_rss_mb": r.peak_rss_mb,
            "failed": len(r.results) - len(ok),
        }
        report[r.engine.name] = entry
        print(f"{r.engine.name:<8} {entry['wall_s']:>8.2f} {entry['tracks_per_s']:>9.2f} {entry['x_realtime']:>10.0f}x "
              f"{_times(entry['ratio_to_decode'], 10)} {entry['median_file_s']:>14.3f} "
              f"{_times(entry['median_ratio_to_decode'], 17)} "
              f"{entry['peak_worker_rss_mb']:>13.0f} MB {entry['startup_s']:>10.2f}")
    print()
    for r in runs:
        print(f"  {r.engine.name}: {r.engine.description}")
        for path, result in zip(paths, r.results):
            if not result["ok"]:
                print(f"    FAILED {path}: {result.get('error')}")
    print("  wall s: from the first file submitted to the last result, workers already started and imports done")
    print("  peak worker RSS: the largest ru_maxrss any worker reported (KiB from getrusage, shown in MB)")
    basis = "median of the per-round ratios" if ratios else "one round"

    def ratio_of(key: str, fallback: float) -> float:
        return ratios[key]["median"] if ratios and key in ratios else fallback

    if "python" in report and BASELINE in report:
        ratio = ratio_of(f"python/{BASELINE}", report["python"]["ratio_to_decode"])
        verdict = "OK" if ratio <= 4.0 else "ABOVE TARGET"
        print(f"  python engine / decode-only: {ratio:.2f}x (target <= 4x: {verdict}; {basis})")
    if "rust" in report and BASELINE in report:
        ratio = ratio_of(f"rust/{BASELINE}", report["rust"]["ratio_to_decode"])
        verdict = "OK" if ratio <= 1.5 else "ABOVE TARGET"
        print(f"  rust engine / decode-only: {ratio:.2f}x (target <= 1.5x: {verdict}; {basis})")
    if "rust" in report and "python" in report and report["rust"]["wall_s"] > 0:
        speedup = ratio_of("python/rust", report["python"]["wall_s"] / report["rust"]["wall_s"])
        report["rust"]["python_over_rust"] = speedup
        print(f"  python / rust: {speedup:.2f}x (target >= 2x: {'OK' if speedup >= 2 else 'BELOW TARGET'}; {basis})")
    return report


def _median_audio(runs: list[EngineRun]) -> float:
    for r in runs:
        if r.ok:
            return statistics.median(x["audio_s"] for x in r.ok)
    return 0.0


def _long_file(paths: list[str], where: str | None) -> dict[str, Any]:
    import soundfile

    dest = where or os.path.join(tempfile.gettempdir(), "trackprint-bench-2h.flac")
    print()
    reuse = False
    if os.path.exists(dest):
        try:
            info = soundfile.info(dest)
            reuse = info.frames >= LONG_FILE_SECONDS * LONG_FILE_RATE and info.channels == 2
        except RuntimeError:
            reuse = False
    if reuse:
        print(f"long file: reusing {dest}")
    else:
        started = time.perf_counter()
        seconds = write_long_file(paths, dest)
        print(f"long file: wrote {dest} ({seconds / 3600:.2f} h, {os.path.getsize(dest) / 1e6:.0f} MB) "
              f"in {time.perf_counter() - started:.1f} s, streaming")
    result = {**analyse_in_subprocess(dest), "path": dest}
    if not result["ok"]:
        print(f"long file: FAILED: {result['error']}")
        return result
    limit = "OK" if result["rss_mb"] < LONG_FILE_RSS_LIMIT_MB else "ABOVE LIMIT"
    print(f"long file: {result['audio_s'] / 3600:.2f} h analysed in {result['seconds']:.1f} s "
          f"({result['audio_s'] / result['seconds']:.0f}x realtime; subprocess wall {result['wall_s']:.1f} s)")
    print(f"long file: subprocess peak RSS {result['rss_mb']:.0f} MB (limit {LONG_FILE_RSS_LIMIT_MB} MB: {limit}); "
          f"lufs {result['lufs']:.2f}, tempo {result['tempo_bpm']:.1f}")
    return result


def _long_file_rust(dest: str) -> dict[str, Any]:
    """The 2-hour file on a fresh trackprint-server; its peak RSS (VmHWM) after the request."""
    server = start_rust_server([os.path.dirname(os.path.realpath(dest))], 1)
    try:
        os.environ[RUST_URL_ENV], os.environ[RUST_PID_ENV] = server.url, str(server.process.pid)
        result = rust_engine(dest)
    finally:
        server.stop()
    rss_mb = result["rss_kb"] / 1024.0
    if not result["ok"]:
        print(f"long file (rust): FAILED: {result['error']}")
        return {**result, "rss_mb": rss_mb}
    limit = "OK" if rss_mb < RUST_LONG_FILE_RSS_LIMIT_MB else "ABOVE LIMIT"
    print(f"long file (rust): {result['audio_s'] / 3600:.2f} h analysed in {result['seconds']:.1f} s "
          f"({result['audio_s'] / result['seconds']:.0f}x realtime); server peak RSS {rss_mb:.0f} MB "
          f"(limit {RUST_LONG_FILE_RSS_LIMIT_MB} MB: {limit})")
    return {**result, "rss_mb": rss_mb}
