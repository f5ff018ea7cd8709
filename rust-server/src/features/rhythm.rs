//! Rhythm: spec 4.11 `tempo_bpm`, 4.12 `rhythm_stability`, 4.13
//! `transient_density`, from the onset envelope of spec 3.4
//! (`pyengine/features/rhythm.py`).
//!
//! o_t = mean_k max(0, L_t[k] - L_{t-1}[k]) with L = 10 log10(P + 1e-5), at
//! fps = sr / D / 128 frames per second, for `transient_density`. `tempo_bpm`
//! and `rhythm_stability` come from one streaming tempo estimate
//! ([`TempoTracker`], version 4): a comb vote on the complex-domain flux of
//! the same frames ([`ComplexFlux`]) and three period paths ([`PeriodPath`]),
//! on that flux, on `o` and on the high-frequency-content flux ([`HfcFlux`]);
//! the tempo is the estimate most of the four agree with ([`agreed_tempo`]).

use super::fastmath;
use realfft::num_complex::Complex;

pub const FLUX_FLOOR: f32 = 1e-5;
pub const TEMPO_MIN_BPM: f64 = 40.0;
pub const TEMPO_MAX_BPM: f64 = 240.0;
pub const PEAK_HALF_WIDTH: usize = 3;
pub const PEAK_MEAN_HALF_WIDTH: usize = 32;
pub const PEAK_DELTA_DB: f64 = 1.5;
/// Onset frames per tempo window (~5.9 s at 44.1 kHz), and the hop between windows.
pub const TEMPO_WINDOW: usize = 512;
pub const TEMPO_HOP: usize = 128;
/// A clip shorter than one window needs this many envelope frames (and lag range + 2).
pub const TEMPO_MIN_FRAMES: usize = 128;
/// Adaptive threshold: the envelope's mean within +-16 frames.
pub const THRESHOLD_HALF_WIDTH: usize = 16;
/// The comb's input: the envelope less its mean within +-0.1 s (Davies' smoothing).
pub const ONSET_THRESHOLD_S: f64 = 0.1;
/// The comb's output less its mean within +-16 lags.
pub const SALIENCE_THRESHOLD_HALF_WIDTH: usize = 16;
/// The comb sums lags tau, 2 tau, 3 tau, 4 tau.
pub const COMB_MULTIPLES: usize = 4;
/// Rayleigh tempo preference parameter, seconds (mode 60 / 0.5 = 120 BPM).
pub const RAYLEIGH_BETA_S: f64 = 0.5;
/// Periodicity index below which there is no tempo (stationary noise reads 0.8-1.9).
pub const MIN_PERIODICITY: f64 = 2.0;
/// Per bin: deviations under this (~-82 dB of a full-scale sine's bin) are rounding or hiss, no onset.
pub const COMPLEX_FLUX_FLOOR: f64 = 0.01;
/// A window whose thresholded envelope has at most this variance (silence) carries no rhythm.
pub const FLAT_WINDOW_VARIANCE: f64 = 1e-6;

/// Version 4: period paths search 40..208 BPM (Essentia RhythmExtractor2013's default range).
pub const PATH_MAX_BPM: f64 = 208.0;
/// The path comb's output less its edge-padded mean within +-8 lags.
pub const PATH_COMB_THRESHOLD_HALF_WIDTH: usize = 8;
/// Lags a period may drift between windows (one std, at 44100/512 fps).
pub const PATH_TRANSITION_STD: f64 = 8.0;
/// The 0-based lags a path may take, at 44100/512 fps (TempoTapDegara's limits).
pub const PATH_BAND: (f64, f64) = (28.0, 108.0);
/// No window rules a period out entirely.
pub const PATH_OBSERVATION_FLOOR: f64 = 1e-6;
/// A path's tempi are counted in 2-BPM bins, and those within 5 BPM of the fullest averaged.
pub const PATH_BPM_BIN: f64 = 2.0;
pub const PATH_BPM_TOLERANCE: f64 = 5.0;
/// Two estimates agree within 4%.
pub const AGREEMENT_TOLERANCE: f64 = 0.04;

/// L = 10 log10(P + 1e-5), dB.
#[inline(always)]
pub fn log_power(power: &[f32], out: &mut [f32]) {
    const DB_PER_NEPER: f32 = 10.0 / std::f32::consts::LN_10;
    for (o, &p) in out.iter_mut().zip(power) {
        *o = DB_PER_NEPER * super::fastmath::ln(p + FLUX_FLOOR);
    }
}

