//! Rhythm: spec 4.11 `tempo_bpm`, 4.12 `rhythm_stability`, 4.13
//! `transient_density`, from the onset envelope of spec 3.4
//! (`pyengine/features/rhythm.py`).
//!
//! o_t = mean_k max(0, L_t[k] - L_{t-1}[k]) with L = 10 log10(P + 1e-5), at
//! fps = sr / D / 128 frames per second. `tempo_bpm` and `rhythm_stability`
//! come from one tempo estimate ([`tempo`]).

pub const FLUX_FLOOR: f32 = 1e-5;
pub const TEMPO_MIN_BPM: f64 = 40.0;
pub const TEMPO_MAX_BPM: f64 = 240.0;
pub const TEMPO_PRIOR_BPM: f64 = 120.0;
pub const ACF_WINDOW: usize = 1024;
pub const PEAK_HALF_WIDTH: usize = 3;
pub const PEAK_MEAN_HALF_WIDTH: usize = 32;
pub const PEAK_DELTA_DB: f64 = 1.5;
pub const MIN_ONSETS_FOR_TEMPO: usize = 2;

/// L = 10 log10(P + 1e-5), dB.
pub fn log_power(power: &[f32], out: &mut [f32]) {
    const DB_PER_NEPER: f32 = 10.0 / std::f32::consts::LN_10;
    for (o, &p) in out.iter_mut().zip(power) {
        *o = DB_PER_NEPER * super::fastmath::ln(p + FLUX_FLOOR);
    }
}

/// Flux between two log spectra: mean_k max(0, cur - prev).
pub fn spectral_flux(current: &[f32], previous: &[f32]) -> f64 {
    let sum: f64 = current.iter().zip(previous).map(|(&c, &p)| ((c - p).max(0.0)) as f64).sum();
    sum / current.len() as f64
}

/// Unbiased autocorrelation summed over windows of 1024 frames with per-window mean removal.
pub fn tempo_autocorrelation(onsets: &[f64], max_lag: usize) -> Vec<f64> {
    let mut sums = vec![0.0; max_lag + 1];
    let mut pairs = vec![0.0; max_lag + 1];
    for window in onsets.chunks(ACF_WINDOW) {
        let n = window.len();
        if n < 2 {
            continue;
        }
        let mean = window.iter().sum::<f64>() / n as f64;
        let w: Vec<f64> = window.iter().map(|v| v - mean).collect();
        for lag in 0..=max_lag.min(n - 1) {
            let acc: f64 = w[..n - lag].iter().zip(&w[lag..]).map(|(a, b)| a * b).sum();
            sums[lag] += acc;
            pairs[lag] += (n - lag) as f64;
        }
    }
    sums.iter().zip(&pairs).map(|(&s, &p)| if p > 0.0 { s / p } else { 0.0 }).collect()
}

/// The tempo estimate both `tempo_bpm` and `rhythm_stability` read (4.11, 4.12).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tempo {
    /// `clamp(60 fps / (l* + delta), 40, 240)`, or 0 = no tempo.
    pub bpm: f64,
    /// `clamp(A[l*] / A[0], 0, 1)` at the unrefined lag `l*`, or 0.
    pub stability: f64,
}

impl Tempo {
    pub const NONE: Tempo = Tempo { bpm: 0.0, stability: 0.0 };
}

/// The tempo of an onset envelope at `fps` frames/s (4.11, 4.12): with `A` the
/// [`tempo_autocorrelation`], the beat lag `l*` is the first lag in
/// `ceil(60 fps / 240) ..= floor(60 fps / 40)` maximising
/// `max(A[l], 0) * exp(-0.5 log2(bpm(l) / 120)^2)`, refined by a parabola
/// through `A[l*-1..=l*+1]`. [`Tempo::NONE`] with fewer than 2 onsets,
/// `A[0] <= 0` or no positive score.
pub fn tempo(onsets: &[f64], fps: f64) -> Tempo {
    if onset_count(onsets) < MIN_ONSETS_FOR_TEMPO {
        return Tempo::NONE;
    }
    let min_lag = (60.0 * fps / TEMPO_MAX_BPM).ceil() as usize;
    let max_lag = (60.0 * fps / TEMPO_MIN_BPM).floor() as usize;
    let acf = tempo_autocorrelation(onsets, max_lag + 1);
    if acf[0] <= 0.0 || min_lag < 1 {
        return Tempo::NONE;
    }
    let mut best_lag = min_lag;
    let mut best_score = f64::NEG_INFINITY;
    for lag in min_lag..=max_lag {
        let bpm = 60.0 * fps / lag as f64;
        let weight = (-0.5 * (bpm / TEMPO_PRIOR_BPM).log2().powi(2)).exp();
        let score = acf[lag].max(0.0) * weight;
        if score > best_score {
            best_score = score;
            best_lag = lag;
        }
    }
    if best_score <= 0.0 {
        return Tempo::NONE;
    }
    let lag = best_lag;
    let (left, centre, right) = (acf[lag - 1], acf[lag], acf[lag + 1]);
    let curvature = left - 2.0 * centre + right;
    let offset = if curvature < 0.0 { 0.5 * (left - right) / curvature } else { 0.0 };
    let offset = offset.clamp(-0.5, 0.5);
    let bpm = (60.0 * fps / (lag as f64 + offset)).clamp(TEMPO_MIN_BPM, TEMPO_MAX_BPM);
    let stability = (centre / acf[0]).clamp(0.0, 1.0);
    Tempo { bpm, stability }
}

/// `tempo_bpm` (4.11), BPM: 40..240, or exactly 0 when no tempo is found
/// (silence, steady tones, noise, clips under ~0.3 s). Ellis (2007) prior.
pub fn tempo_bpm(tempo: &Tempo) -> f64 {
    tempo.bpm
}

/// `rhythm_stability` (4.12), ratio 0..1: `clamp(A[l*] / A[0], 0, 1)`, how
/// self-similar the onset envelope is one beat apart (1 = metronome); 0 without tempo.
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
