"""Levels / dynamics: spec 4.9 ``crest_db``, 4.14 ``silence_ratio``, 4.23 ``peak_consistency``.

Level statistics over 100 ms sub-blocks of the raw (unweighted) signal.

Inputs are per sub-block: ``mean_square[j]`` = mean of x^2 over all samples
of all channels, and ``peak[j]`` = max |x| over all channels (sample peak,
full scale = 1.0).
"""

from __future__ import annotations

import math

import numpy as np

from trackprint.pyengine.features.frames import SILENCE_MEAN_SQUARE

PEAK_WINDOW_SUB_BLOCKS = 10  # 1 s windows for peak_consistency


def silence_ratio(mean_square: np.ndarray) -> float:
    """``silence_ratio`` (Spec 4.14): share of the 100 ms sub-blocks whose RMS is below -60 dBFS.

    mean over complete sub-blocks j of [mean_square[j] < 1e-6]. Ratio, 0..1:
    1 = silent throughout (digital silence or near-silence), 0 = never silent.
    """
    ms = np.asarray(mean_square, dtype=np.float64)
    if len(ms) == 0:
        return 1.0
    return float(np.mean(ms < SILENCE_MEAN_SQUARE))


def crest_db(mean_square: np.ndarray, peak: np.ndarray) -> float:
    """``crest_db`` (Spec 4.9): sample peak over RMS of the non-silent sub-blocks, dB.

    max(0, 20 log10(max|x| / sqrt(mean of mean_square over sub-blocks >= -60 dBFS))).
    dB, 0..200; higher is peakier: 3.01 dB for a sine, 0 for a square wave,
    ~13 for white noise, ~10-20 dB for music. 0 for silence.
    """
    ms = np.asarray(mean_square, dtype=np.float64)
    loud = ms[ms >= SILENCE_MEAN_SQUARE]
    top = float(np.max(peak)) if len(peak) else 0.0
    if len(loud) == 0 or top <= 0.0:
        return 0.0
    return max(0.0, 20.0 * math.log10(top / math.sqrt(float(loud.mean()))))


def peak_consistency(mean_square: np.ndarray, peak: np.ndarray) -> float:
    """``peak_consistency`` (Spec 4.23): mean over non-silent 1 s windows of (window peak / track peak).

    Windows are 10 consecutive sub-blocks (the last may be shorter); a window
    is non-silent when its mean square is >= -60 dBFS. 1 = every second
    reaches the track's peak (a limited master, a steady tone); low = peaks
    are rare (dynamic classical, a single drum hit). "Track peak" is the
    largest peak among the non-silent windows. Ratio, 0..1; 0 for silence.
    """
    ms = np.asarray(mean_square, dtype=np.float64)
    pk = np.asarray(peak, dtype=np.float64)
    if len(ms) == 0:
        return 0.0
    starts = np.arange(0, len(ms), PEAK_WINDOW_SUB_BLOCKS)
    window_ms = np.add.reduceat(ms, starts) / np.diff(np.append(starts, len(ms)))
    window_peak = np.maximum.reduceat(pk, starts)
    loud = window_ms >= SILENCE_MEAN_SQUARE
    if not np.any(loud):
        return 0.0
    top = window_peak[loud].max()
    if top <= 0.0:
        return 0.0
    return float(np.mean(window_peak[loud] / top))