/// Flux between two log spectra: mean_k max(0, cur - prev).
#[inline(always)]
pub fn spectral_flux(current: &[f32], previous: &[f32]) -> f64 {
    let sum = fastmath::sum_pairs(current, previous, |c, p| (c - p).max(0.0) as f64);
    sum / current.len() as f64
}

/// The complex-domain flux, streamed frame by frame:
/// `c_t = sum_k max(0, |X_t[k] - X_{t-1}[k] u_{t-1}[k] conj(u_{t-2}[k])| - 0.01)`, `u = X / |X|`
/// (1 where X = 0): the deviation from the bin that kept its level and its phase advance. The track's
/// first two frames read 0.
///
/// Per bin in f32, the spectrum's own precision (the sum over bins in f64): two square roots and a
/// division per bin were a tenth of the features' time in f64, and f32 does twice as many per
/// instruction. Its rounding (~1e-7 of a bin's magnitude) is far under the 0.01 floor; on 324 real
/// tracks the tempo moved by under 1e-6 BPM against the f64 form (the Python engine's).
pub struct ComplexFlux {
    /// `X_{t-1} u_{t-1} conj(u_{t-2})` per bin, real and imaginary parts: the next frame's prediction.
    predicted_re: Vec<f32>,
    predicted_im: Vec<f32>,
    /// `u_{t-1}` per bin.
    unit_re: Vec<f32>,
    unit_im: Vec<f32>,
    /// `|X_t - predicted|` per bin of the frame in hand.
    deviation: Vec<f32>,
    held: usize,
}

impl ComplexFlux {
    pub fn new(bins: usize) -> Self {
        ComplexFlux {
            predicted_re: vec![0.0; bins],
            predicted_im: vec![0.0; bins],
            unit_re: vec![1.0; bins],
            unit_im: vec![0.0; bins],
            deviation: vec![0.0; bins],
            held: 0,
        }
    }

    /// `c_t` of the next frame's spectrum.
    #[inline(always)]
    pub fn push(&mut self, spectrum: &[Complex<f32>]) -> f64 {
        let n = spectrum.len().min(self.deviation.len());
        let (pr, pi) = (&mut self.predicted_re[..n], &mut self.predicted_im[..n]);
        let (ur, ui) = (&mut self.unit_re[..n], &mut self.unit_im[..n]);
        let deviation = &mut self.deviation[..n];
        // One branch-free pass over struct-of-arrays so the compiler vectorises it; |z| is
        // sqrt(re^2 + im^2), not libm's hypot (spectra are far from overflow, and hypot was a
        // quarter of the engine's time).
        for k in 0..n {
            let (re, im) = (spectrum[k].re, spectrum[k].im);
            let (dr, di) = (re - pr[k], im - pi[k]);
            deviation[k] = (dr * dr + di * di).sqrt();
            let magnitude = (re * re + im * im).sqrt();
            let nonzero = magnitude > 0.0;
            // one division per bin (the divider is this loop's bottleneck)
            let inverse = 1.0 / if nonzero { magnitude } else { 1.0 };
            let (vr, vi) = (if nonzero { re * inverse } else { 1.0 }, im * inverse);
            // the rotation u_t conj(u_{t-1}); the prediction for t + 1 is X_t turned by it
            let (rr, ri) = (vr * ur[k] + vi * ui[k], vi * ur[k] - vr * ui[k]);
            pr[k] = re * rr - im * ri;
            pi[k] = re * ri + im * rr;
            ur[k] = vr;
            ui[k] = vi;
        }
        let ready = self.held >= 2;
        self.held = (self.held + 1).min(2);
        if !ready {
            return 0.0;
        }
        fastmath::sum_by(deviation, |d| (d as f64 - COMPLEX_FLUX_FLOOR).max(0.0))
    }
}

/// The tempo estimate both `tempo_bpm` and `rhythm_stability` read (4.11, 4.12).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tempo {
    /// `clamp(60 fps / (tau* + delta), 40, 240)`, or 0 = no periodicity.
    pub bpm: f64,
    /// `clamp(Abar[tau*], 0, 1)`, or 0.
    pub stability: f64,
}

impl Tempo {
    pub const NONE: Tempo = Tempo { bpm: 0.0, stability: 0.0 };
}

