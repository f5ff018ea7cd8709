#!/usr/bin/env python3
"""Does every dimension vary across real music?  ``scripts/check_variation.py DIR [--jobs N]``

Runs the Python engine on every audio file under DIR (FLAC, Ogg Vorbis, Opus,
WAV, MP3, M4A...), prints per dimension the min / median / max / stdev across
tracks, and flags a dimension that is

* CONSTANT: the same value (to 1e-9 of its range) on every track, or
* PINNED: at a bound of its range (trackprint.fingerprint.RANGES) on more than
  half of the tracks.

The design's requirement is "every dimension varies across real music (no
constant, no value pinned at a clip bound for most tracks)". Exit status 0
when nothing is flagged, 1 otherwise (2 for a usage error or too few tracks).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trackprint.fingerprint import DIMENSIONS, RANGES  # noqa: E402

AUDIO_SUFFIXES = {".flac", ".ogg", ".opus", ".oga", ".wav", ".mp3", ".m4a", ".aiff", ".aif"}
PINNED_SHARE = 0.5


def analyse(path: str):
    from trackprint.pyengine.engine import analyze_file
    from trackprint.errors import AnalysisError

    try:
        return path, analyze_file(path).fingerprint.as_dict(), None
    except AnalysisError as exc:
        return path, None, str(exc)


def flags_for(name: str, values: list[float]) -> list[str]:
    low, high = RANGES[name]
    tol = 1e-9 * (high - low)
    flags = []
    if max(values) - min(values) <= tol:
        flags.append("CONSTANT")
    for bound, label in ((low, "low"), (high, "high")):
        share = sum(abs(v - bound) <= tol for v in values) / len(values)
        if share > PINNED_SHARE:
            flags.append(f"PINNED at {label} bound {bound:g} on {share:.0%}")
    return flags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--min-tracks", type=int, default=2, help="refuse to judge with fewer tracks (default 2)")
    args = parser.parse_args(argv)

    paths = sorted(str(p) for p in Path(args.dir).rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if len(paths) < args.min_tracks:
        print(f"check_variation: {len(paths)} audio files under {args.dir}; need at least {args.min_tracks}",
              file=sys.stderr)
        return 2
    print(f"analysing {len(paths)} tracks under {args.dir} with {args.jobs} processes ...", file=sys.stderr)
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(analyse, paths, chunksize=1))
    fingerprints = [fp for _, fp, _ in results if fp is not None]
    for path, _, error in results:
        if error:
            print(f"FAILED {error}")
    if len(fingerprints) < args.min_tracks:
        print("check_variation: too few tracks analysed", file=sys.stderr)
        return 2

    print(f"{len(fingerprints)} tracks analysed ({len(results) - len(fingerprints)} failed)\n")
    header = f"{'dimension':<24} {'min':>10} {'median':>10} {'max':>10} {'stdev':>10}  {'range':<16} flags"
    print(header)
    print("-" * len(header))
    flagged = 0
    for name in DIMENSIONS:
        values = [fp[name] for fp in fingerprints]
        flags = flags_for(name, values)
        flagged += bool(flags)
        low, high = RANGES[name]
        print(f"{name:<24} {min(values):>10.4g} {statistics.median(values):>10.4g} {max(values):>10.4g} "
              f"{statistics.pstdev(values):>10.4g}  {f'[{low:g}, {high:g}]':<16} {'; '.join(flags) or 'ok'}")
    print()
    print(f"{flagged} of {len(DIMENSIONS)} dimensions flagged" if flagged else "every dimension varies; none pinned")
    return 1 if flagged or len(fingerprints) < len(results) else 0


if __name__ == "__main__":
    sys.exit(main())
