"""``trackprint eval-tempo``: tempo agreement on held-out music, next to Essentia degara on the same tracks.

``eval-similarity``'s tempo agreement runs on its own corpus, the one the tempo estimator was chosen on, so
it says the estimator reaches the bar there, not how it generalises. This runs the same measure
(:mod:`tempo_agreement`: Essentia multifeature as the reference, octave-tolerant within 4%, degara as the
second estimator) on sets of music the estimator never saw, built the same way as the corpus
(:func:`corpus.build`) from other Debian game-music packages (:data:`HELD_OUT`): every file of 30 s to
7 min under a folder named like music (not sound effects or ambiences).

Per set and pooled, it reports both estimators' agreements, the tracks only one of them gets right, and
the exact McNemar p-value of that difference (:func:`tempo_agreement.agreement`): with a
hundred tracks a difference of two or three is well inside chance, and the report says so.
"""

from __future__ import annotations

import argparse
import json
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
    "held-out-3": {
        "supertuxkart-data": ("supertuxkart", "usr/share/games/supertuxkart"),
        "berusky2-data": ("berusky2", "usr/share/games/berusky2"),
        "hyperrogue-music": ("hyperrogue", "usr/share/hyperrogue"),
        "warmux-data": ("warmux", "usr/share/games/warmux"),
        "redeclipse-data": ("redeclipse", "usr/share/games/redeclipse"),
        "amoebax-data": ("amoebax", "usr/share/games/amoebax"),
        "enigma-data": ("enigma", "usr/share/games/enigma"),
        "singularity-music": ("singularity", "usr/share/games/singularity"),
        "gigalomania-data": ("gigalomania", "usr/share/gigalomania"),
        "scorched3d-data": ("scorched3d", "usr/share/games/scorched3d"),
    },
}


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
    try:  # before any download or analysis: without the reference there is nothing to measure
        tempo_agreement.essentia_version()
    except Unavailable as exc:
        _log(f"eval-tempo: {exc}")
        return 1
    results: dict[str, dict] = {}
    pooled_bpm: dict[str, float] = {}
    pooled_refs: dict[str, dict] = {}
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
        refs, essentia_version = tempo_agreement.essentia_tempi(paths, set_dir, log=_log, jobs=args.jobs)
        bpm = {p: v[DIMENSIONS.index("tempo_bpm")] for p, v in values.items()}
        results[name] = {**tempo_agreement.agreement(bpm, refs), "packages": sorted(HELD_OUT[name]),
                         "hours": round(sum(t.duration_s for t in tracks) / 3600, 2),
                         "trackprint_failed": len(errors), "essentia_failed": len(paths) - len(refs)}
        pooled_bpm.update(bpm)
        pooled_refs.update(refs)
    results["pooled"] = tempo_agreement.agreement(pooled_bpm, pooled_refs)
    print(f"tempo agreement with Essentia {essentia_version} multifeature (within 4%, its double or half), "
          f"trackprint fingerprint v{FINGERPRINT_VERSION} ({engine} engine) against Essentia degara, held-out music")
    print(f"{'set':<12} {'tracks':>6}  trackprint{'':<34}  degara{'':<14}  only ours / only degara")
    for name, c in results.items():
        print(_line(name, c))
    if args.out:
        Path(args.out).write_text(json.dumps({"fingerprint_version": FINGERPRINT_VERSION, "engine": engine,
                                              "essentia": essentia_version, "sets": results}, indent=1))
    return 0