/// Beat lags searched: `ceil(60 fps / 240) ..= floor(60 fps / 40)` (22..=129 at 44.1 kHz).
pub fn lag_range(fps: f64) -> (usize, usize) {
    ((60.0 * fps / TEMPO_MAX_BPM).ceil() as usize, (60.0 * fps / TEMPO_MIN_BPM).floor() as usize)
}

/// Normalised autocorrelation `a[l] = r[l] / r[0]` (l = 0..n-1) of one window of the envelope after
/// the adaptive threshold `x_t = max(0, o_t - mean(o_s, |s - t| <= 16))` and mean removal, with
/// `r[l] = sum_t d_t d_{t+l} / (n - l)`; `None` when `r[0] <= 1e-6` (silence).
#[inline(always)]
pub fn window_autocorrelation(window: &[f64], out: &mut Vec<f64>) -> bool {
    let n = window.len();
    let mut d = local_mean_threshold(window, THRESHOLD_HALF_WIDTH);
    let mean = d.iter().sum::<f64>() / n as f64;
    d.iter_mut().for_each(|v| *v -= mean);
    out.clear();
    out.resize(n, 0.0);
    fastmath::autocorrelation(&d, out);
    for (lag, r) in out.iter_mut().enumerate() {
        *r /= (n - lag) as f64;
    }
    let r0 = out[0];
    if r0 <= FLAT_WINDOW_VARIANCE {
        return false;
    }
    out.iter_mut().for_each(|v| *v /= r0);
    true
}

/// `max(0, x_t - mean(x_s, |s - t| <= h))`, the mean over what of that span is inside `x`.
#[inline(always)]
pub fn local_mean_threshold(x: &[f64], h: usize) -> Vec<f64> {
    let n = x.len();
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0.0);
    let mut acc = 0.0;
    for &v in x {
        acc += v;
        prefix.push(acc);
    }
    (0..n)
        .map(|t| {
            let lo = t.saturating_sub(h);
            let hi = (t + h).min(n - 1);
            (x[t] - (prefix[hi + 1] - prefix[lo]) / (hi - lo + 1) as f64).max(0.0)
        })
        .collect()
}

/// One window's vote over the beat lags of [`lag_range`] (Davies & Plumbley's comb, as Essentia's
/// TempoTapDegara): `x` = the envelope thresholded over +-floor(0.1 fps) frames; `r[l] = sum_t x_t
/// x_{t+l} / (n - l)`; `F(tau) = rho(tau) sum_{p=1..4} sum_{v=1-p..p-1} r[p tau + v] / (2p - 1)`
/// (terms beyond the window count 0), `rho(tau) = tau / b^2 exp(-tau^2 / (2 b^2))`, `b = 0.5 fps`;
/// `G` = `F` thresholded over +-16 lags; the vote is `G / sum G`. False (no vote) when `sum G = 0`.
#[inline(always)]
pub fn beat_salience(window: &[f64], fps: f64, out: &mut Vec<f64>) -> bool {
    let n = window.len();
    let x = local_mean_threshold(window, (ONSET_THRESHOLD_S * fps).floor() as usize);
    let (lo, hi) = lag_range(fps);
    let mut r = vec![0.0; n];
    // only the lags the comb reads: p tau + v <= 4 hi + 3
    let max_lag = (COMB_MULTIPLES * hi + COMB_MULTIPLES - 1).min(n - 1);
    fastmath::autocorrelation(&x, &mut r[..=max_lag]);
    for (lag, slot) in r.iter_mut().enumerate().take(max_lag + 1) {
        *slot /= (n - lag) as f64;
    }
    let b = RAYLEIGH_BETA_S * fps;
    let comb: Vec<f64> = (lo..=hi)
        .map(|tau| {
            let mut total = 0.0;
            for p in 1..=COMB_MULTIPLES {
                for v in (1 - p as i64)..(p as i64) {
                    let k = (p * tau) as i64 + v;
                    if k >= 0 && (k as usize) < n {
                        total += r[k as usize] / (2 * p - 1) as f64;
                    }
                }
            }
            let t = tau as f64;
            total * (t / (b * b) * (-t * t / (2.0 * b * b)).exp())
        })
        .collect();
    let salience = local_mean_threshold(&comb, SALIENCE_THRESHOLD_HALF_WIDTH);
    let total: f64 = salience.iter().sum();
    out.clear();
    if total <= 0.0 {
        return false;
    }
    out.extend(salience.iter().map(|g| g / total));
    true
}

