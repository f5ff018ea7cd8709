"""Printing the evaluation's result (a dict, the same one ``--json`` prints)."""

from __future__ import annotations


def _ci(score: dict) -> str:
    return f"{score['mean']:.3f} [{score['lo']:.3f}, {score['hi']:.3f}]"


def _diff(score: dict) -> str:
    return f"{score['mean']:+.3f} [{score['lo']:+.3f}, {score['hi']:+.3f}]"


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
    lines.append("")
    lines.append("timing (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result["timing_s"].items()))
    return "\n".join(lines)
