"""Printing the evaluation's result (a dict, the same one ``--json`` prints)."""

from __future__ import annotations

from pathlib import Path


def _ci(score: dict) -> str:
    return f"{score['mean']:.3f} [{score['lo']:.3f}, {score['hi']:.3f}]"


def _diff(score: dict) -> str:
    return f"{score['mean']:+.3f} [{score['lo']:+.3f}, {score['hi']:+.3f}]"


def _codecs(c: dict | None, lines: list[str]) -> None:
    lines.append("")
    if c is None:
        lines.append("codecs: not run")
        return
    ident = c["identity"]
    kinds = list(c["kinds"])
    lines.append(f"codecs: {len(c['tracks'])} tracks x {len(kinds)} variants ({', '.join(kinds)}), fingerprinted by "
                 f"the {c['trackprint']['engine']} engine; {len(c['errors'])} variants failed")
    for path, why in list(c["errors"].items())[:5]:
        lines.append(f"    {path}: {why}")
    top1 = "n/a" if ident["top1"] is None else f"{100 * ident['top1']:.1f}%"
    lines.append(f"codec identity (nearest of the {c['originals']} originals is its own, {ident['distance']}): "
                 f"{ident['hits']}/{ident['cases']} = {top1}; by kind: "
                 + ", ".join(f"{k} {v['hits']}/{v['cases']}" for k, v in ident["by_kind"].items()))
    if c.get("identity_by_distance"):
        lines.append("  top-1 by distance: "
                     + ", ".join(f"{k} {100 * v:.1f}%" for k, v in c["identity_by_distance"].items()))
    for m in ident["misses"]:
        lines.append(f"  miss: {Path(m['track']).name} {m['kind']} -> {Path(m['matched']).name} "
                     f"(d {m['d_matched']:.3f}; own original d {m['d_own']:.3f}, rank {m['own_rank']})")
    sens = c["sensitivity"]
    moves = sens["median_moves"]
    shown = [k for k in kinds if k in moves]
    lines.append(f"codec sensitivity: median |variant - original| / robust spread; * above {sens['threshold']} "
                 f"under {', '.join(sens['target_kinds'])}; (-) not in the default distance")
    lines.append(f"  {'dimension':<26}" + "".join(f"{k[:9]:>10}" for k in shown))
    flagged = {(f["kind"], f["dimension"]) for f in sens["flagged"]}
    for d in sens["spread"]:
        name = d + (" (-)" if d in sens["not_in_default"] else "")
        lines.append(f"  {name:<26}" + "".join(
            f"{moves[k][d]:>9.3f}{'*' if (k, d) in flagged else ' '}" for k in shown))
    w = sens.get("worst_target")
    if w:
        verdict = "met" if sens["acceptance_met"] else f"NOT met ({len(sens['flagged'])} above)"
        lines.append(f"  largest under {', '.join(sens['target_kinds'])}: {w['dimension']} {w['value']:.3f} "
                     f"({w['kind']}); none above {sens['threshold']}: {verdict}")
    if c.get("tempo_moved"):
        lines.append("  tempo_bpm left the original's (4%; strictly / octave-tolerantly): " + ", ".join(
            f"{k} {v['strict']}/{v['octave']} of {v['tracks']}" for k, v in c["tempo_moved"].items()))