/// The beat lag to a fraction of a frame, read at its highest multiple inside the window: with `p` the
/// largest of 1..=`multiples` with `p lag + p <= 511`, `k` = the first maximum of `Abar` over
/// `p lag - (p - 1) ..= p lag + (p - 1)`, `delta` the parabola's vertex through `Abar[k-1..=k+1]`
/// (|delta| <= 0.5; 0 where `Abar` is not concave); the lag is `(k + delta) / p`.
pub fn refined_lag(mean_a: &[f64], lag: usize, multiples: usize) -> f64 {
    let mut p = multiples;
    while p > 1 && p * lag + p > TEMPO_WINDOW - 1 {
        p -= 1;
    }
    let start = p * lag - (p - 1);
    let mut k = start;
    for i in start..=p * lag + (p - 1) {
        if mean_a[i] > mean_a[k] {
            k = i;
        }
    }
    let (left, centre, right) = (mean_a[k - 1], mean_a[k], mean_a[k + 1]);
    let curvature = left - 2.0 * centre + right;
    let offset = if curvature < 0.0 { 0.5 * (left - right) / curvature } else { 0.0 };
    (k as f64 + offset.clamp(-0.5, 0.5)) / p as f64
}

/// `Q = M mean_{lo<=l<=hi} Abar[l]^2` (M = envelope frames): ~1 for stationary noise.
pub fn periodicity_index(mean_a: &[f64], frames: usize, lo: usize, hi: usize) -> f64 {
    let s: f64 = mean_a[lo..=hi].iter().map(|v| v * v).sum();
    frames as f64 * s / (hi - lo + 1) as f64
}

/// The rise of the high-frequency content, streamed frame by frame (Masri 1996):
/// `h_t = max(0, H_t - H_{t-1})`, `H_t = sum_k k P_t[k]`; the track's first frame reads 0.
#[derive(Default)]
pub struct HfcFlux {
    previous: Option<f64>,
}

impl HfcFlux {
    #[inline(always)]
    pub fn push(&mut self, power: &[f32]) -> f64 {
        // four independent sums: one chain of 257 dependent adds was a fortieth of the features' time
        let mut partial = [0.0f64; 4];
        let chunks = power.chunks_exact(4);
        let tail_start = power.len() - chunks.remainder().len();
        for (c, chunk) in chunks.enumerate() {
            for (i, &p) in chunk.iter().enumerate() {
                partial[i] += (4 * c + i) as f64 * p as f64;
            }
        }
        let tail: f64 = power[tail_start..].iter().enumerate().map(|(i, &p)| (tail_start + i) as f64 * p as f64).sum();
        let high = (partial[0] + partial[1]) + (partial[2] + partial[3]) + tail;
        let before = self.previous.unwrap_or(high);
        self.previous = Some(high);
        (high - before).max(0.0)
    }
}

/// `max(0, x_t - mean(x_s, |s - t| <= h))`, `x` extended by its first and last value (Essentia's
/// TempoTapDegara adaptiveThreshold).
pub fn edge_padded_threshold(x: &[f64], h: usize) -> Vec<f64> {
    let n = x.len();
    let width = 2 * h + 1;
    let padded = std::iter::repeat(x[0]).take(h).chain(x.iter().copied()).chain(std::iter::repeat(x[n - 1]).take(h));
    let mut prefix = Vec::with_capacity(n + 2 * h + 1);
    prefix.push(0.0);
    let mut acc = 0.0;
    for v in padded {
        acc += v;
        prefix.push(acc);
    }
    (0..n).map(|t| (x[t] - (prefix[t + width] - prefix[t]) / width as f64).max(0.0)).collect()
}

/// The 0-based lag indices (lag - 1) a period path observes: 40..208 BPM, within one hop.
pub fn path_lag_limits(fps: f64) -> (usize, usize) {
    let top = TEMPO_HOP as i64 - 1;
    let first = ((60.0 / PATH_MAX_BPM * fps).floor() as i64 - 1).min(top).max(0);
    let last = ((60.0 / TEMPO_MIN_BPM * fps).ceil() as i64 - 1).min(top).max(0);
    (first as usize, last as usize)
}

/// `rho(i)` for lags `i + 1 = 1..=128`: the Rayleigh preference, mode `round(60 fps / 120)` lags, sum 1.
pub fn path_prior(fps: f64) -> Vec<f64> {
    let b2 = (60.0 * fps / 120.0).round().powi(2);
    let rho: Vec<f64> = (1..=TEMPO_HOP).map(|t| t as f64 / b2 * (-0.5 * (t * t) as f64 / b2).exp()).collect();
    let total: f64 = rho.iter().sum();
    rho.iter().map(|r| r / total).collect()
}

