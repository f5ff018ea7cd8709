"""Harmonicity (tonal content): spec 4.18 ``harmonic_ratio``, 4.19 ``pitch_stability``, 4.20 ``chroma_energy``.

All three read the power ``P_t[k] = |X_t[k]|^2`` of the active spectral
frames of the mono downmix (spec 3.3). Per batch of frames (rows):
:func:`tonal_mask`, chroma ``C_t = P_t @ chroma_matrix``,
:func:`dominant_pitch_class` and :func:`chroma_concentration`; the
accumulator sums them over the track, and the dimension functions turn the
sums into the three values.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage

from trackprint.pyengine.features.frames import mean_over_active_frames

TONAL_NEIGHBOURHOOD = 16  # bins either side (~86 Hz at 44.1 kHz / 8192)
TONAL_MARGIN = np.log(10.0)  # a tonal bin is >= 10 dB above its neighbourhood's geometric mean
CHROMA_LOW_HZ = 65.406  # C2
CHROMA_HIGH_HZ = 2093.005  # C7


def tonal_mask(log_power: np.ndarray) -> np.ndarray:
    """Bins that stand >= 10 dB above the geometric mean power of the 33 bins centred on them.

    Local mean of ln P over bins k-16..k+16, with the end bins repeated past the
    spectrum's edges (scipy's ``mode="nearest"``). A sinusoid's main lobe
    passes; noise almost never does. ``log_power`` = ln max(P, frames.LOG_POWER_FLOOR).
    """
    local_mean = scipy.ndimage.uniform_filter1d(log_power, 2 * TONAL_NEIGHBOURHOOD + 1, axis=1, mode="nearest")
    return log_power >= local_mean + TONAL_MARGIN


def pitch_classes(freqs: np.ndarray) -> np.ndarray:
    """Pitch class (0 = C .. 11 = B, A4 = 440 Hz) of each bin in C2..C7, -1 elsewhere.

    pc = round_half_even(69 + 12 log2(f / 440)) mod 12.
    """
    pcs = np.full(len(freqs), -1, dtype=np.int64)
    inside = (freqs >= CHROMA_LOW_HZ) & (freqs < CHROMA_HIGH_HZ)
    pcs[inside] = np.rint(69.0 + 12.0 * np.log2(freqs[inside] / 440.0)).astype(np.int64) % 12
    return pcs


def chroma_matrix(freqs: np.ndarray) -> np.ndarray:
    """(bins x 12) 0/1 matrix folding power into pitch classes: C_t = P_t @ matrix."""
    pcs = pitch_classes(freqs)
    matrix = np.zeros((len(freqs), 12), dtype=np.float32)
    matrix[pcs >= 0, pcs[pcs >= 0]] = 1.0
    return matrix


def dominant_pitch_class(chroma: np.ndarray) -> np.ndarray:
    """Per frame p_t = argmax_p C_t[p] (lowest p on ties), or -1 when sum_p C_t[p] = 0 (spec 4.19)."""
    return np.where(chroma.sum(axis=1) > 0, np.argmax(chroma, axis=1), -1)


def chroma_concentration(chroma: np.ndarray) -> np.ndarray:
    """Per-frame concentration of chroma power in its strongest pitch class, 0..1 (spec 4.20).

    chi_t = (12 s_t - 1) / 11 with s_t = max_p C_t[p] / sum_p C_t[p]: 1 when one
    pitch class holds all the power (a single note), 0 when all twelve are
    equal. Frames with no power in C2..C7 have s_t = 1/12, so give 0.
    """
    total = chroma.sum(axis=1, dtype=np.float64)
    share = np.where(total > 0, chroma.max(axis=1) / np.where(total > 0, total, 1.0), 1.0 / 12.0)
    return (12.0 * share - 1.0) / 11.0


def harmonic_ratio(tonal_power: float, audible_power: float) -> float:
    """``harmonic_ratio`` (Spec 4.18): share of the track's 20 Hz-20 kHz power in tonal bins.

    sum_t sum_{k tonal, 20 Hz <= f_k < 20 kHz} P_t[k] / sum_t sum_{20 Hz <= f_k < 20 kHz} P_t[k]
    over the active frames (tonal: :func:`tonal_mask`). Ratio, 0..1; higher means
    more power in spectral peaks (tones, harmonics), less in noise or
    transients: a sine ~1, white noise ~0.02, a click track 0. 0 for silence.
    """
    return tonal_power / audible_power if audible_power > 0 else 0.0


def pitch_stability(same_pitch_pairs: int, pitch_pairs: int) -> float:
    """``pitch_stability`` (Spec 4.19): how often the dominant pitch class holds from frame to frame.

    Over all pairs of consecutive spectral frames (t, t+1) that both have a
    dominant pitch class (:func:`dominant_pitch_class`; inactive frames have
    none), the share with p_t = p_{t+1}. Ratio, 0..1: drones and sustained
    chords high, fast melodies low, noise ~0.1. 0 when there is no such pair
    (silence, a track of at most one frame).
    """
    return same_pitch_pairs / pitch_pairs if pitch_pairs else 0.0


def chroma_energy(concentration_sum: float, active_frames: int) -> float:
    """``chroma_energy`` (Spec 4.20): mean concentration of chroma power in one pitch class.

    (1/T) sum_t chi_t over the T active frames (:func:`chroma_concentration`;
    chroma of C2..C7, frames not normalised). Ratio, 0..1: 1 = a single note
    (one pitch class, any octave), 0 = all twelve equal; white noise ~0.05.
    0 for silence. ``concentration_sum`` = sum_t chi_t over the active frames.
    """
    return mean_over_active_frames(concentration_sum, active_frames)
