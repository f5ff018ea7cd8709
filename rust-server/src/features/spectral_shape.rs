//! Spectral shape: spec 4.15 `spectral_centroid`, 4.16 `spectral_rolloff`,
//! 4.17 `spectral_flatness`; `pyengine/features/spectral.py`.
//!
//! Each is a per-frame statistic of the magnitude spectrum `A_t[k] = |X_t[k]|`
//! of an active spectral frame (spec 3.3) over the bins of the shape band
//! 20 Hz <= f_k < 12 kHz ([`shape_bins`], version 2: every common lossy codec
//! keeps it), averaged over the T active frames.
//! [`frame_shape`] computes the three per-frame values in one pass over the
//! bins; [`ShapeSums`] adds them up over the track; the dimension functions
//! take the mean.

use super::frames::mean_over_active_frames;

/// 4.16: the roll-off point holds 85 % of the magnitude.
pub const ROLLOFF_FRACTION: f32 = 0.85;
/// 4.17: `A' = max(A, 1e-10)` (librosa's `amin`).
pub const FLATNESS_FLOOR: f64 = 1e-10;

/// The shape band, Hz: `SHAPE_LOW_HZ <= f_k < SHAPE_HIGH_HZ`.
pub const SHAPE_LOW_HZ: f64 = 20.0;
pub const SHAPE_HIGH_HZ: f64 = 12_000.0;

/// The bins of the shape band as a range `lo..hi` (frequencies increase with k).
pub fn shape_bins(freqs: &[f64]) -> std::ops::Range<usize> {
    let lo = freqs.iter().position(|&f| f >= SHAPE_LOW_HZ);
    match lo {
        Some(lo) => {
            let hi = freqs.iter().rposition(|&f| f < SHAPE_HIGH_HZ).map_or(lo, |k| k + 1);
            lo..hi.max(lo)
        }
        None => 0..0,
    }
}

/// The three shape statistics of one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameShape {
    /// `c_t = sum_k f_k A_t[k] / sum_k A_t[k]`, Hz (0 when the sum is 0).
    pub centroid: f64,
    /// The lowest `f_k` with `sum_{j<=k} A_t[j] >= 0.85 sum_j A_t[j]`, Hz.
    pub rolloff: f64,
    /// `phi_t = exp(mean_k ln A'_t[k]) / mean_k A'_t[k]`, ratio.
    pub flatness: f64,
}

/// Per-frame shape from one pass over the bins.
///
/// One loop keeps four independent running sums (and the rolloff's f32
/// cumulative sum) side by side instead of five loops of one dependency chain
/// each; every sum still adds the bins in order, so the values are the same.
/// The rolloff's cumulative sum is in f32 like numpy's; `ln A'` is taken as
/// `0.5 ln max(P, 1e-20)` from `log_power` (spec 4.17).
#[inline(always)]
pub fn frame_shape(
    magnitude: &[f32],
    log_power: &[f32],
    freqs: &[f64],
    freqs_f32: &[f32],
    cumulative: &mut Vec<f32>,
) -> FrameShape {
    let n = magnitude.len();
    cumulative.resize(n, 0.0);
    let (mut total, mut weighted, mut log_sum, mut arithmetic) = (0f64, 0f64, 0f64, 0f64);
    let mut acc = 0f32;
    for k in 0..n {
        let (m, l, f) = (magnitude[k], log_power[k], freqs_f32[k]);
        total += m as f64;
        weighted += (m * f) as f64;
        log_sum += l as f64;
        arithmetic += (m as f64).max(FLATNESS_FLOOR);
        acc += m;
        cumulative[k] = acc;
    }
    let centroid = if total <= 0.0 { 0.0 } else { weighted / total };
    let threshold = ROLLOFF_FRACTION * acc;
    let first = cumulative.iter().position(|&c| c >= threshold).unwrap_or(0);
    let geometric = (0.5 * (log_sum / n as f64)).exp();
    let flatness = geometric / (arithmetic / n as f64);
    FrameShape { centroid, rolloff: freqs[first], flatness }
}

/// Per-frame shape statistics summed over the active frames of a track.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ShapeSums {
    pub active_frames: u64,
    pub centroid: f64,
    pub rolloff: f64,
    pub flatness: f64,
}

impl ShapeSums {
    pub fn add(&mut self, frame: FrameShape) {
        self.active_frames += 1;
        self.centroid += frame.centroid;
        self.rolloff += frame.rolloff;
        self.flatness += frame.flatness;
    }
}

/// `spectral_centroid` (4.15), Hz, 20..12000: `(1/T) sum_t c_t` over the shape band; 0 for silence.
/// librosa `feature.spectral_centroid(S=A, freq=f)` averaged over the active frames.
pub fn spectral_centroid(sums: &ShapeSums) -> f64 {
    mean_over_active_frames(sums.centroid, sums.active_frames)
}

/// `spectral_rolloff` (4.16), Hz, 20..12000: mean over active frames of the
/// lowest `f_k` holding 85 % of the frame's magnitude in the shape band; 0 for silence.
/// librosa `feature.spectral_rolloff(S=A, freq=f, roll_percent=0.85)`.
pub fn spectral_rolloff(sums: &ShapeSums) -> f64 {
    mean_over_active_frames(sums.rolloff, sums.active_frames)
}

/// `spectral_flatness` (4.17), ratio 0..1: mean over active frames of the
/// geometric over the arithmetic mean of `max(A, 1e-10)` over the shape band; 0 for silence.
/// librosa `feature.spectral_flatness(S=A, power=1.0, amin=1e-10)`.
pub fn spectral_flatness(sums: &ShapeSums) -> f64 {
    mean_over_active_frames(sums.flatness, sums.active_frames)
}