/// `T[j][i]` (row-major, 128 x 128): a Gaussian over `i` centred on `j` (std 8 lags at 44100/512 fps,
/// cut at 4 std), zero outside the band 28..108 scaled with the frame rate (Stark et al. 2009).
/// The band of lag indices a path may take and the reach of one transition, `ceil(4 std)`.
fn path_band(fps: f64) -> ((usize, usize), usize) {
    let scale = fps / (44_100.0 / 512.0);
    let reach = (4.0 * PATH_TRANSITION_STD * scale).ceil() as usize;
    let lo = ((PATH_BAND.0 * scale).floor() as i64 - 1).max(0) as usize;
    let hi = ((PATH_BAND.1 * scale).ceil() as i64 - 1).clamp(0, TEMPO_HOP as i64 - 1) as usize;
    ((lo, hi), reach)
}

pub fn path_transitions(fps: f64) -> Vec<f64> {
    let scale = fps / (44_100.0 / 512.0);
    let std = PATH_TRANSITION_STD * scale;
    let ((lo, hi), reach) = path_band(fps);
    let (lo, hi, reach) = (lo as i64, hi as i64, reach as i64);
    let norm = std * (2.0 * std::f64::consts::PI).sqrt();
    let mut t = vec![0.0; TEMPO_HOP * TEMPO_HOP];
    for j in lo..=hi {
        for i in lo..=hi {
            let offset = i - j;
            if offset.abs() > reach {
                continue;
            }
            let g = (-0.5 * (offset as f64 / std).powi(2)).exp() / norm;
            t[j as usize * TEMPO_HOP + i as usize] = if g < 1e-12 { 0.0 } else { g };
        }
    }
    t
}

/// One window's observation over the lags 1..=128 for a period path (Davies' comb as Essentia's
/// TempoTapDegara computes it), or `None` (no rhythm): `x` = the envelope less its mean within
/// +-0.1 s, `r` its unbiased autocorrelation, `O[i] = rho(i) sum_{p=1..4} sum_{v=1-p..p-1}
/// r[(i + 1) p - 1 + v] / (2p - 1)` for `i = 3 ..= (n - 3) / 4 - 1`; `O` less its edge-padded mean
/// within +-8 lags, zero outside [`path_lag_limits`], scaled to sum 1, plus the floor.
pub fn period_observation(
    window: &[f64],
    fps: f64,
    prior: &[f64],
    autocorrelation: &mut super::fft::Autocorrelation,
) -> Option<Vec<f64>> {
    let n = window.len();
    let x = local_mean_threshold(window, (ONSET_THRESHOLD_S * fps).floor() as usize);
    let mut r = vec![0.0; n];
    autocorrelation.compute(&x, &mut r);
    for (lag, slot) in r.iter_mut().enumerate() {
        *slot /= (n - lag) as f64;
    }
    let end = TEMPO_HOP.min((n - (COMB_MULTIPLES - 1)) / COMB_MULTIPLES);
    let mut comb = vec![0.0; TEMPO_HOP];
    for p in 1..=COMB_MULTIPLES {
        for v in (1 - p as i64)..(p as i64) {
            for (i, slot) in comb.iter_mut().enumerate().take(end).skip(COMB_MULTIPLES - 1) {
                let k = (((i + 1) * p) as i64 - 1 + v) as usize;
                *slot += prior[i] * r[k] / (2 * p - 1) as f64;
            }
        }
    }
    let mut observed = edge_padded_threshold(&comb, PATH_COMB_THRESHOLD_HALF_WIDTH);
    let (first, last) = path_lag_limits(fps);
    for (i, o) in observed.iter_mut().enumerate() {
        if i <= first || i > last {
            *o = 0.0;
        }
    }
    let total: f64 = observed.iter().sum();
    if total <= 0.0 {
        return None;
    }
    observed.iter_mut().for_each(|o| *o = *o / total + PATH_OBSERVATION_FLOOR);
    Some(observed)
}

/// The most probable sequence of beat periods over the windows (a Viterbi path, Stark et al. 2009),
/// fed one observation per window; [`PeriodPath::bpm`] reads the tempo the path holds most.
pub struct PeriodPath {
    fps: f64,
    prior: Vec<f64>,
    transitions: Vec<f64>,
    /// Where `transitions` can be non-zero: the band of lags, and how far a period moves.
    band: (usize, usize),
    reach: usize,
    delta: Option<Vec<f64>>,
    /// One row of 128 predecessors per window after the first.
    back: Vec<[u8; TEMPO_HOP]>,
}

