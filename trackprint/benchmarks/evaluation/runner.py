"""``trackprint eval-similarity``: the whole run (corpus, descriptors, scores, tempo agreement, report)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from trackprint.benchmarks.evaluation import baselines, codecs, corpus, descriptors, metrics, report, tempo_agreement
from trackprint.fingerprint import DIMENSIONS
from trackprint.similarity import DEFAULT, VARIANTS, distance_matrix


def _commit() -> str:
    try:
        root = Path(__file__).resolve().parents[3]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+changes" if dirty else "") if out.returncode == 0 else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def _by_label(scores: metrics.PerQuery, labels: np.ndarray) -> dict[str, float]:
    """mAP over the queries of each label."""
    of = labels[scores.queries]
    return {str(label): round(float(scores.ap[of == label].mean()), 4) for label in sorted(set(of.tolist()))}


def compare_runs(earlier: dict, ours: dict[str, float], name: str, info: dict, *, rounds: int) -> dict:
    """The paired mAP difference of ``ours`` (query path -> average precision, this run's ``name``) against
    each trackprint score of an ``earlier`` run's ``per_query_ap``, on the queries both have (e.g. version 2
    with its default against version 1 with version 1's distance)."""
    theirs_tp = earlier["trackprint"]
    ours_label = f"{name} (fingerprint v{info['fingerprint_version']})"
    pairs = {}
    for theirs_name, theirs in earlier["per_query_ap"].items():
        queries = sorted(set(ours) & set(theirs))
        if not queries:
            continue
        a = np.array([theirs[q] for q in queries])
        b = np.array([ours[q] for q in queries])
        label = f"{ours_label} - {theirs_name} (fingerprint v{theirs_tp['fingerprint_version']})"
        pairs[label] = {"queries": len(queries), "map_ours": round(float(b.mean()), 4),
                        "map_theirs": round(float(a.mean()), 4),
                        "map": metrics.paired_difference_ci(a, b, rounds=rounds)}
    if not pairs:
        raise ValueError("no query in common with this run")
    return {"commit": earlier.get("commit", "?"), "engine_hash": theirs_tp.get("engine_hash"),
            "fingerprint_version": theirs_tp["fingerprint_version"], "pairs": pairs}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    timing: dict[str, float] = {}
    started = time.monotonic()
    corpus_dir = Path(args.corpus).resolve()
    tracks = corpus.build(corpus_dir, log=_log)
    timing["corpus"] = time.monotonic() - started
    if not tracks:
        _log("eval-similarity: the corpus is empty (no package could be downloaded?)")
        return 1
    paths = [t.path for t in tracks]
    label_of = {t.path: t.label for t in tracks}
    duration_of = {t.path: t.duration_s for t in tracks}

    # -- descriptors ------------------------------------------------------------------------------------
    engine = args.engine if args.engine != "auto" else descriptors.default_engine()
    t0 = time.monotonic()
    try:
        tp_values, tp_errors, tp_info = descriptors.trackprint_vectors(paths, corpus_dir, engine, jobs=args.jobs,
                                                                       log=_log)
    except RuntimeError as exc:
        _log(f"eval-similarity: {exc}")
        return 1
    timing["trackprint analysis"] = time.monotonic() - t0
    vectors: dict[str, dict[str, list[float]]] = {}
    skipped: dict[str, str] = {}
    errors: dict[str, dict[str, str]] = {"trackprint": tp_errors}
    wanted = [b for b in args.baselines.split(",") if b] if args.baselines else []
    for name in wanted:
        if name not in baselines.BASELINES:
            _log(f"eval-similarity: unknown baseline {name!r} (known: {', '.join(baselines.BASELINES)})")
            return 2
        compute, _distance, _desc = baselines.BASELINES[name]
        t0 = time.monotonic()
        try:
            values, errs, _info = compute(paths, corpus_dir, log=_log)
        except baselines.Unavailable as exc:
            skipped[name] = str(exc)
            _log(f"eval-similarity: baseline {name} not run: {exc}")
            continue
        timing[f"{name} analysis"] = time.monotonic() - t0
        vectors[name] = values
        errors[name] = errs
        if errs:
            _log(f"eval-similarity: {name} could not analyse {len(errs)} files (scored without them)")

    # every descriptor is scored on the same tracks: those all of them analysed
    common = [p for p in paths if p in tp_values and all(p in v for v in vectors.values())]
    left_out = {p: "; ".join(f"{name}: {errs[p]}" for name, errs in errors.items() if p in errs)
                for p in paths if p not in common}
    labels = np.array([label_of[p] for p in common])
    raw = np.array([tp_values[p] for p in common])

    # -- scores -----------------------------------------------------------------------------------------
    t0 = time.monotonic()
    kw = {"rounds": args.rounds}
    per_query: dict[str, metrics.PerQuery] = {}
    rows: dict[str, dict] = {}
    matrices: dict[str, np.ndarray] = {}
    variants = list(VARIANTS.values())
    for spec in variants:
        name = f"trackprint {spec.name}"
        matrices[name] = distance_matrix(raw, spec)
        per_query[name] = metrics.per_query(matrices[name], labels)
        rows[name] = {"kind": "trackprint", "variant": spec.name, "description": spec.description,
                      "default": spec.name == DEFAULT.name, "scores": metrics.summary(per_query[name], **kw)}
        rows[name]["map_by_label"] = _by_label(per_query[name], labels)
    for name, values in vectors.items():
        _compute, distance, desc = baselines.BASELINES[name]
        x = np.array([values[p] for p in common])
        matrices[name] = d = (distance or metrics.pairwise_euclidean)(x)
        per_query[name] = metrics.per_query(d, labels)
        rows[name] = {"kind": "baseline", "description": desc, "scores": metrics.summary(per_query[name], **kw),
                      "map_by_label": _by_label(per_query[name], labels)}
    default = f"trackprint {DEFAULT.name}"
    paired = {}
    pairs = [(f"trackprint v1", default)] + [(name, default) for name in vectors]
    pairs += [("trackprint v1", f"trackprint {s.name}") for s in variants if s.name not in ("v1", DEFAULT.name)]
    pairs += [(f"trackprint {s.name}", default) for s in variants if s.name not in ("v1", DEFAULT.name)]
    for a, b in pairs:
        paired[f"{b} - {a}"] = {m: metrics.paired_difference_ci(getattr(per_query[a], attr), getattr(per_query[b], attr), **kw)
                                for m, attr in (("map", "ap"), ("nn1", "nn1"), ("nn5", "nn5"))}
    # the same scores on the tracks of the corpus's most common codec (file extension) only: a package
    # encoded differently from the others can be told apart by codec traces, which is not musical likeness
    extensions = np.array([Path(p).suffix.lower() for p in common])
    majority = Counter(extensions.tolist()).most_common(1)[0][0]
    sub = np.flatnonzero(extensions == majority)
    single_codec = {"extension": majority, "tracks": int(len(sub)),
                    "labels": dict(sorted(Counter(labels[sub].tolist()).items())), "scores": {}, "paired": {}}
    sub_pq = {}
    for name, d in matrices.items():
        sub_pq[name] = metrics.per_query(d[np.ix_(sub, sub)], labels[sub])
        single_codec["scores"][name] = metrics.summary(sub_pq[name], **kw)
    for a, b in [("trackprint v1", default)] + [(name, default) for name in vectors]:
        single_codec["paired"][f"{b} - {a}"] = {
            m: metrics.paired_difference_ci(getattr(sub_pq[a], attr), getattr(sub_pq[b], attr), **kw)
            for m, attr in (("map", "ap"), ("nn1", "nn1"), ("nn5", "nn5"))}
    ablation = {}
    if not args.no_ablation:
        base = rows[default]["scores"]["map"]["mean"]
        for d in (DIMENSIONS[i] for i in DEFAULT.columns):
            spec = dataclasses.replace(DEFAULT, name=f"without {d}", drop=DEFAULT.drop + (d,))
            ablation[d] = round(float(np.mean(metrics.per_query(distance_matrix(raw, spec), labels).ap)) - base, 4)
    timing["scoring"] = time.monotonic() - t0

    # -- codec identity and sensitivity -----------------------------------------------------------------
    codec_result = None
    if not getattr(args, "no_codecs", False):
        t0 = time.monotonic()
        kinds = [k for k in (getattr(args, "codec_variants", "") or "").split(",") if k] or None
        try:
            codec_result = codecs.evaluate(tracks, tp_values, corpus_dir, engine,
                                           n_tracks=getattr(args, "codec_tracks", codecs.DEFAULT_TRACKS),
                                           kinds=kinds, jobs=args.jobs, log=_log)
        except ValueError as exc:
            _log(f"eval-similarity: {exc}")
            return 2
        except RuntimeError as exc:
            _log(f"eval-similarity: codecs: {exc}")
            return 1
        timing["codecs"] = time.monotonic() - t0

    # -- tempo ------------------------------------------------------------------------------------------
    tempo = None
    if not args.no_tempo:
        t0 = time.monotonic()
        chosen = [p for p in paths if p in tp_values]
        if args.tempo_limit and len(chosen) > args.tempo_limit:  # spread over the corpus, deterministic
            step = len(chosen) / args.tempo_limit
            chosen = [chosen[int(i * step)] for i in range(args.tempo_limit)]
        try:
            refs, version = tempo_agreement.essentia_tempi(chosen, corpus_dir, log=_log, jobs=args.jobs)
            bpm = {p: tp_values[p][DIMENSIONS.index("tempo_bpm")] for p in chosen}
            tempo = tempo_agreement.agreement(bpm, refs)
            tempo["essentia"] = version
            tempo["essentia_failed"] = len(chosen) - len(refs)
            tempo["per_track"] = {p: {"trackprint": bpm[p], **{k: v for k, v in refs[p].items() if k != "stamp"}}
                                  for p in sorted(refs)}
        except baselines.Unavailable as exc:
            tempo = {"skipped": str(exc)}
            skipped["tempo agreement (essentia)"] = str(exc)
        timing["tempo agreement"] = time.monotonic() - t0
    timing["total"] = time.monotonic() - started

    per_query_ap = {name: {common[q]: round(float(ap), 4) for q, ap in zip(pq.queries, pq.ap)}
                    for name, pq in per_query.items() if name in (default, "trackprint v1")}
    against = None
    if getattr(args, "against", None):
        try:
            against = compare_runs(json.loads(Path(args.against).read_text()), per_query_ap[default], default,
                                   tp_info, rounds=args.rounds)
            against["file"] = str(args.against)
        except (OSError, ValueError, KeyError) as exc:
            _log(f"eval-similarity: --against {args.against}: {exc}")
            return 2

    result = {
        "schema": "trackprint.eval-similarity/1",
        "commit": _commit(),
        "corpus": {"dir": str(corpus_dir), "tracks": len(common), "hours": sum(duration_of[p] for p in common) / 3600,
                   "labels": dict(sorted(Counter(labels.tolist()).items())), "left_out": left_out,
                   "label_rule": "the Debian package the track comes from"},
        "trackprint": tp_info,
        "bootstrap_rounds": args.rounds,
        "default_distance": DEFAULT.name,
        "descriptors": rows,
        "chance": metrics.chance(labels),
        "paired": paired,
        "single_codec": single_codec,
        "dimension_ablation": ablation,
        "skipped": skipped,
        "tempo": tempo,
        "codecs": codec_result,
        "timing_s": {k: round(v, 2) for k, v in timing.items()},
        "against": against,
        "per_query_ap": per_query_ap,
    }
    print(report.text(result), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
        _log(f"eval-similarity: the figures as JSON in {args.out}")
    if args.json:
        print(json.dumps(result))
    return 0
