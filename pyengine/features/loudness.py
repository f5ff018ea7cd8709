"""Loudness: spec 4.8 ``lufs``, 4.21 ``dynamic_range_variation``, 4.22 ``loudness_variation_std``.

ITU-R BS.1770-4 / EBU R128 as implemented by libebur128.

Everything here starts from *sub-block energies*: for each complete 100 ms
sub-block ``j`` (``(sr + 5) // 10`` samples, libebur128's rounding) the
channel-weighted sum of mean squares of the K-weighted signal,

    z_j = sum_c  G_c * mean(y_c[n]^2 for n in sub-block j)

The meter's 400 ms momentary blocks (75 % overlap) and 3 s short-term blocks
(one per second) are averages of consecutive sub-blocks, exactly as in
libebur128, so the results agree with it (and with the ``ebur128`` crate).

References: ITU-R BS.1770-4 (2015); EBU Tech 3341 (loudness metering) and
Tech 3342 (loudness range); libebur128 ``ebur128.c``.
"""

from __future__ import annotations

import math

import numpy as np

LOUDNESS_FLOOR = -70.0  # LUFS: the absolute gate; also the value of silence
_ABS_GATE_ENERGY = 10.0 ** ((LOUDNESS_FLOOR + 0.691) / 10.0)


def k_weighting_sos(sample_rate: int) -> np.ndarray:
    """K-weighting as two biquads (shelf, then RLB high-pass) for any sample rate.

    The analogue prototypes of BS.1770 are re-derived for ``sample_rate`` with
    the bilinear transform, using libebur128's constants, so 44.1 kHz and
    96 kHz files are weighted exactly as at 48 kHz. Returns scipy ``sos``.
    """
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / sample_rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh ** 0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf_b = [(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0]
    shelf_a = [1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]

    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / sample_rate)
    a0 = 1.0 + k / q + k * k
    highpass_b = [1.0, -2.0, 1.0]
    highpass_a = [1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf_b + shelf_a, highpass_b + highpass_a], dtype=np.float64)


def channel_weights(channels: int) -> np.ndarray:
    """BS.1770 channel weights G_c with libebur128's default channel map.

    1 ch: mono (1.0). 4 ch: L R Ls Rs. 5 ch: L R C Ls Rs. Otherwise channel
    order L R C LFE Ls Rs (WAV/FLAC order): LFE and channels past the sixth
    are not measured (0.0); surrounds weigh 1.41 (+1.5 dB).
    """
    if channels == 4:
        weights = [1.0, 1.0, 1.41, 1.41]
    elif channels == 5:
        weights = [1.0, 1.0, 1.0, 1.41, 1.41]
    else:
        base = [1.0, 1.0, 1.0, 0.0, 1.41, 1.41]
        weights = [base[c] if c < len(base) else 0.0 for c in range(channels)]
    return np.asarray(weights, dtype=np.float64)


def energy_to_lufs(energy: float) -> float:
    """L = -0.691 + 10 log10(z)  (BS.1770-4 eq. 2), floored at the -70 LUFS absolute gate."""
    if energy <= 0.0:
        return LOUDNESS_FLOOR
    return max(LOUDNESS_FLOOR, -0.691 + 10.0 * math.log10(energy))


def momentary_block_energies(sub_energies: np.ndarray) -> np.ndarray:
    """Energies of the 400 ms blocks with 75 % overlap: means of 4 consecutive sub-blocks.

    A track shorter than 400 ms but with at least one sub-block is measured as a
    single block over what it has (an extension: BS.1770 leaves it undefined).
    """
    z = np.asarray(sub_energies, dtype=np.float64)
    if len(z) == 0:
        return z
    if len(z) < 4:
        return np.array([z.mean()])
    c = np.concatenate(([0.0], np.cumsum(z)))
    return (c[4:] - c[:-4]) / 4.0


def gated_blocks(block_energies: np.ndarray) -> np.ndarray:
    """The blocks that pass both gates of BS.1770-4: >= -70 LUFS, then >= (mean of those) - 10 LU."""
    z = np.asarray(block_energies, dtype=np.float64)
    above_abs = z[z >= _ABS_GATE_ENERGY]
    if len(above_abs) == 0:
        return above_abs
    relative_gate = above_abs.mean() * 0.1  # -10 LU
    return above_abs[above_abs >= relative_gate]


def lufs(sub_energies: np.ndarray) -> float:
    """``lufs`` (Spec 4.8): integrated loudness, LUFS (BS.1770-4 / EBU R128).

    L_I = -0.691 + 10 log10(mean of the gated 400 ms block energies), gates
    -70 LUFS absolute then -10 LU relative (:func:`gated_blocks`). LUFS, -70..40:
    -70 for silence or nothing above the absolute gate, about +3 for a
    full-scale square wave (more only for float files above full scale);
    typical masters -20..-6. Higher is louder.
    """
    gated = gated_blocks(momentary_block_energies(sub_energies))
    if len(gated) == 0:
        return LOUDNESS_FLOOR
    return energy_to_lufs(float(gated.mean()))


def loudness_variation_std(sub_energies: np.ndarray) -> float:
    """``loudness_variation_std`` (Spec 4.22): spread of the momentary loudness, LU.

    sigma = std( -0.691 + 10 log10(z_b) ) over the 400 ms blocks that count
    toward ``lufs`` (same blocks, same gates; population std). LU, 0..100:
    0 for a steady signal, silence or fewer than 2 blocks (under 0.5 s);
    speech and dynamic music reach 4..8 LU.
    """
    gated = gated_blocks(momentary_block_energies(sub_energies))
    if len(gated) < 2:
        return 0.0
    levels = -0.691 + 10.0 * np.log10(gated)
    return float(np.std(levels))


def dynamic_range_variation(sub_energies: np.ndarray) -> float:
    """``dynamic_range_variation`` (Spec 4.21): EBU Tech 3342 loudness range (LRA), LU.

    Short-term blocks of 3 s every 1 s (sub-blocks [10j, 10j+30)), gated at
    -70 LUFS and then at -20 LU below their mean energy; LRA is the difference
    between the 95th and 10th percentiles of their loudness, with libebur128's
    percentile indexing (floor((n-1) p + 0.5) in the sorted list). LU, 0..100;
    higher means loud and quiet passages further apart. 0 for silence and
    for tracks with fewer than 2 short-term blocks (under 4 s).
    """
    z = np.asarray(sub_energies, dtype=np.float64)
    if len(z) < 30:
        return 0.0
    c = np.concatenate(([0.0], np.cumsum(z)))
    starts = np.arange(0, len(z) - 30 + 1, 10)
    short_term = (c[starts + 30] - c[starts]) / 30.0
    short_term = short_term[short_term >= _ABS_GATE_ENERGY]
    if len(short_term) == 0:
        return 0.0
    short_term = np.sort(short_term[short_term >= short_term.mean() * 0.01])  # -20 LU
    n = len(short_term)
    if n < 2:
        return 0.0
    low = short_term[int((n - 1) * 0.10 + 0.5)]
    high = short_term[int((n - 1) * 0.95 + 0.5)]
    return float(max(0.0, 10.0 * math.log10(high / low)))