impl PeriodPath {
    pub fn new(fps: f64) -> Self {
        let (band, reach) = path_band(fps);
        PeriodPath { fps, prior: path_prior(fps), transitions: path_transitions(fps), band, reach, delta: None, back: Vec::new() }
    }

    pub fn add(&mut self, observation: &[f64]) {
        let mut delta = match &self.delta {
            None => self.prior.iter().zip(observation).map(|(p, o)| p * o).collect::<Vec<f64>>(),
            Some(previous) => {
                let mut row = [0u8; TEMPO_HOP];
                let mut next = vec![0.0; TEMPO_HOP];
                // T(j, i) is 0 outside the band and beyond the reach, and every product is >= 0: the
                // first maximum over that neighbourhood, if positive, is the first over all i, else i = 0
                let (lo, hi) = self.band;
                for j in lo..=hi {
                    let weights = &self.transitions[j * TEMPO_HOP..(j + 1) * TEMPO_HOP];
                    let (mut best, mut top) = (0usize, 0.0);
                    for i in j.saturating_sub(self.reach).max(lo)..=(j + self.reach).min(hi) {
                        let w = previous[i] * weights[i];
                        if w > top {
                            best = i;
                            top = w;
                        }
                    }
                    row[j] = best as u8;
                    next[j] = top * observation[j];
                }
                self.back.push(row);
                next
            }
        };
        let total: f64 = delta.iter().sum();
        if total > 0.0 {
            delta.iter_mut().for_each(|d| *d /= total);
        }
        self.delta = Some(delta);
    }

    /// The mean of the path's tempi (`60 fps / lag`) within 5 BPM of the fullest 2-BPM bin; 0 without
    /// windows (RhythmExtractor2013's rule for its tick intervals).
    pub fn bpm(&self) -> f64 {
        let Some(delta) = &self.delta else { return 0.0 };
        let mut state = first_max(delta);
        let mut tempi = Vec::with_capacity(self.back.len() + 1);
        tempi.push(60.0 * self.fps / (state + 1) as f64);
        for row in self.back.iter().rev() {
            state = row[state] as usize;
            tempi.push(60.0 * self.fps / (state + 1) as f64);
        }
        let bins: Vec<usize> = tempi.iter().map(|t| (t / PATH_BPM_BIN).round_ties_even() as usize).collect();
        let mut counts = vec![0usize; bins.iter().copied().max().unwrap_or(0) + 1];
        bins.iter().for_each(|&b| counts[b] += 1);
        let fullest = first_max(&counts) as f64 * PATH_BPM_BIN;
        let near: Vec<f64> = tempi.iter().copied().filter(|t| (t - fullest).abs() < PATH_BPM_TOLERANCE).collect();
        if near.is_empty() {
            fullest
        } else {
            near.iter().sum::<f64>() / near.len() as f64
        }
    }
}

