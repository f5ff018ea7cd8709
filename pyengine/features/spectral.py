"""Spectral balance, shape and harmonicity, per frame of the mono downmix.

Input everywhere is a batch of power spectra ``P[t, k] = |X_t[k]|^2`` of the
unnormalised real FFT (numpy/librosa convention) of periodic-Hann-windowed
frames; bin ``k`` is at ``f_k = k * sr / N`` Hz. Each function returns one
value per frame (or per-band sums) that the accumulator aggregates over the
track. The frame-level definitions of centroid, rolloff and flatness are
librosa's (``librosa.feature.spectral_*``), so they can be checked against it.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage

BAND_EDGES_HZ = (20.0, 60.0, 250.0, 500.0, 2000.0, 4000.0, 6000.0, 20000.0)
BAND_NAMES = ("sub_bass_pct", "bass_pct", "low_mid_pct", "mid_pct", "upper_mid_pct", "presence_pct", "air_pct")

ROLLOFF_FRACTION = 0.85
FLATNESS_FLOOR = 1e-10  # librosa's amin, applied to magnitudes
LOG_POWER_FLOOR = FLATNESS_FLOOR ** 2
TONAL_NEIGHBOURHOOD = 16  # bins either side (~86 Hz at 44.1 kHz / 8192)
TONAL_MARGIN = np.log(10.0)  # a tonal bin is >= 10 dB above its neighbourhood's geometric mean
CHROMA_LOW_HZ = 65.406  # C2
CHROMA_HIGH_HZ = 2093.005  # C7


def bin_frequencies(sample_rate: int, n_fft: int) -> np.ndarray:
    """f_k = k * sr / N for k = 0..N/2, Hz."""
    return np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)


def band_index(freqs: np.ndarray) -> np.ndarray:
    """Band number (0..6) of each bin, -1 outside 20 Hz..20 kHz. Band b holds edges[b] <= f < edges[b+1]."""
    idx = np.searchsorted(BAND_EDGES_HZ, freqs, side="right") - 1
    idx[(freqs < BAND_EDGES_HZ[0]) | (freqs >= BAND_EDGES_HZ[-1])] = -1
    return idx


def band_power(power: np.ndarray, bands: np.ndarray) -> np.ndarray:
    """Sum of power per band over the batch: E_b = sum_t sum_{k in b} P[t, k]. Shape (7,)."""
    per_bin = power.sum(axis=0, dtype=np.float64)
    return np.bincount(bands[bands >= 0], weights=per_bin[bands >= 0], minlength=7)[:7]


def band_percentages(band_energy: np.ndarray) -> np.ndarray:
    """``*_pct``: 100 * E_b / sum(E), percent of 20 Hz..20 kHz power per band; all 0 for silence."""
    total = float(np.sum(band_energy))
    if total <= 0.0:
        return np.zeros(7)
    return 100.0 * np.asarray(band_energy, dtype=np.float64) / total


def bass_mid_ratio(band_energy: np.ndarray) -> float:
    """``bass_mid_ratio``: E(20..250 Hz) / (E(20..250 Hz) + E(250..4000 Hz)), 0..1.

    1 = all bass, no midrange; 0 = no bass; 0 for silence.
    """
    bass = float(band_energy[0] + band_energy[1])
    mid = float(band_energy[2] + band_energy[3] + band_energy[4])
    return bass / (bass + mid) if bass + mid > 0.0 else 0.0


def spectral_centroid(magnitude: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Per-frame centroid, Hz: sum_k f_k |X_k| / sum_k |X_k| (librosa.feature.spectral_centroid)."""
    total = magnitude.sum(axis=1, dtype=np.float64)
    weighted = magnitude @ freqs.astype(magnitude.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, weighted / np.where(total > 0, total, 1.0), 0.0)


def spectral_rolloff(magnitude: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Per-frame rolloff, Hz: the lowest f_k with sum_{j<=k} |X_j| >= 0.85 sum_j |X_j| (librosa)."""
    cumulative = np.cumsum(magnitude, axis=1)
    threshold = ROLLOFF_FRACTION * cumulative[:, -1:]
    first = np.argmax(cumulative >= threshold, axis=1)
    return freqs[first]


def spectral_flatness(log_power: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """Per-frame flatness of the magnitude spectrum, 0..1 (librosa ``spectral_flatness(S, power=1.0)``).

    exp(mean_k ln S'_k) / mean_k S'_k with S' = max(|X|, 1e-10), the ratio of
    geometric to arithmetic mean. ~0.89 for white noise at this frame size,
    near 0 for a pure tone; music sits between (0.05..0.4). The magnitude
    (not power) spectrum keeps music away from the bottom of the range.
    ``log_power`` is ln max(|X|^2, 1e-20), i.e. 2 ln S'.
    """
    geometric = np.exp(0.5 * log_power.mean(axis=1, dtype=np.float64))
    return geometric / np.maximum(magnitude, FLATNESS_FLOOR).mean(axis=1, dtype=np.float64)


def tonal_mask(log_power: np.ndarray) -> np.ndarray:
    """Bins that stand >= 10 dB above the geometric mean power of the 33 bins centred on them.

    Local mean of ln P over bins k-16..k+16, with the end bins repeated past the
    spectrum's edges (scipy's ``mode="nearest"``). A sinusoid's main lobe
    passes; noise almost never does.
    """
    local_mean = scipy.ndimage.uniform_filter1d(log_power, 2 * TONAL_NEIGHBOURHOOD + 1, axis=1, mode="nearest")
    return log_power >= local_mean + TONAL_MARGIN


def pitch_classes(freqs: np.ndarray) -> np.ndarray:
    """Pitch class (0 = C .. 11 = B, A4 = 440 Hz) of each bin in C2..C7, -1 elsewhere.

    pc = round(69 + 12 log2(f / 440)) mod 12.
    """
    pcs = np.full(len(freqs), -1, dtype=np.int64)
    inside = (freqs >= CHROMA_LOW_HZ) & (freqs < CHROMA_HIGH_HZ)
    pcs[inside] = np.rint(69.0 + 12.0 * np.log2(freqs[inside] / 440.0)).astype(np.int64) % 12
    return pcs


def chroma_matrix(freqs: np.ndarray) -> np.ndarray:
    """(bins x 12) 0/1 matrix folding power into pitch classes."""
    pcs = pitch_classes(freqs)
    matrix = np.zeros((len(freqs), 12), dtype=np.float32)
    matrix[pcs >= 0, pcs[pcs >= 0]] = 1.0
    return matrix


def chroma_concentration(chroma: np.ndarray) -> np.ndarray:
    """Per-frame concentration of chroma power in its strongest pitch class, 0..1.

    c = (12 max_p C_p / sum_p C_p - 1) / 11: 1 when one pitch class holds all
    the power (a single note), 0 when all twelve are equal (noise). Frames
    with no power in C2..C7 give 0.
    """
    total = chroma.sum(axis=1, dtype=np.float64)
    share = np.where(total > 0, chroma.max(axis=1) / np.where(total > 0, total, 1.0), 1.0 / 12.0)
    return (12.0 * share - 1.0) / 11.0
