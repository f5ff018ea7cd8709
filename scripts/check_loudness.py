#!/usr/bin/env python3
"""Real music against libebur128: the Python engine's lufs and dynamic_range_variation vs pyebur128.

    .venv/bin/python scripts/check_loudness.py DIR

prints one line per track and the largest differences (the spec's
requirement: lufs within 0.1 LU of libebur128).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyebur128
import soundfile as sf

from trackprint.pyengine.engine import analyze_file

AUDIO = {".flac", ".wav", ".ogg", ".opus", ".mp3", ".aiff"}


def reference(path: str) -> tuple[float, float]:
    with sf.SoundFile(path) as sound:
        state = pyebur128.R128State(sound.channels, sound.samplerate,
                                    pyebur128.MeasurementMode.MODE_I | pyebur128.MeasurementMode.MODE_LRA)
        for block in sound.blocks(blocksize=1 << 16, dtype="float64", always_2d=True):
            state.add_frames(np.ascontiguousarray(block).ravel(), len(block))  # interleaved frames
    return pyebur128.get_loudness_global(state), pyebur128.get_loudness_range(state)


def main(folder: str) -> int:
    paths = sorted(str(p) for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO)
    worst_i = worst_lra = 0.0
    for path in paths:
        ours = analyze_file(path).fingerprint.as_dict()
        lufs, lra = reference(path)
        d_i, d_lra = abs(ours["lufs"] - lufs), abs(ours["dynamic_range_variation"] - lra)
        worst_i, worst_lra = max(worst_i, d_i), max(worst_lra, d_lra)
        print(f"{ours['lufs']:8.3f} {lufs:8.3f} {d_i:6.3f}   {ours['dynamic_range_variation']:7.3f} {lra:7.3f}  {Path(path).name}")
    print(f"{len(paths)} tracks: max |lufs - libebur128| = {worst_i:.4f} LU (limit 0.1), "
          f"max |LRA - libebur128| = {worst_lra:.4f} LU")
    return 0 if worst_i <= 0.1 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
