#!/usr/bin/env python3
"""How much each fingerprint dimension moves when a track is re-encoded, and whether
a re-encoded copy still finds its original.

    .venv/bin/python scripts/codec_sensitivity.py /tmp/corpus --work /tmp/v2_var

For every original (FLAC/WAV/... files in the folder) it makes, with ffmpeg, the
variants below (once; they are kept under ``--work``), fingerprints originals and
variants with the Python engine (the executable spec) and prints:

* per dimension and variant, the median over tracks of |x_variant - x_original| /
  spread, where spread = 1.4826 * MAD of that dimension across the originals
  (``trackprint.similarity.robust_scale``, with its fallbacks); ``*`` marks a
  value above 0.5 for MP3 V5, AAC 128k or Opus 96k (the version 2 target);
* tempo_bpm: how often the variant's tempo differs from the original's by more
  than 4 % (strictly; and octave-tolerantly: not within 4 % of 1x, 2x or 1/2x);
* codec identity top-1: the share of variants whose nearest neighbour among the
  originals (``trackprint.similarity.nearest``, the distance ``similar`` uses;
  ``--distance NAME`` adds a named variant of ``similarity.VARIANTS``) is their
  own original, per variant and overall.

Fingerprints are cached in ``--work``/fingerprints.json keyed by path, size,
mtime and the analysis code's hash, so a re-run after a definition change
re-analyses everything and an unchanged re-run is instant.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trackprint.fingerprint import DIMENSIONS  # noqa: E402
from trackprint import similarity  # noqa: E402
from trackprint.similarity import nearest, robust_scale  # noqa: E402

# name -> (file suffix, ffmpeg output arguments)
VARIANTS = {
    "mp3v5": ("mp3", ["-c:a", "libmp3lame", "-q:a", "5"]),
    "aac128": ("m4a", ["-c:a", "aac", "-b:a", "128k"]),
    "opus96": ("opus", ["-c:a", "libopus", "-b:a", "96k"]),
    "vorbisq3": ("ogg", ["-c:a", "libvorbis", "-q:a", "3"]),
    "r48k": ("flac", ["-ar", "48000"]),
    "mono": ("flac", ["-ac", "1"]),
    "m6db": ("flac", ["-af", "volume=-6dB", "-sample_fmt", "s16"]),
}
TARGET_VARIANTS = ("mp3v5", "aac128", "opus96")
TARGET_SPREADS = 0.5
AUDIO_SUFFIXES = {".flac", ".wav", ".aiff", ".aif", ".wv"}


def code_hash() -> str:
    h = hashlib.sha256()
    for path in sorted((ROOT / "pyengine" / "features").glob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def make_variant(original: Path, work: Path, name: str) -> Path:
    suffix, args = VARIANTS[name]
    out = work / original.stem / f"{name}.{suffix}"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".tmp-{out.name}")
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(original), *args, str(tmp)], check=True)
        tmp.rename(out)
    return out


def fingerprint(path: str) -> list[float]:
    from trackprint.pyengine.engine import analyze_file

    fp = analyze_file(path).fingerprint
    return [float(getattr(fp, d)) for d in DIMENSIONS]


def file_key(path: Path, code: str) -> str:
    st = path.stat()
    return f"{path}|{st.st_size}|{int(st.st_mtime)}|{code}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("originals", type=Path, help="folder of lossless originals")
    ap.add_argument("--work", type=Path, default=Path("/tmp/trackprint_codec_variants"))
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS))
    ap.add_argument("--limit", type=int, default=0, help="use only the first N originals")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--distance", action="append", default=[],
                    help="identity also under this named distance of trackprint.similarity.VARIANTS (repeatable); "
                         "the default distance is always reported")
    args = ap.parse_args()

    originals = sorted(p for p in args.originals.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
    if args.limit:
        originals = originals[: args.limit]
    variants = [v for v in args.variants.split(",") if v]
    args.work.mkdir(parents=True, exist_ok=True)
    files = {(o, None): o for o in originals}
    for o in originals:
        for v in variants:
            files[(o, v)] = make_variant(o, args.work, v)

    code = code_hash()
    cache_path = args.work / "fingerprints.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    keys = {k: file_key(p, code) for k, p in files.items()}
    todo = sorted({str(files[k]) for k in files if keys[k] not in cache})
    if todo:
        print(f"fingerprinting {len(todo)} files ({args.jobs} jobs)...", file=sys.stderr)
        with ProcessPoolExecutor(args.jobs) as pool:
            for path, values in zip(todo, pool.map(fingerprint, todo)):
                cache[file_key(Path(path), code)] = values
        cache_path.write_text(json.dumps(cache))

    base = np.array([cache[keys[(o, None)]] for o in originals])
    _, spread = robust_scale(base)
    figures: dict = {"tracks": len(originals), "spread": dict(zip(DIMENSIONS, spread.tolist())), "moves": {}, "identity": {}}
    print(f"{len(originals)} originals; median |delta| / spread per dimension (* = above {TARGET_SPREADS} for "
          f"{', '.join(TARGET_VARIANTS)})")
    print(f"{'dimension':24s}" + "".join(f"{v:>10s}" for v in variants))
    moved = {}
    for v in variants:
        var = np.array([cache[keys[(o, v)]] for o in originals])
        moved[v] = np.median(np.abs(var - base) / spread, axis=0)
        figures["moves"][v] = dict(zip(DIMENSIONS, moved[v].tolist()))
    worst = 0.0
    for j, d in enumerate(DIMENSIONS):
        cells = []
        for v in variants:
            flag = v in TARGET_VARIANTS and moved[v][j] > TARGET_SPREADS
            if v in TARGET_VARIANTS:
                worst = max(worst, moved[v][j])
            cells.append(f"{moved[v][j]:9.3f}{'*' if flag else ' '}")
        print(f"{d:24s}" + "".join(cells))
    print(f"largest median move under {', '.join(TARGET_VARIANTS)}: {worst:.3f} spreads")

    t = DIMENSIONS.index("tempo_bpm")
    print("\ntempo_bpm moved by re-encoding (|ratio - 1| > 4%; octave-tolerant: not within 4% of 1, 2 or 1/2):")
    for v in variants:
        strict = octave = 0
        for o in originals:
            a, b = cache[keys[(o, None)]][t], cache[keys[(o, v)]][t]
            same = a > 0 and b > 0 and abs(b / a - 1) <= 0.04
            oct_same = a > 0 and b > 0 and any(abs(b / (a * r) - 1) <= 0.04 for r in (1, 2, 0.5))
            strict += not (same or (a == 0 and b == 0))
            octave += not (oct_same or (a == 0 and b == 0))
        print(f"  {v:10s} {strict:3d} / {len(originals)} moved, {octave:3d} to another metrical level or value")
        figures.setdefault("tempo_moved", {})[v] = {"strict": strict, "octave": octave}

    specs = [("default", None)] + [(name, similarity.VARIANTS[name]) for name in args.distance]
    for label, spec in specs:
        print(f"\ncodec identity top-1 (nearest original is its own original), {label} distance:")
        hits_all = total = 0
        for v in variants:
            hits = 0
            for i, o in enumerate(originals):
                q = np.array(cache[keys[(o, v)]])
                found = nearest(base, q, 1) if spec is None else nearest(base, q, 1, spec=spec)
                hits += found[0][0] == i
            hits_all += hits
            total += len(originals)
            figures["identity"].setdefault(label, {})[v] = hits / len(originals)
            print(f"  {v:10s} {hits:3d} / {len(originals)}")
        print(f"  {'all':10s} {hits_all:3d} / {total} = {100.0 * hits_all / max(total, 1):.1f}%")
        figures.setdefault("identity_all", {})[label] = hits_all / max(total, 1)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
