"""Tempo and rhythm from an onset-strength envelope.

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


def tempo(onsets: np.ndarray, fps: float) -> tuple[float, float]:
    """(``tempo_bpm``, ``rhythm_stability``).

    tempo_bpm: the lag l in [60 fps / 240, 60 fps / 40] maximising
    max(A[l], 0) * exp(-0.5 log2(bpm(l) / 120)^2), refined by a parabola
    through A[l-1], A[l], A[l+1]; bpm = 60 fps / l. 40..240 BPM, or 0 when the
    envelope has no periodicity or fewer than 2 onsets (see ``onset_count``):
    silence, steady tones and noise, clips under ~0.3 s.

    rhythm_stability: A[l*] / A[0] clipped to 0..1, the envelope's
    self-similarity one beat apart. 1 = a metronome, ~0 = no steady pulse.
    """
    if onset_count(onsets) < MIN_ONSETS_FOR_TEMPO:
        return 0.0, 0.0
    min_lag = int(math.ceil(60.0 * fps / TEMPO_MAX_BPM))
    max_lag = int(math.floor(60.0 * fps / TEMPO_MIN_BPM))
    acf = tempo_autocorrelation(onsets, max_lag + 1)
    if acf[0] <= 0.0:
        return 0.0, 0.0
    lags = np.arange(min_lag, max_lag + 1)
    bpm = 60.0 * fps / lags
    weights = np.exp(-0.5 * np.log2(bpm / TEMPO_PRIOR_BPM) ** 2)
    scores = np.maximum(acf[lags], 0.0) * weights
    best = int(np.argmax(scores))
    if scores[best] <= 0.0:
        return 0.0, 0.0
    lag = int(lags[best])
    left, centre, right = acf[lag - 1], acf[lag], acf[lag + 1]
    curvature = left - 2.0 * centre + right
    offset = 0.5 * (left - right) / curvature if curvature < 0.0 else 0.0
    offset = min(0.5, max(-0.5, offset))
    bpm_value = min(TEMPO_MAX_BPM, max(TEMPO_MIN_BPM, 60.0 * fps / (lag + offset)))
    stability = min(1.0, max(0.0, centre / acf[0]))
    return float(bpm_value), float(stability)


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
    """``transient_density``: onsets per second of track, 1/s (0 for silence)."""
    if duration_s <= 0.0:
        return 0.0
    return onset_count(onsets) / duration_s
