"""How often trackprint's ``tempo_bpm`` agrees with Essentia's tempo, next to Essentia's own second method.

The reference is Essentia's ``RhythmExtractor2013(method="multifeature")`` on the file decoded by
Essentia's ``MonoLoader`` at 44,100 Hz (mono). On the same tracks, Essentia's ``degara`` method is scored
against the same reference: that is the level a second good estimator reaches, the bar for trackprint.

The octave rule (:func:`agrees`): an estimate ``t`` agrees with a reference ``r`` when, for some
``k`` in {1, 2, 1/2}, ``|t - k r| <= 0.04 k r`` (within 4% of the reference, of its double or of its
half). ``t = 0`` (no tempo found) never agrees. Strict agreement is ``k = 1`` only. Other metrical levels
(3:2, 4:3) are disagreements, and are counted apart (``k`` in {3/2, 2/3, 4/3, 3/4}) because they say
what kind of mistake it is.

Essentia is the ``essentia`` wheel (``pip install 'trackprint[bench]'``); without it the report says so.
Opus files, which Essentia's own FFmpeg cannot open, are decoded with libsndfile, downmixed by averaging the
channels and resampled to 44,100 Hz with soxr. Each file is analysed in its own subprocess: the wheel's ``RhythmExtractor2013`` crashed the process
(a general protection fault inside ``_essentia``) on some files here, and a crash must cost one file (an
error entry), not the run. The estimates are cached per file in
``CORPUS/cache/essentia-tempo-<version>.json``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from trackprint.benchmarks.evaluation import filecache
from trackprint.benchmarks.evaluation.baselines import Unavailable

TOLERANCE = 0.04
OCTAVES = (1.0, 2.0, 0.5)
OTHER_LEVELS = (1.5, 2.0 / 3.0, 4.0 / 3.0, 0.75)


def _within(t: float, r: float, k: float) -> bool:
    return abs(t - k * r) <= TOLERANCE * k * r


def agrees(t: float, r: float, *, strict: bool = False) -> bool:
    """The octave-tolerant rule of the module docstring (``strict``: the same octave only)."""
    if not (t > 0 and r > 0):
        return False
    return any(_within(t, r, k) for k in ((1.0,) if strict else OCTAVES))


def other_level(t: float, r: float) -> bool:
    """``t`` sits at a 3:2, 2:3, 4:3 or 3:4 ratio of ``r`` (and does not agree)."""
    return t > 0 and r > 0 and not agrees(t, r) and any(_within(t, r, k) for k in OTHER_LEVELS)


_ONE_FILE = """
import json, sys
import essentia, essentia.standard as es
essentia.log.infoActive = False
essentia.log.warningActive = False
import os
if sys.argv[1].lower().endswith(".opus"):  # Essentia's own FFmpeg lacks Opus: libsndfile decodes, soxr resamples
    import numpy as np, soundfile as sf, soxr
    y, sr = sf.read(sys.argv[1], dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    audio = np.ascontiguousarray(soxr.resample(y, sr, 44100) if sr != 44100 else y, dtype=np.float32)
else:
    audio = es.MonoLoader(filename=sys.argv[1], sampleRate=44100)()
out = {m: float(es.RhythmExtractor2013(method=m)(audio)[0]) for m in ("multifeature", "degara")}
print(json.dumps(out), flush=True)
os._exit(0)  # no interpreter teardown: the wheel has crashed there
"""


def _one_file(path: str, timeout_s: float = 900.0) -> dict:
    """Both estimates of one file, in a subprocess; an ``error`` entry when it crashes or fails."""
    try:
        done = subprocess.run([sys.executable, "-c", _ONE_FILE, path], capture_output=True, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    if done.returncode != 0:
        return {"error": f"exit status {done.returncode}: {done.stderr.strip()[-200:]}"}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"no result: {done.stdout.strip()[-200:]}"}


def essentia_version() -> str:
    """The installed Essentia's version; :class:`Unavailable` (saying how to install it) without it."""
    try:
        import essentia
    except Exception as exc:  # noqa: BLE001
        raise Unavailable(f"essentia cannot be imported ({type(exc).__name__}: {exc}); pip install 'trackprint[bench]'")
    return essentia.__version__


def essentia_tempi(paths: list[str], corpus_dir: Path, log=print, jobs: int = 1) -> tuple[dict[str, dict], str]:
    """({path: {"multifeature": bpm, "degara": bpm}}, essentia version); :class:`Unavailable` without it."""
    version = essentia_version()
    cache_file = Path(corpus_dir) / "cache" / f"essentia-tempo-{version}.json"
    cache = filecache.load(cache_file)
    todo = [p for p in paths if p in filecache.stale(cache, [p]) or "multifeature" not in cache[p]]
    if todo:
        log(f"essentia: tempo of {len(todo)} of {len(paths)} files (multifeature and degara), {jobs} at a time")
    lock = threading.Lock()

    def one(path: str) -> None:
        entry = {"stamp": filecache.stamp(path), **_one_file(path)}
        with lock:
            cache[path] = entry
            if "error" in entry:
                log(f"essentia: {path}: {entry['error']}")
            filecache.save(cache_file, cache)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(one, todo))
    return {p: cache[p] for p in paths if "multifeature" in cache.get(p, {})}, version


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p: P(a split of the b + c discordant tracks at least this uneven | no difference)
    = min(1, 2 sum_{k <= min(b, c)} C(b + c, k) / 2^(b + c)); 1 without discordant tracks."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)


def agreement(trackprint_bpm: dict[str, float], references: dict[str, dict]) -> dict:
    """Counts over the tracks that have both a trackprint value and Essentia's estimates: each estimator's
    agreements, the tracks only one of them gets right and the exact McNemar p of that difference."""
    common = sorted(set(trackprint_bpm) & set(references))
    rows = [(trackprint_bpm[p], references[p]["degara"], references[p]["multifeature"]) for p in common]
    ours = [agrees(t, r) for t, _d, r in rows]
    theirs = [agrees(d, r) for _t, d, r in rows]
    only_ours = sum(a and not b for a, b in zip(ours, theirs))
    only_degara = sum(b and not a for a, b in zip(ours, theirs))

    def counts(index: int, agree: list[bool]) -> dict:
        return {"agree": sum(agree),
                "agree_strict": sum(agrees(row[index], row[2], strict=True) for row in rows),
                "other_level": sum(other_level(row[index], row[2]) for row in rows),
                "no_tempo": sum(1 for row in rows if not row[index] > 0)}

    return {
        "tracks": len(rows),
        "rule": f"within {TOLERANCE:.0%} of Essentia multifeature's tempo, its double or its half; 0 never agrees",
        "trackprint": counts(0, ours),
        "essentia_degara": counts(1, theirs),
        "only_trackprint": only_ours,
        "only_degara": only_degara,
        "mcnemar_p": round(mcnemar_p(only_ours, only_degara), 4),
    }
