"""``trackprint eval-tempo``: tempo agreement on held-out music, next to Essentia degara on the same tracks.

``eval-similarity``'s tempo agreement runs on its own corpus, the one the tempo estimator was chosen on, so
it says the estimator reaches the bar there, not how it generalises. This runs the same measure
(:mod:`tempo_agreement`: Essentia multifeature as the reference, octave-tolerant within 4%, degara as the
second estimator) on sets of music the estimator never saw, built the same way as the corpus
(:func:`corpus.build`) from other Debian game-music packages (:data:`HELD_OUT`): every file of 30 s to
7 min under a folder named like music (not sound effects or ambiences).

Per set and pooled, it reports both estimators' agreements, the tracks only one of them gets right, and
the exact McNemar p-value of that difference (two-sided binomial test on those discordant tracks): with a
hundred tracks a difference of two or three is well inside chance, and the report says so.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from trackprint.benchmarks.evaluation import corpus, descriptors, tempo_agreement
from trackprint.benchmarks.evaluation.baselines import Unavailable
from trackprint.fingerprint import DIMENSIONS, FINGERPRINT_VERSION

MIN_DURATION_S = 30.0
MAX_DURATION_S = 420.0

# set -> package -> (label, the folder of the extracted package searched for music)
HELD_OUT: dict[str, dict[str, tuple[str, str]]] = {
    "held-out-1": {
        "naev-data": ("naev", "usr/share/naev"),
        "supertux-data": ("supertux", "usr/share/games/supertux2"),
        "asc-music": ("asc", "usr/share/games/asc"),
        "lincity-ng-data": ("lincity-ng", "usr/share/games/lincity-ng"),
    },
    "held-out-2": {
        "widelands-data": ("widelands", "usr/share/games/widelands"),
        "hedgewars-data": ("hedgewars", "usr/share/games/hedgewars"),
        "freedroidrpg-data": ("freedroidrpg", "usr/share/freedroidrpg"),
        "flare-game": ("flare", "usr/share/games/flare"),
        "openclonk-data": ("openclonk", "usr/share/games/openclonk"),
        "megaglest-data": ("megaglest", "usr/share/games/megaglest"),
        "xmoto-data": ("xmoto", "usr/share/games/xmoto"),
    },
}


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p: P(a split of the b + c discordant tracks at least this uneven | no difference)
    = min(1, 2 sum_{k <= min(b, c)} C(b + c, k) / 2^(b + c)); 1 without discordant tracks."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)


def compare(rows: list[tuple[float, float, float]]) -> dict:
    """(trackprint, degara, reference) per track -> both estimators' counts and the paired difference."""
    ours = [tempo_agreement.agrees(t, r) for t, _d, r in rows]
    theirs = [tempo_agreement.agrees(d, r) for _t, d, r in rows]
    only_ours = sum(a and not b for a, b in zip(ours, theirs))
    only_degara = sum(b and not a for a, b in zip(ours, theirs))

    def counts(index: int, agree: list[bool]) -> dict:
        return {"agree": sum(agree),
                "agree_strict": sum(tempo_agreement.agrees(row[index], row[2], strict=True) for row in rows),
                "other_level": sum(tempo_agreement.other_level(row[index], row[2]) for row in rows),
                "no_tempo": sum(1 for row in rows if not row[index] > 0)}

    return {"tracks": len(rows), "trackprint": counts(0, ours), "essentia_degara": counts(1, theirs),
            "only_trackprint": only_ours, "only_degara": only_degara,
            "mcnemar_p": round(mcnemar_p(only_ours, only_degara), 4)}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _line(name: str, c: dict) -> str:
    t, d = c["trackprint"], c["essentia_degara"]
    return (f"{name:<12} {c['tracks']:>6}  {t['agree']:>4} ({t['agree_strict']} same octave, {t['other_level']} 3:2-type, "
            f"{t['no_tempo']} none)  {d['agree']:>4} ({d['agree_strict']}, {d['other_level']}, {d['no_tempo']})  "
            f"{c['only_trackprint']:>3} / {c['only_degara']:<3} p = {c['mcnemar_p']:.2f}")


def run(args: argparse.Namespace) -> int:
    root = Path(args.dir).resolve()
    engine = args.engine if args.engine != "auto" else descriptors.default_engine()
    names = [s for s in args.sets.split(",") if s] or list(HELD_OUT)
    unknown = [s for s in names if s not in HELD_OUT]
    if unknown:
        _log(f"eval-tempo: no such set: {', '.join(unknown)} (sets: {', '.join(HELD_OUT)})")
        return 2
    results: dict[str, dict] = {}
    pooled: list[tuple[float, float, float]] = []
    essentia_version = None
    for name in names:
        set_dir = root / name
        tracks = corpus.build(set_dir, packages=HELD_OUT[name], log=_log, min_duration_s=MIN_DURATION_S,
                              max_duration_s=MAX_DURATION_S, min_per_label=1, music_folders_only=True)
        if not tracks:
            _log(f"eval-tempo: {name}: no track (no package could be downloaded?)")
            return 1
        paths = [t.path for t in tracks]
        values, errors, _info = descriptors.trackprint_vectors(paths, set_dir, engine, jobs=args.jobs, log=_log)
        try:
            refs, essentia_version = tempo_agreement.essentia_tempi(paths, set_dir, log=_log, jobs=args.jobs)
        except Unavailable as exc:
            _log(f"eval-tempo: {exc}")
            return 1
        bpm_index = DIMENSIONS.index("tempo_bpm")
        rows = [(values[p][bpm_index], refs[p]["degara"], refs[p]["multifeature"]) for p in paths
                if p in values and p in refs]
        results[name] = {**compare(rows), "packages": sorted(HELD_OUT[name]),
                         "hours": round(sum(t.duration_s for t in tracks) / 3600, 2),
                         "trackprint_failed": len(errors), "essentia_failed": len(paths) - len(refs)}
        pooled += rows
    results["pooled"] = compare(pooled)
    print(f"tempo agreement with Essentia {essentia_version} multifeature (within 4%, its double or half), "
          f"trackprint fingerprint v{FINGERPRINT_VERSION} ({engine} engine) against Essentia degara, held-out music")
    print(f"{'set':<12} {'tracks':>6}  trackprint{'':<34}  degara{'':<14}  only ours / only degara")
    for name, c in results.items():
        print(_line(name, c))
    if args.out:
        Path(args.out).write_text(json.dumps({"fingerprint_version": FINGERPRINT_VERSION, "engine": engine,
                                              "essentia": essentia_version, "sets": results}, indent=1))
    return 0
