//! Stereo: spec 4.24 `stereo_width`, 4.25 `phase_correlation`
//! (`pyengine/features/stereo.py`).
//!
//! Input: the whole-track float64 sums of the stereo pair (spec 2.3: channels
//! 0 and 1, mono as L = R) over every decoded sample: `LL = sum L^2`,
//! `RR = sum R^2`, `LR = sum L R` (for a stereo track these come out of the
//! fused pass, [`super::stereo_pass`]).

/// `stereo_width` (4.24), ratio 0..1: `clamp((LL + RR - 2 LR) / (2 (LL + RR)), 0, 1)`,
/// the side share `sum S^2 / (sum M^2 + sum S^2)`; 0 = mono, 0.5 = uncorrelated,
/// 1 = R = -L; 0 for silence.
pub fn stereo_width(ll: f64, rr: f64, lr: f64) -> f64 {
    let total = ll + rr;
    if total <= 0.0 {
        return 0.0;
    }
    ((total - 2.0 * lr) / (2.0 * total)).clamp(0.0, 1.0)
}

/// `phase_correlation` (4.25), -1..+1: `clamp(LR / sqrt(LL RR), -1, 1)` (no mean
/// removal); +1 when both channels are silent, 0 when one is.
pub fn phase_correlation(ll: f64, rr: f64, lr: f64) -> f64 {
    if ll <= 0.0 && rr <= 0.0 {
        return 1.0;
    }
    if ll <= 0.0 || rr <= 0.0 {
        return 0.0;
    }
    (lr / (ll * rr).sqrt()).clamp(-1.0, 1.0)
}