def text(result: dict) -> str:
    lines = []
    c = result["corpus"]
    lines.append(f"corpus {c['dir']}: {c['tracks']} tracks scored ({c['hours']:.1f} h), labels "
                 + ", ".join(f"{k} {v}" for k, v in c["labels"].items()))
    if c.get("left_out"):
        lines.append(f"  left out (a descriptor could not analyse them): {len(c['left_out'])}")
        for path, why in list(c["left_out"].items())[:10]:
            lines.append(f"    {path}: {why}")
    tp = result["trackprint"]
    lines.append(f"trackprint: fingerprint version {tp['fingerprint_version']}, {tp['engine']} engine "
                 f"(hash {tp['engine_hash']}), commit {result.get('commit', '?')}")
    lines.append("")
    lines.append(f"leave-one-out retrieval, label = package; mean and 95% bootstrap interval "
                 f"({result['bootstrap_rounds']} rounds over queries)")
    lines.append(f"{'descriptor':<42} {'mAP':<22} {'1-NN':<22} {'5-NN':<22}")
    for name, row in result["descriptors"].items():
        s = row["scores"]
        mark = " (default)" if row.get("default") else ""
        lines.append(f"{(name + mark):<42} {_ci(s['map']):<22} {_ci(s['nn1']):<22} {_ci(s['nn5']):<22}")
    ch = result["chance"]
    lines.append(f"{'chance (random ranking)':<42} {ch['map']:<22.3f} {ch['nn1']:<22.3f} {ch['nn5']:<22.3f}")
    for name, why in result["skipped"].items():
        lines.append(f"{name:<42} NOT RUN: {why}")
    labels = list(result["corpus"]["labels"])
    lines.append("")
    lines.append("mAP by the query's label:")
    lines.append(f"{'descriptor':<42} " + " ".join(f"{label[:12]:>12}" for label in labels))
    for name, row in result["descriptors"].items():
        by = row.get("map_by_label", {})
        lines.append(f"{name:<42} " + " ".join(f"{by.get(label, float('nan')):>12.3f}" for label in labels))
    lines.append("")
    lines.append("paired differences (same queries resampled for both), mean and 95% interval:")
    for name, row in result["paired"].items():
        lines.append(f"  {name:<44} mAP {_diff(row['map'])}  1-NN {_diff(row['nn1'])}  5-NN {_diff(row['nn5'])}")
    ag = result.get("against")
    if ag:
        lines.append(f"against {ag.get('file', 'an earlier run')} (fingerprint version {ag['fingerprint_version']}, "
                     f"engine hash {ag['engine_hash']}, commit {ag['commit']}): paired mAP difference")
        for name, row in ag["pairs"].items():
            lines.append(f"  {name}: {row['map_ours']:.3f} - {row['map_theirs']:.3f} = {_diff(row['map'])} "
                         f"({row['queries']} queries)")
    sc = result.get("single_codec")
    if sc:
        lines.append("")
        lines.append(f"only the {sc['tracks']} {sc['extension']} files (labels "
                     + ", ".join(f"{k} {v}" for k, v in sc["labels"].items()) + "): mAP, 1-NN, 5-NN")
        for name, score in sc["scores"].items():
            lines.append(f"  {name:<40} {_ci(score['map']):<22} {_ci(score['nn1']):<22} {_ci(score['nn5']):<22}")
        for name, row in sc["paired"].items():
            lines.append(f"  {name:<44} mAP {_diff(row['map'])}  1-NN {_diff(row['nn1'])}  5-NN {_diff(row['nn5'])}")
    if result.get("dimension_ablation"):
        lines.append("")
        lines.append(f"the default distance without one dimension (mAP change; + = better without it):")
        items = sorted(result["dimension_ablation"].items(), key=lambda kv: -kv[1])
        lines.append("  " + ", ".join(f"{d} {v:+.3f}" for d, v in items))
    _codecs(result.get("codecs"), lines)
    t = result.get("tempo")
    lines.append("")
    if t is None:
        lines.append("tempo agreement: not run")
    elif "skipped" in t:
        lines.append(f"tempo agreement: NOT RUN: {t['skipped']}")
    else:
        lines.append(f"tempo agreement with Essentia {t['essentia']} RhythmExtractor2013 multifeature on {t['tracks']} "
                     f"tracks ({t['rule']}; Essentia failed on {t.get('essentia_failed', 0)} more):")
        for who in ("trackprint", "essentia_degara"):
            r = t[who]
            lines.append(f"  {who:<16} {r['agree']}/{t['tracks']} agree ({r['agree_strict']} at the same octave), "
                         f"{r['other_level']} at 3:2/2:3/4:3/3:4, {r['no_tempo']} without a tempo")
        lines.append(f"  only trackprint {t['only_trackprint']}, only degara {t['only_degara']} "
                     f"(exact McNemar p {t['mcnemar_p']:.2f})")
    lines.append("")
    lines.append("timing (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result["timing_s"].items()))
    return "\n".join(lines)
