"""Rhythm: spec 4.11 ``tempo_bpm``, 4.12 ``rhythm_stability``, 4.13 ``transient_density``.

All three read an onset-strength envelope (spec 3.4).

The envelope is a log-spectral flux of the mono downmix, decimated to ~11 kHz
by averaging groups of D samples (D = 4 at 44.1/48 kHz, scaled with the
rate), framed with N = 512, hop 128, periodic Hann:

    L_t[k] = 10 log10(P_t[k] + 1e-5)          (dB; the floor mutes ~-77 dBFS noise)
    o_t    = mean_k max(0, L_t[k] - L_{t-1}[k]) (dB per bin), o_0 = 0

at ``fps = sr / D / 128`` frames per second (~86). ``transient_density``
counts its peaks over the whole track; the tempo (version 2) is streamed by
:class:`TempoTracker` in constant memory: windows of 512 frames, hop 256,
each thresholded, autocorrelated and scored by a comb over four metrical
levels under a Rayleigh tempo preference; the windows vote for the beat lag.
References: Bello et al., "A tutorial on onset detection in music signals"
(2005) for the flux; Davies & Plumbley, "Context-dependent beat tracking of
musical audio" (2007) for the threshold, comb and preference.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

FLUX_FLOOR = 1e-5
TEMPO_MIN_BPM = 40.0
TEMPO_MAX_BPM = 240.0
PEAK_HALF_WIDTH = 3  # an onset is the largest value within +-3 frames (~35 ms)
PEAK_MEAN_HALF_WIDTH = 32  # ... and exceeds the mean within +-32 frames (~0.37 s)
PEAK_DELTA_DB = 1.5  # ... by at least this much (dB per bin)

# tempo (spec 4.11, version 2)
TEMPO_WINDOW = 512  # onset frames per analysis window (~5.9 s at 44.1 kHz)
TEMPO_HOP = 256  # windows overlap by half
TEMPO_MIN_FRAMES = 128  # a track (or clip) needs ~1.5 s of envelope for a tempo
THRESHOLD_HALF_WIDTH = 16  # adaptive threshold: the envelope's mean within +-16 frames (~0.19 s)
COMB_MULTIPLES = 4  # metrical levels summed by the comb: lags tau, 2 tau, 3 tau, 4 tau
RAYLEIGH_BETA_S = 0.557  # tempo preference peak (the Rayleigh mode): 60 / 0.557 = 107.7 BPM
MIN_PERIODICITY = 2.0  # periodicity index below which there is no tempo (stationary noise: 0.9-2.2)
FLAT_WINDOW_VARIANCE = 1e-4  # (dB per bin)^2: a thresholded envelope this flat (a steady tone) carries no rhythm


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


class Tempo(NamedTuple):
    """The tempo estimate both ``tempo_bpm`` and ``rhythm_stability`` read (spec 4.11, 4.12)."""

    bpm: float  # clamp(60 fps / (tau* + delta), 40, 240), or 0 = no periodicity
    stability: float  # clamp(Abar[tau*], 0, 1), or 0


NO_TEMPO = Tempo(0.0, 0.0)


def lag_range(fps: float) -> tuple[int, int]:
    """Beat lags searched, onset frames: ceil(60 fps / 240) .. floor(60 fps / 40) (22..129 at 44.1 kHz)."""
    return int(math.ceil(60.0 * fps / TEMPO_MAX_BPM)), int(math.floor(60.0 * fps / TEMPO_MIN_BPM))


def rayleigh_weights(fps: float) -> np.ndarray:
    """rho(tau) = tau / b^2 exp(-tau^2 / (2 b^2)), b = 0.557 fps, for tau in :func:`lag_range`.

    The tempo preference of Davies & Plumbley (2007), b in seconds so that it
    does not depend on the sample rate; its mode is 60 / 0.557 = 107.7 BPM.
    """
    lo, hi = lag_range(fps)
    tau = np.arange(lo, hi + 1, dtype=np.float64)
    b = RAYLEIGH_BETA_S * fps
    return tau / (b * b) * np.exp(-tau * tau / (2.0 * b * b))


def window_autocorrelation(window: np.ndarray) -> np.ndarray | None:
    """Normalised autocorrelation a[l] of one window of the envelope, l = 0..n-1, or None (flat window).

    1. adaptive threshold: x_t = max(0, o_t - mean(o_s : |s - t| <= 16, s in the window));
    2. d = x - mean(x);  r[l] = sum_{t=0}^{n-1-l} d_t d_{t+l} / (n - l);
    3. a[l] = r[l] / r[0].  None when r[0] <= 1e-4 (dB per bin)^2 (a steady tone, silence).
    """
    o = np.asarray(window, dtype=np.float64)
    n = len(o)
    h = THRESHOLD_HALF_WIDTH
    c = np.concatenate(([0.0], np.cumsum(o)))
    idx = np.arange(n)
    lo = np.maximum(idx - h, 0)
    hi = np.minimum(idx + h, n - 1)
    x = np.maximum(o - (c[hi + 1] - c[lo]) / (hi - lo + 1), 0.0)
    d = x - x.mean()
    size = 1 << int(math.ceil(math.log2(2 * n)))
    spectrum = np.fft.rfft(d, size)
    r = np.fft.irfft(spectrum.real ** 2 + spectrum.imag ** 2, size)[:n] / (n - idx)
    if r[0] <= FLAT_WINDOW_VARIANCE:
        return None
    return r / r[0]


def comb_salience(a: np.ndarray, fps: float) -> np.ndarray:
    """Davies & Plumbley's comb over metrical levels, times the tempo preference, per beat lag.

    F(tau) = rho(tau) * sum_{p=1..4} sum_{v=1-p..p-1} max(0, a[p tau + v]) / (2p - 1)
    for tau in :func:`lag_range` with a[tau] > 0, and F(tau) = 0 where a[tau] <= 0 (a
    beat must recur one beat later: without this, half of a slow beat would win on
    its even multiples alone); terms with p tau + v beyond the window's lags count 0.
    """
    lo, hi = lag_range(fps)
    tau = np.arange(lo, hi + 1)
    positive = np.maximum(a, 0.0)
    total = np.zeros(len(tau))
    for p in range(1, COMB_MULTIPLES + 1):
        for v in range(1 - p, p):
            k = p * tau + v
            inside = k < len(a)
            total[inside] += positive[k[inside]] / (2 * p - 1)
    return np.where(a[tau] > 0.0, total * rayleigh_weights(fps), 0.0)


class TempoTracker:
    """Streaming tempo (spec 4.11): feed onset-envelope values, read :meth:`result`.

    Keeps the last :data:`TEMPO_WINDOW` envelope values and two sums over lags, so
    its memory does not grow with the track. Every :data:`TEMPO_HOP` values, once a
    full window is there, the window's normalised autocorrelation ``a_w``
    (:func:`window_autocorrelation`) is added to ``sum_a`` and its comb salience
    ``F_w`` (:func:`comb_salience`), scaled to a maximum of 1, to ``votes``.
    """

    def __init__(self, fps: float):
        self.fps = fps
        self.lo, self.hi = lag_range(fps)
        self.buffer = np.zeros(0, dtype=np.float64)
        self.seen = 0  # envelope values fed
        self.windows = 0  # windows that carried rhythm
        self.sum_a = np.zeros(TEMPO_WINDOW)
        self.votes = np.zeros(self.hi - self.lo + 1)

    def add(self, onsets: np.ndarray) -> None:
        values = np.asarray(onsets, dtype=np.float64)
        while len(values):
            if len(self.buffer) < TEMPO_WINDOW:
                take = TEMPO_WINDOW - len(self.buffer)
            else:  # a full buffer: the next window starts TEMPO_HOP values later
                self.buffer = self.buffer[TEMPO_HOP:]
                take = TEMPO_HOP
            part, values = values[:take], values[take:]
            self.buffer = np.concatenate([self.buffer, part])
            self.seen += len(part)
            if len(self.buffer) == TEMPO_WINDOW:
                self._window(self.buffer)

    def _window(self, window: np.ndarray) -> None:
        a = window_autocorrelation(window)
        if a is None:
            return
        self.windows += 1
        self.sum_a[: len(a)] += a
        salience = comb_salience(a, self.fps)
        top = float(salience.max())
        if top > 0.0:
            self.votes += salience / top

    def result(self) -> Tempo:
        """tau* = the first lag with the most votes; BPM refined by a parabola through Abar."""
        if self.seen < TEMPO_WINDOW:  # a clip shorter than one window: the whole clip is the window
            if self.seen < max(TEMPO_MIN_FRAMES, self.hi + 2):
                return NO_TEMPO
            self._window(self.buffer)
        if self.windows == 0 or float(self.votes.max()) <= 0.0:
            return NO_TEMPO
        mean_a = self.sum_a / self.windows
        if periodicity_index(mean_a, self.seen, self.lo, self.hi) < MIN_PERIODICITY:
            return NO_TEMPO
        lag = self.lo + int(np.argmax(self.votes))
        centre = mean_a[lag]
        left, right = mean_a[lag - 1], mean_a[lag + 1]
        curvature = left - 2.0 * centre + right
        offset = 0.5 * (left - right) / curvature if curvature < 0.0 else 0.0
        offset = min(0.5, max(-0.5, offset))
        bpm = min(TEMPO_MAX_BPM, max(TEMPO_MIN_BPM, 60.0 * self.fps / (lag + offset)))
        return Tempo(float(bpm), float(min(1.0, max(0.0, centre))))


def periodicity_index(mean_a: np.ndarray, frames: int, lo: int, hi: int) -> float:
    """Q = M * mean_{lo <= l <= hi} Abar[l]^2, M = envelope frames: how far the envelope's
    autocorrelation over the beat lags stands above that of noise (a chi-square per lag).

    For stationary noise Abar[l] ~ N(0, ~1/M), so Q ~ 1 (measured 0.9-2.2 for white and
    pink noise, 3 s to 10 min); music with a beat reads 3 to several hundred.
    """
    return float(frames * np.mean(mean_a[lo:hi + 1] ** 2))


def tempo(onsets: np.ndarray, fps: float) -> Tempo:
    """The tempo of a whole envelope (:class:`TempoTracker` fed in one go)."""
    tracker = TempoTracker(fps)
    tracker.add(onsets)
    return tracker.result()


def tempo_bpm(estimate: Tempo) -> float:
    """``tempo_bpm`` (Spec 4.11, version 2): the beat rate of the onset envelope, BPM.

    Over windows of 512 envelope frames (hop 256), each window's normalised
    autocorrelation of the adaptively thresholded envelope a_w
    (:func:`window_autocorrelation`) feeds a comb over four metrical levels
    weighted by a Rayleigh tempo preference peaking at 107.7 BPM
    (:func:`comb_salience`, Davies & Plumbley 2007); each window votes with its
    salience scaled to a maximum of 1, and the beat lag tau* is the lag with
    the most votes. Octave rule: the comb sums a[tau], a[2 tau], a[3 tau],
    a[4 tau], so a lag whose multiples are all periodic (the beat) outscores
    its half (whose odd multiples are off-beat) and the Rayleigh preference
    decides between the beat and its double. BPM = 60 fps / (tau* + delta),
    delta the parabolic refinement on the mean autocorrelation Abar, clamped to
    40..240; exactly 0 = no periodicity: no window with rhythm (silence, steady
    tones), the envelope's autocorrelation no further from 0 than noise's
    (:func:`periodicity_index` < 2: noise), or under ~1.5 s of envelope.
    """
    return estimate.bpm


def rhythm_stability(estimate: Tempo) -> float:
    """``rhythm_stability`` (Spec 4.12, version 2): the beat's salience in the envelope.

    clamp(Abar[tau*], 0, 1): the mean over windows of the envelope's normalised
    autocorrelation one beat apart (at the unrefined lag tau*, :func:`tempo_bpm`).
    Ratio, 0..1: 1 = a metronome, ~0 = no steady pulse; 0 when there is no tempo.
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
