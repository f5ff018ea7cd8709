"""Spectral shape: spec 4.15 ``spectral_centroid``, 4.16 ``spectral_rolloff``, 4.17 ``spectral_flatness``.

Each is a per-frame statistic of the magnitude spectrum ``A_t[k] = |X_t[k]|``
(unnormalised real FFT of a periodic-Hann-windowed frame of the mono
downmix; bin ``k`` at ``f_k = k * sr / N`` Hz, spec 3.3), averaged over the
T active frames. The ``frame_*`` functions take a batch of frames (rows) and
return one value per frame; their definitions are librosa's
(``librosa.feature.spectral_*``), so they can be checked against it. The
accumulator sums them over the track; the dimension functions take that sum
and T and return the mean.
"""

from __future__ import annotations

import numpy as np

from trackprint.pyengine.features.frames import mean_over_active_frames

ROLLOFF_FRACTION = 0.85
FLATNESS_FLOOR = 1e-10  # librosa's amin, applied to magnitudes


def frame_centroid(magnitude: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Per-frame centroid, Hz: c_t = sum_k f_k |X_k| / sum_k |X_k|, 0 for an all-zero frame.

    librosa.feature.spectral_centroid(S=A, freq=f).
    """
    total = magnitude.sum(axis=1, dtype=np.float64)
    weighted = magnitude @ freqs.astype(magnitude.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, weighted / np.where(total > 0, total, 1.0), 0.0)


def frame_rolloff(magnitude: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Per-frame rolloff, Hz: the lowest f_k with sum_{j<=k} |X_j| >= 0.85 sum_j |X_j|.

    librosa.feature.spectral_rolloff(S=A, freq=f, roll_percent=0.85).
    """
    cumulative = np.cumsum(magnitude, axis=1)
    threshold = ROLLOFF_FRACTION * cumulative[:, -1:]
    first = np.argmax(cumulative >= threshold, axis=1)
    return freqs[first]


def frame_flatness(log_power: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """Per-frame flatness of the magnitude spectrum, 0..1 (librosa ``spectral_flatness(S, power=1.0)``).

    exp(mean_k ln S'_k) / mean_k S'_k with S' = max(|X|, 1e-10), the ratio of
    geometric to arithmetic mean. ``log_power`` is ln max(|X|^2, LOG_POWER_FLOOR)
    (``frames.LOG_POWER_FLOOR``), i.e. 2 ln S'.
    """
    geometric = np.exp(0.5 * log_power.mean(axis=1, dtype=np.float64))
    return geometric / np.maximum(magnitude, FLATNESS_FLOOR).mean(axis=1, dtype=np.float64)


def spectral_centroid(centroid_sum: float, active_frames: int) -> float:
    """``spectral_centroid`` (Spec 4.15): mean spectral centre of mass, Hz.

    (1/T) sum_t c_t with c_t = sum_k f_k A_t[k] / sum_k A_t[k] over all bins
    (:func:`frame_centroid`), T = active frames. Hz, 0..192000; higher is
    brighter (white noise ~sr/4, a sine its frequency). 0 for silence.
    ``centroid_sum`` = sum_t c_t over the active frames.
    """
    return mean_over_active_frames(centroid_sum, active_frames)


def spectral_rolloff(rolloff_sum: float, active_frames: int) -> float:
    """``spectral_rolloff`` (Spec 4.16): mean 85 % roll-off frequency, Hz.

    (1/T) sum_t (the lowest f_k with sum_{j<=k} A_t[j] >= 0.85 sum_j A_t[j])
    (:func:`frame_rolloff`). Hz, 0..192000; higher means more high-frequency
    content (white noise: 0.85 x Nyquist). 0 for silence.
    ``rolloff_sum`` = sum of the per-frame roll-offs over the active frames.
    """
    return mean_over_active_frames(rolloff_sum, active_frames)


def spectral_flatness(flatness_sum: float, active_frames: int) -> float:
    """``spectral_flatness`` (Spec 4.17): mean flatness of the magnitude spectrum, ratio.

    (1/T) sum_t exp(mean_k ln A'_t[k]) / mean_k A'_t[k], A' = max(A, 1e-10)
    (:func:`frame_flatness`). Ratio, 0..1; higher is more noise-like (white
    noise ~0.85, a pure tone ~0, music 0.05..0.4). 0 for silence.
    ``flatness_sum`` = sum of the per-frame flatness over the active frames.
    """
    return mean_over_active_frames(flatness_sum, active_frames)
