"""Rhythm: spec 4.11 ``tempo_bpm``, 4.12 ``rhythm_stability``, 4.13 ``transient_density``.

All three read an onset-strength envelope (spec 3.4).

The envelope is a log-spectral flux of the mono downmix, decimated to ~11 kHz
by averaging groups of D samples (D = 4 at 44.1/48 kHz, scaled with the
rate), framed with N = 512, hop 128, periodic Hann:

    L_t[k] = 10 log10(P_t[k] + 1e-5)          (dB; the floor mutes ~-77 dBFS noise)
    o_t    = mean_k max(0, L_t[k] - L_{t-1}[k]) (dB per bin), o_0 = 0

at ``fps = sr / D / 128`` frames per second (~86). ``transient_density``
counts its peaks over the whole track.

The tempo (version 4) reads a second envelope of the same frames, the
complex-domain flux (Bello et al. 2004), which also hears a new note whose
level does not rise (a change of pitch or phase):

    c_t = sum_k max(0, | X_t[k] - X_{t-1}[k] u_{t-1}[k] conj(u_{t-2}[k]) | - 0.01),  u = X / |X| (1 where X = 0)

(against the spectrum each bin would have if it kept its level and its phase
advance; the floor mutes rounding errors of steady tones and ~-80 dB hiss),
c_0 = c_1 = 0. :class:`TempoTracker` streams it: windows of 512 frames, hop
128, each thresholded and autocorrelated, scored by a comb over four metrical
levels under a Rayleigh tempo preference; the windows vote for the beat lag.
Three period paths (:class:`PeriodPath`: a Viterbi path over the windows'
comb observations, as Essentia's TempoTapDegara finds its periods) read ``c``,
``o`` and the rise of the high-frequency content (:func:`hfc_flux`); the
tempo is the estimate of those four that most of them agree with
(:func:`agreed_tempo`, the rule of Essentia's multifeature beat tracker), the
comb's on a tie. References: Bello et al., "A tutorial on onset detection in music
signals" (2005) for the flux; Bello, Duxbury, Davies & Sandler, "On the use of
phase and energy for musical onset detection in the complex domain" (2004);
Davies & Plumbley, "Context-dependent beat tracking of musical audio" (2007)
for the threshold, comb and preference, as Essentia's TempoTapDegara
implements them; Stark, Davies & Plumbley, "Real-time beat-synchronous analysis
of musical audio" (2009) for the path; Masri, "Computer modelling of sound for
transformation and synthesis of musical signals" (1996) for the high-frequency
content; Zapata, Davies & Gomez, "Multi-feature beat tracking" (2014) for the
agreement.
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

# tempo (spec 4.11): the comb's vote
TEMPO_WINDOW = 512  # onset frames per analysis window (~5.9 s at 44.1 kHz)
TEMPO_HOP = 128  # a window every ~1.5 s
TEMPO_MIN_FRAMES = 128  # a track (or clip) needs ~1.5 s of envelope for a tempo
THRESHOLD_HALF_WIDTH = 16  # adaptive threshold: the envelope's mean within +-16 frames (~0.19 s)
ONSET_THRESHOLD_S = 0.1  # the comb's input: the envelope less its mean within +-0.1 s (Davies' smoothing)
SALIENCE_THRESHOLD_HALF_WIDTH = 16  # the comb's output less its mean within +-16 lags
COMB_MULTIPLES = 4  # metrical levels summed by the comb: lags tau, 2 tau, 3 tau, 4 tau
RAYLEIGH_BETA_S = 0.5  # tempo preference peak (the Rayleigh mode): 60 / 0.5 = 120 BPM
MIN_PERIODICITY = 2.0  # periodicity index below which there is no tempo (stationary noise: 0.8-1.9)
COMPLEX_FLUX_FLOOR = 0.01  # per bin: below ~-82 dB of a full-scale sine's bin (128), rounding and hiss are no onset
FLAT_WINDOW_VARIANCE = 1e-6  # a thresholded envelope with a variance this small (silence) carries no rhythm


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


def complex_domain_flux(spectra: np.ndarray, previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """c_t = sum_k max(0, |X_t[k] - X_{t-1}[k] u_{t-1}[k] conj(u_{t-2}[k])| - 0.01), u = X / |X| (1 where X = 0).

    ``spectra``: complex spectra of consecutive frames, shaped (T, K); ``previous``: the last (at most
    two) spectra before them. The predicted bin keeps the previous magnitude and the previous phase
    advance: |X_{t-1}| e^{i(2 phi_{t-1} - phi_{t-2})} = X_{t-1} u_{t-1} conj(u_{t-2}). Frames without two
    predecessors (the track's first two) read 0. Returns c (float64, T values) and the new ``previous``.
    """
    stacked = np.concatenate([previous, np.asarray(spectra, dtype=np.complex128)])
    magnitude = np.abs(stacked)
    unit = np.ones_like(stacked)
    np.divide(stacked, magnitude, out=unit, where=magnitude > 0.0)
    held = len(previous)
    c = np.zeros(len(spectra))
    first = max(2, held)  # stacked rows with two predecessors
    if first < len(stacked):
        predicted = stacked[first - 1:-1] * unit[first - 1:-1] * np.conj(unit[first - 2:-2])
        deviation = np.abs(stacked[first:] - predicted) - COMPLEX_FLUX_FLOOR
        c[first - held:] = np.maximum(deviation, 0.0).sum(axis=1)
    return c, stacked[-2:]


class Tempo(NamedTuple):
    """The tempo estimate both ``tempo_bpm`` and ``rhythm_stability`` read (spec 4.11, 4.12)."""

    bpm: float  # clamp(60 fps / (tau* + delta), 40, 240), or 0 = no periodicity
    stability: float  # clamp(Abar[tau*], 0, 1), or 0


NO_TEMPO = Tempo(0.0, 0.0)


def lag_range(fps: float) -> tuple[int, int]:
    """Beat lags searched, onset frames: ceil(60 fps / 240) .. floor(60 fps / 40) (22..129 at 44.1 kHz)."""
    return int(math.ceil(60.0 * fps / TEMPO_MAX_BPM)), int(math.floor(60.0 * fps / TEMPO_MIN_BPM))


def rayleigh_weights(fps: float) -> np.ndarray:
    """rho(tau) = tau / b^2 exp(-tau^2 / (2 b^2)), b = 0.5 fps, for tau in :func:`lag_range`.

    The tempo preference of Davies & Plumbley (2007) (43 frames at 86 fps), b in
    seconds so that it does not depend on the sample rate; its mode is 60 / 0.5 = 120 BPM.
    """
    lo, hi = lag_range(fps)
    tau = np.arange(lo, hi + 1, dtype=np.float64)
    b = RAYLEIGH_BETA_S * fps
    return tau / (b * b) * np.exp(-tau * tau / (2.0 * b * b))


def window_autocorrelation(window: np.ndarray) -> np.ndarray | None:
    """Normalised autocorrelation a[l] of one window of the envelope, l = 0..n-1, or None (flat window).

    1. adaptive threshold: x_t = max(0, o_t - mean(o_s : |s - t| <= 16, s in the window));
    2. d = x - mean(x);  r[l] = sum_{t=0}^{n-1-l} d_t d_{t+l} / (n - l);
    3. a[l] = r[l] / r[0].  None when r[0] <= 1e-6 (silence).
    """
    x = local_mean_threshold(np.asarray(window, dtype=np.float64), THRESHOLD_HALF_WIDTH)
    n = len(x)
    d = x - x.mean()
    size = 1 << int(math.ceil(math.log2(2 * n)))
    spectrum = np.fft.rfft(d, size)
    r = np.fft.irfft(spectrum.real ** 2 + spectrum.imag ** 2, size)[:n] / (n - np.arange(n))
    if r[0] <= FLAT_WINDOW_VARIANCE:
        return None
    return r / r[0]


def local_mean_threshold(x: np.ndarray, half_width: int) -> np.ndarray:
    """max(0, x_t - mean(x_s : |s - t| <= half_width)), the mean over what of that span is inside x."""
    n = len(x)
    c = np.concatenate(([0.0], np.cumsum(x)))
    idx = np.arange(n)
    lo = np.maximum(idx - half_width, 0)
    hi = np.minimum(idx + half_width, n - 1)
    return np.maximum(x - (c[hi + 1] - c[lo]) / (hi - lo + 1), 0.0)


def comb_autocorrelation(window: np.ndarray, fps: float) -> np.ndarray:
    """What Davies' comb reads: r[l] = sum_{t=0}^{n-1-l} x_t x_{t+l} / (n - l), l = 0..n-1, with x the
    window less its mean within +-floor(0.1 fps) frames (:func:`local_mean_threshold`; not mean-removed:
    the comb reads peaks)."""
    x = local_mean_threshold(np.asarray(window, dtype=np.float64), int(math.floor(ONSET_THRESHOLD_S * fps)))
    n = len(x)
    size = 1 << int(math.ceil(math.log2(2 * n)))
    spectrum = np.fft.rfft(x, size)
    return np.fft.irfft(spectrum.real ** 2 + spectrum.imag ** 2, size)[:n] / (n - np.arange(n))


def beat_salience(window: np.ndarray, fps: float) -> np.ndarray | None:
    """One window's vote over beat lags (Davies & Plumbley's comb, as Essentia's TempoTapDegara), or None.

    1. x = :func:`local_mean_threshold` of the envelope, half width floor(0.1 fps) frames;
    2. r[l] = sum_{t=0}^{n-1-l} x_t x_{t+l} / (n - l)  (not mean-removed: the comb reads peaks);
    3. F(tau) = rho(tau) sum_{p=1..4} sum_{v=1-p..p-1} r[p tau + v] / (2p - 1) for tau in
       :func:`lag_range` (terms beyond the window count 0), rho the Rayleigh preference;
    4. G = :func:`local_mean_threshold` of F, half width 16 lags: the peaks stand out of the comb's slope;
    5. the vote is G / sum G (every window weighs the same), None when sum G = 0.
    """
    r = comb_autocorrelation(window, fps)
    n = len(r)
    lo, hi = lag_range(fps)
    tau = np.arange(lo, hi + 1)
    comb = np.zeros(len(tau))
    for p in range(1, COMB_MULTIPLES + 1):
        for v in range(1 - p, p):
            k = p * tau + v
            inside = k < n
            comb[inside] += r[k[inside]] / (2 * p - 1)
    salience = local_mean_threshold(comb * rayleigh_weights(fps), SALIENCE_THRESHOLD_HALF_WIDTH)
    total = float(salience.sum())
    return salience / total if total > 0.0 else None


def refined_lag(mean_a: np.ndarray, lag: int, multiples: int = COMB_MULTIPLES) -> float:
    """The beat lag to a fraction of a frame, read at its highest multiple inside the window.

    With p the largest of 1..multiples such that p lag + p <= 511: k = the first maximum of Abar over
    p lag - (p - 1) .. p lag + (p - 1), delta the parabola's vertex through Abar[k-1..k+1] (|delta| <= 0.5,
    0 when Abar is not concave there); the lag is (k + delta) / p (a peak p beats away pins one beat
    p times finer).
    """
    p = multiples
    while p > 1 and p * lag + p > TEMPO_WINDOW - 1:
        p -= 1
    region = mean_a[p * lag - (p - 1): p * lag + p]
    k = p * lag - (p - 1) + int(np.argmax(region))
    left, centre, right = mean_a[k - 1], mean_a[k], mean_a[k + 1]
    curvature = left - 2.0 * centre + right
    offset = 0.5 * (left - right) / curvature if curvature < 0.0 else 0.0
    return (k + min(0.5, max(-0.5, offset))) / p


# tempo (spec 4.11, version 4): period paths on three envelopes, and the estimate most of them agree with
PATH_MAX_BPM = 208.0  # the period paths search 40..208 BPM (Essentia RhythmExtractor2013's default range)
PATH_COMB_THRESHOLD_HALF_WIDTH = 8  # the comb's output less its (edge-padded) mean within +-8 lags
PATH_TRANSITION_STD = 8.0  # lags a period may drift between windows (one std, at 44100/512 fps)
PATH_BAND = (28, 108)  # the lags a path may take, at 44100/512 fps (0-based, TempoTapDegara's limits)
PATH_OBSERVATION_FLOOR = 1e-6  # no window rules a period out entirely
PATH_BPM_BIN = 2.0  # the path's periods are counted in 2-BPM bins ...
PATH_BPM_TOLERANCE = 5.0  # ... and the periods within 5 BPM of the fullest bin averaged
AGREEMENT_TOLERANCE = 0.04  # two estimates agree within 4%


def hfc_flux(power: np.ndarray, previous: float | None) -> tuple[np.ndarray, float]:
    """h_t = max(0, H_t - H_{t-1}), H_t = sum_k k P_t[k]: the rise of the high-frequency content (Masri 1996).

    ``power``: (T, K) power spectra of consecutive frames; ``previous``: H of the frame before them, or
    None at the track's start (its first frame reads 0). Returns h (float64, T values) and the last H."""
    high = (np.asarray(power, dtype=np.float64) * np.arange(power.shape[1])).sum(axis=1)
    before = np.concatenate(([high[0] if previous is None else previous], high[:-1]))
    return np.maximum(high - before, 0.0), float(high[-1]) if len(high) else previous


