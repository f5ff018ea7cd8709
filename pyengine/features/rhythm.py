"""Rhythm: spec 4.11 ``tempo_bpm``, 4.12 ``rhythm_stability``, 4.13 ``transient_density``.

All three read an onset-strength envelope (spec 3.4).

The envelope is a log-spectral flux of the mono downmix, decimated to ~11 kHz
by averaging groups of D samples (D = 4 at 44.1/48 kHz, scaled with the
rate), framed with N = 512, hop 128, periodic Hann:

    L_t[k] = 10 log10(P_t[k] + 1e-5)          (dB; the floor mutes ~-77 dBFS noise)
    o_t    = mean_k max(0, L_t[k] - L_{t-1}[k]) (dB per bin), o_0 = 0

at ``fps = sr / D / 128`` frames per second (~86). References: Bello et al.,
"A tutorial on onset detection in music signals" (2005); Ellis, "Beat
tracking by dynamic programming" (2007) for the tempo prior.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

FLUX_FLOOR = 1e-5
TEMPO_MIN_BPM = 40.0
TEMPO_MAX_BPM = 240.0
TEMPO_PRIOR_BPM = 120.0  # log-normal prior, 1 octave standard deviation
ACF_WINDOW = 1024  # onset frames per autocorrelation window (~12 s)
PEAK_HALF_WIDTH = 3  # an onset is the largest value within +-3 frames (~35 ms)
PEAK_MEAN_HALF_WIDTH = 32  # ... and exceeds the mean within +-32 frames (~0.37 s)
PEAK_DELTA_DB = 1.5  # ... by at least this much (dB per bin)


def log_power(power: np.ndarray) -> np.ndarray:
    """L = 10 log10(P + 1e-5), dB."""
    return 10.0 * np.log10(power + FLUX_FLOOR)


def spectral_flux(log_spectra: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """o_t = mean_k max(0, L_t[k] - L_{t-1}[k]); the first frame of the track has o = 0."""
    if previous is None:
        stacked = np.vstack([log_spectra[:1], log_spectra])
    else:
        stacked = np.vstack([previous[None, :], log_spectra])
    rise = np.maximum(np.diff(stacked, axis=0), 0.0)
    return rise.mean(axis=1, dtype=np.float64)


def tempo_autocorrelation(onsets: np.ndarray, max_lag: int) -> np.ndarray:
    """Unbiased autocorrelation of the envelope, summed over windows of 1024 frames.

    In each window the mean is removed; A[l] = sum over windows of
    sum_t o'_t o'_{t+l}, divided by the number of pairs. Lags without pairs are 0.
    """
    onsets = np.asarray(onsets, dtype=np.float64)
    sums = np.zeros(max_lag + 1)
    pairs = np.zeros(max_lag + 1)
    for start in range(0, len(onsets), ACF_WINDOW):
        window = onsets[start:start + ACF_WINDOW]
        n = len(window)
        if n < 2:
            continue
        window = window - window.mean()
        size = 1 << int(math.ceil(math.log2(2 * n)))
        spectrum = np.fft.rfft(window, size)
        acf = np.fft.irfft(spectrum * np.conj(spectrum), size)
        used = min(n, max_lag + 1)  # lags 0..n-1 have pairs; a short last window has fewer than max_lag
        sums[:used] += acf[:used]
        pairs[:used] += n - np.arange(used)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, sums / np.where(pairs > 0, pairs, 1.0), 0.0)


MIN_ONSETS_FOR_TEMPO = 2


class Tempo(NamedTuple):
    """The tempo estimate both ``tempo_bpm`` and ``rhythm_stability`` read (spec 4.11, 4.12)."""

    bpm: float  # clamp(60 fps / (l* + delta), 40, 240), or 0 = no tempo
    stability: float  # clamp(A[l*] / A[0], 0, 1) at the unrefined lag l*, or 0


NO_TEMPO = Tempo(0.0, 0.0)


def tempo(onsets: np.ndarray, fps: float) -> Tempo:
    """The beat lag l* of the envelope and what it gives: (bpm, stability).

    l* is the first lag l in [ceil(60 fps / 240), floor(60 fps / 40)] maximising
    max(A[l], 0) * exp(-0.5 log2(bpm(l) / 120)^2), bpm(l) = 60 fps / l, A from
    :func:`tempo_autocorrelation`; it is refined by a parabola through
    A[l-1], A[l], A[l+1]. :data:`NO_TEMPO` when the envelope has fewer than 2
    onsets (:func:`onset_count`), A[0] <= 0 or no positive score: silence,
    steady tones and noise, clips under ~0.3 s.
    """
    if onset_count(onsets) < MIN_ONSETS_FOR_TEMPO:
        return NO_TEMPO
    min_lag = int(math.ceil(60.0 * fps / TEMPO_MAX_BPM))
    max_lag = int(math.floor(60.0 * fps / TEMPO_MIN_BPM))
    acf = tempo_autocorrelation(onsets, max_lag + 1)
    if acf[0] <= 0.0:
        return NO_TEMPO
    lags = np.arange(min_lag, max_lag + 1)
    bpm = 60.0 * fps / lags
    weights = np.exp(-0.5 * np.log2(bpm / TEMPO_PRIOR_BPM) ** 2)
    scores = np.maximum(acf[lags], 0.0) * weights
    best = int(np.argmax(scores))
    if scores[best] <= 0.0:
        return NO_TEMPO
    lag = int(lags[best])
    left, centre, right = acf[lag - 1], acf[lag], acf[lag + 1]
    curvature = left - 2.0 * centre + right
    offset = 0.5 * (left - right) / curvature if curvature < 0.0 else 0.0
    offset = min(0.5, max(-0.5, offset))
    bpm_value = min(TEMPO_MAX_BPM, max(TEMPO_MIN_BPM, 60.0 * fps / (lag + offset)))
    stability = min(1.0, max(0.0, centre / acf[0]))
    return Tempo(float(bpm_value), float(stability))


def tempo_bpm(estimate: Tempo) -> float:
    """``tempo_bpm`` (Spec 4.11): the beat rate of the onset envelope, BPM.

    60 fps / (l* + delta) clamped to 40..240, l* the prior-weighted
    autocorrelation peak and delta its parabolic refinement (:func:`tempo`).
    BPM, 40..240, or exactly 0 = no tempo found (silence, steady tones, noise,
    clips under ~0.3 s). Higher is faster; the 120 BPM prior (Ellis 2007)
    halves click tracks above ~170 BPM. ``estimate`` = ``tempo(onsets, fps)``.
    """
    return estimate.bpm


def rhythm_stability(estimate: Tempo) -> float:
    """``rhythm_stability`` (Spec 4.12): self-similarity of the onset envelope one beat apart.

    clamp(A[l*] / A[0], 0, 1) at the unrefined beat lag l* (:func:`tempo`).
    Ratio, 0..1: 1 = a metronome, ~0 = no steady pulse; 0 when there is no
    tempo. ``estimate`` = ``tempo(onsets, fps)``.
    """
    return estimate.stability


def onset_count(onsets: np.ndarray) -> int:
    """Number of onsets: frames t with o_t the first maximum within +-3 frames and
    o_t >= mean(o within +-32 frames) + 1.5 dB (windows truncated at the ends)."""
    o = np.asarray(onsets, dtype=np.float64)
    n = len(o)
    if n == 0:
        return 0
    h = PEAK_HALF_WIDTH
    padded = np.concatenate([np.full(h, -np.inf), o, np.full(h, -np.inf)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * h + 1)
    is_max = (o >= windows.max(axis=1)) & (o > windows[:, :h].max(axis=1))
    c = np.concatenate(([0.0], np.cumsum(o)))
    idx = np.arange(n)
    lo = np.maximum(idx - PEAK_MEAN_HALF_WIDTH, 0)
    hi = np.minimum(idx + PEAK_MEAN_HALF_WIDTH, n - 1)
    local_mean = (c[hi + 1] - c[lo]) / (hi - lo + 1)
    return int(np.count_nonzero(is_max & (o >= local_mean + PEAK_DELTA_DB)))


def transient_density(onsets: np.ndarray, duration_s: float) -> float:
    """``transient_density`` (Spec 4.13): onsets per second of track.

    (number of onsets, :func:`onset_count`) / duration_s over the whole
    track. Onsets per second, 0..50 (at most fps / 4, ~21.5 at 44.1 kHz);
    higher means more note and drum attacks. 0 for silence.
    """
    if duration_s <= 0.0:
        return 0.0
    return onset_count(onsets) / duration_s
