"""The baselines computed in the same run, on the same files: MFCC statistics and bliss-audio.

- **mfcc**: librosa, the file decoded to 22,050 Hz mono (``librosa.load``), 20 MFCCs (librosa's defaults:
  2048-sample frames, hop 512, 128 mel bands), each coefficient's mean and standard deviation over the
  track (40 numbers); each of the 40 standardised over the corpus (mean 0, standard deviation 1), then
  Euclidean distance. The classic "timbre summary" baseline.
- **bliss**: bliss-audio's 20-number analysis (``bliss_audio.Song(path).analysis``, its own FFmpeg
  decoding), Euclidean distance as bliss itself uses; when the module is importable (``pip install
  'trackprint[bench]'``).

A baseline that cannot run (module missing, import error) is reported with the reason, never fatal; a
file a baseline cannot analyse is counted and the baseline is scored on the files it did analyse (the
report says how many), which the paired comparisons take into account by using only common queries.
Results are cached per file (size and mtime) and tool version in ``CORPUS/cache/<name>-<version>.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from trackprint.benchmarks.evaluation import filecache


class Unavailable(Exception):
    """A baseline that cannot run here (the reason is the message)."""


def _cached(name: str, version: str, paths: list[str], corpus_dir: Path, compute: Callable[[str], list[float]],
            log) -> tuple[dict[str, list[float]], dict[str, str], int]:
    cache_file = Path(corpus_dir) / "cache" / f"{name}-{version}.json"
    cache = filecache.load(cache_file)
    todo = filecache.stale(cache, paths)
    if todo:
        log(f"{name}: analysing {len(todo)} of {len(paths)} files")
    for i, path in enumerate(todo):
        try:
            cache[path] = {"stamp": filecache.stamp(path), "values": [float(x) for x in compute(path)]}
        except BaseException as exc:  # noqa: BLE001 - bliss panics (pyo3 PanicException) on some files
            if isinstance(exc, KeyboardInterrupt):
                raise
            cache[path] = {"stamp": filecache.stamp(path), "error": f"{type(exc).__name__}: {exc}"[:300]}
        if (i + 1) % 20 == 0 or i + 1 == len(todo):
            filecache.save(cache_file, cache)
    values = {p: cache[p]["values"] for p in paths if "values" in cache.get(p, {})}
    errors = {p: cache[p].get("error", "no result") for p in paths if p not in values}
    return values, errors, len(todo)


def mfcc_vectors(paths: list[str], corpus_dir: Path, log=print):
    """({path: 40 numbers}, {path: error}, info); raises :class:`Unavailable` without librosa."""
    try:
        import librosa
    except Exception as exc:  # noqa: BLE001
        raise Unavailable(f"librosa cannot be imported ({type(exc).__name__}: {exc}); pip install 'trackprint[test]'")

    def compute(path: str) -> list[float]:
        y, sr = librosa.load(path, sr=22050, mono=True)
        m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
        return list(np.concatenate([m.mean(axis=1), m.std(axis=1)]))

    values, errors, analysed = _cached("mfcc", f"librosa{librosa.__version__}", paths, corpus_dir, compute, log)
    return values, errors, {"tool": f"librosa {librosa.__version__}", "analysed_now": analysed}


def bliss_vectors(paths: list[str], corpus_dir: Path, log=print):
    """({path: 20 numbers}, {path: error}, info); raises :class:`Unavailable` without bliss-audio."""
    try:
        import bliss_audio
    except Exception as exc:  # noqa: BLE001
        raise Unavailable(f"bliss-audio cannot be imported ({type(exc).__name__}: {exc}); "
                          "pip install 'trackprint[bench]'")
    from importlib.metadata import PackageNotFoundError, version

    try:
        tool = version("bliss-audio")
    except PackageNotFoundError:
        tool = "unknown"

    def compute(path: str) -> list[float]:
        return list(bliss_audio.Song(path).analysis)

    values, errors, analysed = _cached("bliss", tool, paths, corpus_dir, compute, log)
    return values, errors, {"tool": f"bliss-audio {tool}", "analysed_now": analysed}


def standardised_euclidean(x: np.ndarray) -> np.ndarray:
    """Pairwise Euclidean distances after standardising each column over the rows (mean 0, sd 1)."""
    from trackprint.benchmarks.evaluation.metrics import pairwise_euclidean

    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=0)
    return pairwise_euclidean((x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0))


BASELINES = {
    "mfcc": (mfcc_vectors, standardised_euclidean, "20 MFCC mean+std (librosa, 22,050 Hz mono), standardised, Euclidean"),
    "bliss": (bliss_vectors, None, "bliss-audio analysis (20 numbers), Euclidean"),
}