def edge_padded_threshold(x: np.ndarray, half_width: int) -> np.ndarray:
    """max(0, x_t - mean(x_s : |s - t| <= half_width)), x extended by its first and last value (Essentia's
    TempoTapDegara.adaptiveThreshold)."""
    padded = np.concatenate([np.full(half_width, x[0]), x, np.full(half_width, x[-1])])
    c = np.concatenate(([0.0], np.cumsum(padded)))
    width = 2 * half_width + 1
    return np.maximum(x - (c[width:] - c[:-width]) / width, 0.0)


def path_lag_limits(fps: float) -> tuple[int, int]:
    """The 0-based lag indices (lag - 1) a period path may observe: 40..208 BPM, within one hop."""
    top = TEMPO_HOP - 1
    return (min(top, int(math.floor(60.0 / PATH_MAX_BPM * fps)) - 1),
            min(top, int(math.ceil(60.0 / TEMPO_MIN_BPM * fps)) - 1))


def path_prior(fps: float) -> np.ndarray:
    """rho(i) for lags i + 1 = 1..128: the Rayleigh preference (mode round(60 fps / 120) lags), sum 1."""
    b2 = float(round(60.0 * fps / 120.0)) ** 2
    tau = np.arange(1, TEMPO_HOP + 1, dtype=np.float64)
    rho = tau / b2 * np.exp(-0.5 * tau * tau / b2)
    return rho / rho.sum()


