"""Spectral shape: spec 4.15 ``spectral_centroid``, 4.16 ``spectral_rolloff``, 4.17 ``spectral_flatness``.

Each is a per-frame statistic of the magnitude spectrum ``A_t[k] = |X_t[k]|``
(unnormalised real FFT of a periodic-Hann-windowed frame of the mono
downmix; bin ``k`` at ``f_k = k * sr / N`` Hz, spec 3.3) over the bins of the
shape band 20 Hz <= f_k < 12 kHz (:func:`shape_bins`), averaged over the T
active frames. Version 2 limits the band: every common lossy codec keeps it
(MP3 V5, AAC 128k and Vorbis q3 low-pass at ~16 kHz, Opus at 20 kHz), so a
re-encoded copy reads the same; over every bin up to Nyquist, flatness moved
1.2 robust spreads under MP3 V5 (it read the codec's low-pass and noise
floor), over 20 Hz-12 kHz 0.05. The ``frame_*`` functions take a batch of frames (rows) and
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
SHAPE_LOW_HZ = 20.0  # the shape band: SHAPE_LOW_HZ <= f_k < SHAPE_HIGH_HZ (version 2)
SHAPE_HIGH_HZ = 12_000.0


def shape_bins(freqs: np.ndarray) -> slice:
    """The bins of the shape band, 20 Hz <= f_k < 12 kHz, as a slice (frequencies increase with k).

    Below 24 kHz sample rates the band ends at the Nyquist bin; an empty slice
    cannot happen at the supported rates (>= 8 kHz, frames >= 1024).
    """
    inside = np.flatnonzero((freqs >= SHAPE_LOW_HZ) & (freqs < SHAPE_HIGH_HZ))
    return slice(int(inside[0]), int(inside[-1]) + 1) if len(inside) else slice(0, 0)


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

    (1/T) sum_t c_t with c_t = sum_k f_k A_t[k] / sum_k A_t[k] over the bins
    of 20 Hz-12 kHz (:func:`shape_bins`, :func:`frame_centroid`), T = active
    frames. Hz, 20..12000 (0 for silence); higher is brighter (white noise
    ~6 kHz, a sine in the band its frequency).
    ``centroid_sum`` = sum_t c_t over the active frames.
    """
    return mean_over_active_frames(centroid_sum, active_frames)


def spectral_rolloff(rolloff_sum: float, active_frames: int) -> float:
    """``spectral_rolloff`` (Spec 4.16): mean 85 % roll-off frequency, Hz.

    (1/T) sum_t (the lowest f_k with sum_{j<=k} A_t[j] >= 0.85 sum_j A_t[j]),
    j and k over the bins of 20 Hz-12 kHz (:func:`shape_bins`, :func:`frame_rolloff`).
    Hz, 20..12000 (0 for silence); higher means more high-frequency content
    (white noise ~10.2 kHz).
    ``rolloff_sum`` = sum of the per-frame roll-offs over the active frames.
    """
    return mean_over_active_frames(rolloff_sum, active_frames)


def spectral_flatness(flatness_sum: float, active_frames: int) -> float:
    """``spectral_flatness`` (Spec 4.17): mean flatness of the magnitude spectrum, ratio.

    (1/T) sum_t exp(mean_k ln A'_t[k]) / mean_k A'_t[k], A' = max(A, 1e-10),
    k over the bins of 20 Hz-12 kHz (:func:`shape_bins`, :func:`frame_flatness`).
    Ratio, 0..1; higher is more noise-like (white noise ~0.85, a pure tone
    ~0, music 0.05..0.4). 0 for silence.
    ``flatness_sum`` = sum of the per-frame flatness over the active frames.
    """
    return mean_over_active_frames(flatness_sum, active_frames)
