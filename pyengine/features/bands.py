"""Bands / spectral balance: spec 4.1-4.7 (the seven ``*_pct``) and 4.10 (``bass_mid_ratio``).

Every dimension here reads the band energies of the whole track,

    E_b = sum_{t active} sum_{k in b} P_t[k]

the power ``P_t[k] = |X_t[k]|^2`` of the active spectral frames of the mono
downmix (spec 3.3), summed per band. The accumulator adds them up batch by
batch with :func:`band_index`; the dimension functions take the seven sums
(float64, indexed by :data:`SUB_BASS` .. :data:`AIR`) and return one number.
"""

from __future__ import annotations

import numpy as np

# Half-open bands [edge_b, edge_{b+1}), Hz; bins below 20 Hz or at/above 20 kHz belong to none.
BAND_EDGES_HZ = (20.0, 60.0, 250.0, 500.0, 2000.0, 4000.0, 6000.0, 20000.0)
BAND_NAMES = ("sub_bass_pct", "bass_pct", "low_mid_pct", "mid_pct", "upper_mid_pct", "presence_pct", "air_pct")
SUB_BASS, BASS, LOW_MID, MID, UPPER_MID, PRESENCE, AIR = range(7)


def band_index(freqs: np.ndarray) -> np.ndarray:
    """Band number (0..6) of each bin, -1 outside 20 Hz..20 kHz. Band b holds edges[b] <= f < edges[b+1]."""
    idx = np.searchsorted(BAND_EDGES_HZ, freqs, side="right") - 1
    idx[(freqs < BAND_EDGES_HZ[0]) | (freqs >= BAND_EDGES_HZ[-1])] = -1
    return idx


def band_power(power: np.ndarray, bands: np.ndarray) -> np.ndarray:
    """Sum of power per band over a batch of frames: E_b = sum_t sum_{k in b} P[t, k]. Shape (7,)."""
    per_bin = power.sum(axis=0, dtype=np.float64)
    return np.bincount(bands[bands >= 0], weights=per_bin[bands >= 0], minlength=7)[:7]


def band_pct(band_energy: np.ndarray, band: int) -> float:
    """pct_b = 100 * E_b / sum_{b'} E_{b'}, percent 0..100; 0 when there is no power (silence)."""
    total = float(np.sum(band_energy))
    if total <= 0.0:
        return 0.0
    return 100.0 * float(band_energy[band]) / total


def sub_bass_pct(band_energy: np.ndarray) -> float:
    """``sub_bass_pct`` (Spec 4.1): share of the 20 Hz-20 kHz power in [20, 60) Hz.

    100 * E_sub_bass / sum_b E_b. Percent, 0..100; the seven ``*_pct`` sum to
    100 (or are all 0: silence). A 50 Hz sine reads ~100.
    """
    return band_pct(band_energy, SUB_BASS)


def bass_pct(band_energy: np.ndarray) -> float:
    """``bass_pct`` (Spec 4.2): share of the 20 Hz-20 kHz power in [60, 250) Hz.

    100 * E_bass / sum_b E_b. Percent, 0..100; 0 for silence.
    """
    return band_pct(band_energy, BASS)


def low_mid_pct(band_energy: np.ndarray) -> float:
    """``low_mid_pct`` (Spec 4.3): share of the 20 Hz-20 kHz power in [250, 500) Hz.

    100 * E_low_mid / sum_b E_b. Percent, 0..100; 0 for silence.
    """
    return band_pct(band_energy, LOW_MID)


def mid_pct(band_energy: np.ndarray) -> float:
    """``mid_pct`` (Spec 4.4): share of the 20 Hz-20 kHz power in [500, 2000) Hz.

    100 * E_mid / sum_b E_b. Percent, 0..100; 0 for silence. A 1 kHz sine reads 100.
    """
    return band_pct(band_energy, MID)


def upper_mid_pct(band_energy: np.ndarray) -> float:
    """``upper_mid_pct`` (Spec 4.5): share of the 20 Hz-20 kHz power in [2000, 4000) Hz.

    100 * E_upper_mid / sum_b E_b. Percent, 0..100; 0 for silence.
    """
    return band_pct(band_energy, UPPER_MID)


def presence_pct(band_energy: np.ndarray) -> float:
    """``presence_pct`` (Spec 4.6): share of the 20 Hz-20 kHz power in [4000, 6000) Hz.

    100 * E_presence / sum_b E_b. Percent, 0..100; 0 for silence. At 8-15.6 kHz
    sample rates it holds at most the Nyquist bin.
    """
    return band_pct(band_energy, PRESENCE)


def air_pct(band_energy: np.ndarray) -> float:
    """``air_pct`` (Spec 4.7): share of the 20 Hz-20 kHz power in [6000, 20000) Hz.

    100 * E_air / sum_b E_b. Percent, 0..100; 0 for silence, and always 0 at
    sample rates up to 12 kHz (no bin at or above 6 kHz).
    """
    return band_pct(band_energy, AIR)


def bass_mid_ratio(band_energy: np.ndarray) -> float:
    """``bass_mid_ratio`` (Spec 4.10): power in 20-250 Hz over power in 20-4000 Hz.

    (E_sub_bass + E_bass) / (E_sub_bass + E_bass + E_low_mid + E_mid + E_upper_mid).
    Ratio, 0..1: 1 = all bass, no midrange; 0 = no bass; presence and air do
    not count. 0 for silence (or when the denominator is 0).
    """
    bass = float(band_energy[SUB_BASS] + band_energy[BASS])
    mid = float(band_energy[LOW_MID] + band_energy[MID] + band_energy[UPPER_MID])
    return bass / (bass + mid) if bass + mid > 0.0 else 0.0