/// The index of the first largest value (numpy's argmax).
fn first_max<T: PartialOrd>(values: &[T]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// The estimate the most of `first` and `others` agree with (within 4% of each other, itself
/// counted); `first` when it has the most (the multifeature rule of Zapata et al. 2014, on tempi).
pub fn agreed_tempo(first: f64, others: &[f64]) -> f64 {
    let estimates: Vec<f64> = std::iter::once(first).chain(others.iter().copied()).collect();
    let support = |bpm: f64| {
        estimates.iter().filter(|&&other| bpm > 0.0 && other > 0.0 && (bpm / other - 1.0).abs() < AGREEMENT_TOLERANCE).count()
    };
    let counts: Vec<usize> = estimates.iter().map(|&b| support(b)).collect();
    estimates[first_max(&counts)]
}

/// The envelopes the tempo reads, in [`TempoTracker::push`]'s order.
pub const ENVELOPES: usize = 3;

/// Streaming tempo (4.11): the last [`TEMPO_WINDOW`] values of the three envelopes (complex-domain
/// flux, log flux, high-frequency-content flux), two sums over lags and three period paths.
pub struct TempoTracker {
    fps: f64,
    lo: usize,
    hi: usize,
    buffers: [Vec<f64>; ENVELOPES],
    seen: usize,
    windows: usize,
    sum_a: Vec<f64>,
    votes: Vec<f64>,
    paths: Vec<PeriodPath>,
    autocorrelation: super::fft::Autocorrelation,
    a: Vec<f64>,
    salience: Vec<f64>,
}

impl TempoTracker {
    pub fn new(fps: f64) -> Self {
        let (lo, hi) = lag_range(fps);
        TempoTracker {
            fps,
            lo,
            hi,
            buffers: std::array::from_fn(|_| Vec::with_capacity(TEMPO_WINDOW)),
            seen: 0,
            windows: 0,
            sum_a: vec![0.0; TEMPO_WINDOW],
            votes: vec![0.0; hi + 1 - lo],
            paths: (0..ENVELOPES).map(|_| PeriodPath::new(fps)).collect(),
            autocorrelation: super::fft::Autocorrelation::new(TEMPO_WINDOW),
            a: Vec::with_capacity(TEMPO_WINDOW),
            salience: Vec::with_capacity(hi + 1 - lo),
        }
    }

    /// One frame's envelope values; every [`TEMPO_HOP`] frames, once a window is full, it is analysed.
    #[inline(always)]
    pub fn push(&mut self, complex_flux: f64, log_flux: f64, hfc: f64) {
        for (buffer, value) in self.buffers.iter_mut().zip([complex_flux, log_flux, hfc]) {
            if buffer.len() == TEMPO_WINDOW {
                buffer.drain(..TEMPO_HOP);
            }
            buffer.push(value);
        }
        self.seen += 1;
        if self.buffers[0].len() == TEMPO_WINDOW {
            self.analyse_buffers(true);
        }
    }

    #[inline(always)]
    fn analyse_buffers(&mut self, full: bool) {
        let mut a = std::mem::take(&mut self.a);
        if window_autocorrelation(&self.buffers[0], &mut a) {
            self.windows += 1;
            for (s, v) in self.sum_a.iter_mut().zip(&a) {
                *s += v;
            }
            let mut salience = std::mem::take(&mut self.salience);
            if beat_salience(&self.buffers[0], self.fps, &mut salience) {
                for (v, s) in self.votes.iter_mut().zip(&salience) {
                    *v += s;
                }
            }
            self.salience = salience;
            if full {
                // a period path reads four beats of the longest period: only whole windows
                for (path, buffer) in self.paths.iter_mut().zip(&self.buffers) {
                    if let Some(observation) = period_observation(buffer, self.fps, &path.prior, &mut self.autocorrelation) {
                        path.add(&observation);
                    }
                }
            }
        }
        self.a = a;
    }

    /// tau* = the lag [`agreed_tempo`] picks among the comb's vote (the first lag with the most votes,
    /// refined at a multiple: [`refined_lag`]) and the three period paths' tempi.
    pub fn result(&mut self) -> Tempo {
        if self.seen < TEMPO_WINDOW {
            if self.seen < TEMPO_MIN_FRAMES.max(self.hi + 2) {
                return Tempo::NONE;
            }
            self.analyse_buffers(false);
        }
        let top = self.votes.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if self.windows == 0 || top <= 0.0 {
            return Tempo::NONE;
        }
        let mean_a: Vec<f64> = self.sum_a.iter().map(|s| s / self.windows as f64).collect();
        if periodicity_index(&mean_a, self.seen, self.lo, self.hi) < MIN_PERIODICITY {
            return Tempo::NONE;
        }
        let best = self.votes.iter().position(|&v| v == top).unwrap_or(0);
        let mut lag = self.lo + best;
        // a clip shorter than a window: its autocorrelation far from lag 0 rests on too few frames
        let multiples = if self.seen >= TEMPO_WINDOW { COMB_MULTIPLES } else { 1 };
        let beat = refined_lag(&mean_a, lag, multiples);
        let comb_bpm = (60.0 * self.fps / beat).clamp(TEMPO_MIN_BPM, TEMPO_MAX_BPM);
        let path_bpms: Vec<f64> = self.paths.iter().map(PeriodPath::bpm).collect();
        let bpm = agreed_tempo(comb_bpm, &path_bpms);
        if bpm != comb_bpm {
            lag = ((60.0 * self.fps / bpm).round_ties_even() as usize).clamp(self.lo, self.hi);
        }
        Tempo { bpm: bpm.clamp(TEMPO_MIN_BPM, TEMPO_MAX_BPM), stability: mean_a[lag].clamp(0.0, 1.0) }
    }
}

/// The tempo of whole envelopes ([`TempoTracker`] fed in one go).
pub fn tempo(complex_flux: &[f64], log_flux: &[f64], hfc: &[f64], fps: f64) -> Tempo {
    let mut tracker = TempoTracker::new(fps);
    for ((&c, &o), &h) in complex_flux.iter().zip(log_flux).zip(hfc) {
        tracker.push(c, o, h);
    }
    tracker.result()
}

/// `tempo_bpm` (4.11, version 4), BPM 40..240: of the comb's estimate (the most-voted beat lag of
/// the windowed, thresholded complex-domain envelope autocorrelation under Davies' comb and a
/// Rayleigh preference peaking at 120 BPM, refined at its highest multiple) and the three period
/// paths' tempi, the one most of them agree with (the comb's on a tie); or exactly 0 = no
/// periodicity (silence, steady tones, noise: periodicity index < 2; under ~1.5 s).
pub fn tempo_bpm(tempo: &Tempo) -> f64 {
    tempo.bpm
}

/// `rhythm_stability` (4.12, version 4), ratio 0..1: `clamp(Abar[tau*], 0, 1)` at the chosen beat lag, the mean
/// normalised envelope autocorrelation one beat apart (1 = metronome); 0 without tempo.
pub fn rhythm_stability(tempo: &Tempo) -> f64 {
    tempo.stability
}

/// Onsets: first maximum within +-3 frames, at least 1.5 dB above the mean within +-32.
pub fn onset_count(o: &[f64]) -> usize {
    let n = o.len();
    if n == 0 {
        return 0;
    }
    let h = PEAK_HALF_WIDTH;
    let mut c = Vec::with_capacity(n + 1);
    c.push(0.0);
    let mut acc = 0.0;
    for v in o {
        acc += v;
        c.push(acc);
    }
    let mut count = 0;
    for t in 0..n {
        let lo = t.saturating_sub(h);
        let hi = (t + h).min(n - 1);
        let window_max = o[lo..=hi].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let left_max = o[lo..t].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let is_max = o[t] >= window_max && o[t] > left_max;
        if !is_max {
            continue;
        }
        let lo = t.saturating_sub(PEAK_MEAN_HALF_WIDTH);
        let hi = (t + PEAK_MEAN_HALF_WIDTH).min(n - 1);
        let local_mean = (c[hi + 1] - c[lo]) / (hi - lo + 1) as f64;
        if o[t] >= local_mean + PEAK_DELTA_DB {
            count += 1;
        }
    }
    count
}

/// `transient_density` (4.13), onsets per second, 0..50: `onsets / duration_s`
/// over the whole track (duration = decoded samples per channel / sr); 0 for silence.
pub fn transient_density(onsets: &[f64], duration_s: f64) -> f64 {
    if duration_s <= 0.0 {
        return 0.0;
    }
    onset_count(onsets) as f64 / duration_s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tempo_is_the_estimate_most_estimators_agree_with() {
        assert_eq!(agreed_tempo(100.0, &[151.0, 149.5, 100.5]), 100.0);
        assert_eq!(agreed_tempo(100.0, &[151.0, 149.5, 80.0]), 151.0);
        assert_eq!(agreed_tempo(100.0, &[150.0, 160.0, 80.0]), 100.0);
        assert_eq!(agreed_tempo(120.0, &[0.0, 0.0, 0.0]), 120.0);
        assert_eq!(agreed_tempo(100.0, &[104.5, 104.5, 0.0]), 104.5);
    }

    #[test]
    fn a_period_path_reads_the_lag_its_windows_observe() {
        let fps = 44_100.0 / 4.0 / 128.0;
        let mut path = PeriodPath::new(fps);
        let lag_index = 42;
        for w in 0..20 {
            let mut observation = vec![1e-6; TEMPO_HOP];
            observation[if w != 10 { lag_index } else { 70 }] = 1.0;
            path.add(&observation);
        }
        assert!((path.bpm() - 60.0 * fps / (lag_index + 1) as f64).abs() < 1e-9);
        assert_eq!(PeriodPath::new(fps).bpm(), 0.0);
    }

    #[test]
    fn the_high_frequency_content_flux_reads_rises_only() {
        let mut hfc = HfcFlux::default();
        assert_eq!(hfc.push(&[1.0, 1.0, 1.0]), 0.0); // first frame: 0
        assert_eq!(hfc.push(&[0.0, 2.0, 2.0]), 3.0); // H 3 -> 6
        assert_eq!(hfc.push(&[5.0, 0.0, 0.0]), 0.0); // H 6 -> 0: a fall reads 0
    }
}