def path_transitions(fps: float) -> np.ndarray:
    """T[j, i]: a Gaussian over i centred on j (std 8 lags at 44100/512 fps, cut at 4 std), zero outside
    the band of 28..108 (scaled with the frame rate) (Stark, Davies & Plumbley 2009)."""
    scale = fps / (44_100.0 / 512.0)
    std = PATH_TRANSITION_STD * scale
    reach = int(math.ceil(4.0 * std))
    lo = max(0, int(math.floor(PATH_BAND[0] * scale)) - 1)
    hi = min(TEMPO_HOP - 1, int(math.ceil(PATH_BAND[1] * scale)) - 1)
    idx = np.arange(TEMPO_HOP)
    offset = idx[None, :] - idx[:, None]
    t = np.exp(-0.5 * (offset / std) ** 2) / (std * math.sqrt(2.0 * math.pi))
    t[np.abs(offset) > reach] = 0.0
    t[t < 1e-12] = 0.0
    inside = (idx >= lo) & (idx <= hi)
    t[~inside, :] = 0.0
    t[:, ~inside] = 0.0
    return t


def period_observation(window: np.ndarray, fps: float, prior: np.ndarray) -> np.ndarray | None:
    """One window's observation over the lags 1..128 for a period path (Davies' comb as Essentia's
    TempoTapDegara computes it), or None (no rhythm).

    x = the envelope less its mean within +-0.1 s; r its unbiased autocorrelation;
    O[i] = rho(i) sum_{p=1..4} sum_{v=1-p..p-1} r[(i + 1) p - 1 + v] / (2p - 1), for i = 3 .. (n - 3) / 4 - 1;
    O less its edge-padded mean within +-8 lags, zero outside :func:`path_lag_limits`, scaled to sum 1,
    plus :data:`PATH_OBSERVATION_FLOOR`.
    """
    r = comb_autocorrelation(window, fps)
    n = len(r)
    index = np.arange(COMB_MULTIPLES - 1, min(TEMPO_HOP, (n - (COMB_MULTIPLES - 1)) // COMB_MULTIPLES))
    comb = np.zeros(TEMPO_HOP)
    for p in range(1, COMB_MULTIPLES + 1):
        for v in range(1 - p, p):
            comb[index] += prior[index] * r[(index + 1) * p - 1 + v] / (2 * p - 1)
    observed = edge_padded_threshold(comb, PATH_COMB_THRESHOLD_HALF_WIDTH)
    first, last = path_lag_limits(fps)
    observed[: first + 1] = 0.0
    observed[last + 1:] = 0.0
    total = float(observed.sum())
    return observed / total + PATH_OBSERVATION_FLOOR if total > 0.0 else None


class PeriodPath:
    """The most probable sequence of beat periods over the windows (a Viterbi path, Stark et al. 2009),
    fed one observation per window; :meth:`bpm` reads the tempo the path holds most."""

    def __init__(self, fps: float):
        self.fps = fps
        self.prior = path_prior(fps)
        self.transitions = path_transitions(fps)
        self.delta: np.ndarray | None = None
        self.back: list[np.ndarray] = []  # one row of 128 predecessors per window: ~0.1 KB each

    def add(self, observation: np.ndarray) -> None:
        if self.delta is None:
            delta = self.prior * observation
        else:
            weighed = self.delta[None, :] * self.transitions  # [j, i]: from i to j
            best = weighed.argmax(axis=1)
            self.back.append(best.astype(np.uint8))
            delta = weighed[np.arange(TEMPO_HOP), best] * observation
        total = float(delta.sum())
        self.delta = delta / total if total > 0.0 else delta

    def bpm(self) -> float:
        """The mean of the path's tempi (60 fps / lag) within 5 BPM of the fullest 2-BPM bin; 0 without
        windows (RhythmExtractor2013's rule for its tick intervals)."""
        if self.delta is None:
            return 0.0
        state = int(np.argmax(self.delta))
        path = [state]
        for best in reversed(self.back):
            state = int(best[state])
            path.append(state)
        tempi = 60.0 * self.fps / (np.asarray(path, dtype=np.float64) + 1.0)
        fullest = float(np.argmax(np.bincount(np.rint(tempi / PATH_BPM_BIN).astype(int)))) * PATH_BPM_BIN
        near = tempi[np.abs(tempi - fullest) < PATH_BPM_TOLERANCE]
        return float(near.mean()) if len(near) else fullest


def agreed_tempo(first: float, others: list[float]) -> float:
    """The estimate the most of ``[first] + others`` agree with (within 4% of each other, itself counted);
    ``first`` when it has the most (the multifeature rule of Zapata et al. 2014, on tempi)."""
    estimates = [first] + list(others)

    def support(bpm: float) -> int:
        return sum(1 for other in estimates if bpm > 0.0 and other > 0.0
               and abs(bpm / other - 1.0) < AGREEMENT_TOLERANCE)

    counts = [support(bpm) for bpm in estimates]
    return estimates[counts.index(max(counts))]


class TempoTracker:
    """Streaming tempo (spec 4.11): feed the three envelopes, read :meth:`result`.

    Keeps the last :data:`TEMPO_WINDOW` values of each envelope, two sums over lags
    and three period paths, so its memory grows by ~0.4 KB per window (~1.5 s).
    Every :data:`TEMPO_HOP` values, once a full window is there, the complex-domain
    window's normalised autocorrelation ``a_w`` (:func:`window_autocorrelation`) is
    added to ``sum_a`` and its vote (:func:`beat_salience`) to ``votes``, and each
    envelope's window is observed by its period path (:func:`period_observation`).
    """

    ENVELOPES = ("complex", "log", "hfc")

    def __init__(self, fps: float):
        self.fps = fps
        self.lo, self.hi = lag_range(fps)
        self.buffer = np.zeros((len(self.ENVELOPES), 0), dtype=np.float64)
        self.seen = 0  # envelope values fed
        self.windows = 0  # windows that carried rhythm
        self.sum_a = np.zeros(TEMPO_WINDOW)
        self.votes = np.zeros(self.hi - self.lo + 1)
        self.paths = [PeriodPath(fps) for _ in self.ENVELOPES]

    def add(self, complex_flux: np.ndarray, log_flux: np.ndarray, hfc: np.ndarray) -> None:
        values = np.vstack([np.asarray(v, dtype=np.float64) for v in (complex_flux, log_flux, hfc)])
        while values.shape[1]:
            if self.buffer.shape[1] < TEMPO_WINDOW:
                take = TEMPO_WINDOW - self.buffer.shape[1]
            else:  # a full buffer: the next window starts TEMPO_HOP values later
                self.buffer = self.buffer[:, TEMPO_HOP:]
                take = TEMPO_HOP
            part, values = values[:, :take], values[:, take:]
            self.buffer = np.hstack([self.buffer, part])
            self.seen += part.shape[1]
            if self.buffer.shape[1] == TEMPO_WINDOW:
                self._window(self.buffer, full=True)

    def _window(self, window: np.ndarray, full: bool) -> None:
        a = window_autocorrelation(window[0])
        if a is None:
            return
        self.windows += 1
        self.sum_a[: len(a)] += a
        vote = beat_salience(window[0], self.fps)
        if vote is not None:
            self.votes += vote
        if full:  # a period path reads four beats of the longest period: only whole windows
            for path, envelope in zip(self.paths, window):
                observation = period_observation(envelope, self.fps, path.prior)
                if observation is not None:
                    path.add(observation)

    def result(self) -> Tempo:
        """tau* = the lag :func:`agreed_tempo` picks among the comb's vote (the first lag with the most
        votes, refined at a multiple: :func:`refined_lag`) and the three period paths' tempi."""
        if self.seen < TEMPO_WINDOW:  # a clip shorter than one window: the whole clip is the window
            if self.seen < max(TEMPO_MIN_FRAMES, self.hi + 2):
                return NO_TEMPO
            self._window(self.buffer, full=False)
        if self.windows == 0 or float(self.votes.max()) <= 0.0:
            return NO_TEMPO
        mean_a = self.sum_a / self.windows
        if periodicity_index(mean_a, self.seen, self.lo, self.hi) < MIN_PERIODICITY:
            return NO_TEMPO
        lag = self.lo + int(np.argmax(self.votes))
        # a clip shorter than a window: its autocorrelation far from lag 0 rests on too few frames
        beat = refined_lag(mean_a, lag, COMB_MULTIPLES if self.seen >= TEMPO_WINDOW else 1)
        comb_bpm = min(TEMPO_MAX_BPM, max(TEMPO_MIN_BPM, 60.0 * self.fps / beat))
        bpm = agreed_tempo(comb_bpm, [path.bpm() for path in self.paths])
        if bpm != comb_bpm:
            lag = min(self.hi, max(self.lo, int(round(60.0 * self.fps / bpm))))
        bpm = min(TEMPO_MAX_BPM, max(TEMPO_MIN_BPM, bpm))
        return Tempo(float(bpm), float(min(1.0, max(0.0, mean_a[lag]))))


def periodicity_index(mean_a: np.ndarray, frames: int, lo: int, hi: int) -> float:
    """Q = M * mean_{lo <= l <= hi} Abar[l]^2, M = envelope frames: how far the envelope's
    autocorrelation over the beat lags stands above that of noise (a chi-square per lag).

    For stationary noise Abar[l] ~ N(0, ~1/M), so Q ~ 1 (measured 0.9-2.2 for white and
    pink noise, 3 s to 10 min); music with a beat reads 3 to several hundred.
    """
    return float(frames * np.mean(mean_a[lo:hi + 1] ** 2))


def tempo(complex_flux: np.ndarray, log_flux: np.ndarray, hfc: np.ndarray, fps: float) -> Tempo:
    """The tempo of whole envelopes (:class:`TempoTracker` fed in one go)."""
    tracker = TempoTracker(fps)
    tracker.add(complex_flux, log_flux, hfc)
    return tracker.result()


def tempo_bpm(estimate: Tempo) -> float:
    """``tempo_bpm`` (Spec 4.11, version 4): the beat rate the comb and the period paths agree on, BPM.

    Over windows of 512 envelope frames (hop 128), each window votes over beat
    lags with :func:`beat_salience`: Davies & Plumbley's comb over four metrical
    levels of the thresholded envelope's autocorrelation, under a Rayleigh tempo
    preference peaking at 120 BPM, thresholded across lags and scaled to sum 1;
    the beat lag tau* is the lag with the most votes. Octave rule: the comb sums
    r[tau], r[2 tau], r[3 tau], r[4 tau], so a lag whose multiples are all
    periodic (the beat) outscores its half (whose odd multiples are off-beat), and
    the Rayleigh preference decides between the beat and its double.
    The comb's BPM = 60 fps / tau', tau' the lag refined at its highest multiple in
    the window (:func:`refined_lag`); the tempo is the one of it and the three
    period paths' tempi (:class:`PeriodPath`) that most of them agree with within
    4% (:func:`agreed_tempo`; the comb's on a tie), clamped to 40..240; exactly
    0 = no periodicity: no
    window with rhythm (silence, a steady tone), the mean normalised
    autocorrelation Abar no further from 0 than noise's (:func:`periodicity_index`
    < 2: noise), or under ~1.5 s of envelope.
    """
    return estimate.bpm


def rhythm_stability(estimate: Tempo) -> float:
    """``rhythm_stability`` (Spec 4.12, version 4): the beat's salience in the envelope.

    clamp(Abar[tau*], 0, 1): the mean over windows of the envelope's normalised
    autocorrelation one beat apart (at the comb's unrefined lag tau*, or at
    round(60 fps / tempo) when a period path's tempo was chosen, :func:`tempo_bpm`).
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
