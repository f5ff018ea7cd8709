//! Stereo image from the first two channels (`analyzer/features/stereo.py`).

/// `stereo_width`: (LL + RR - 2 LR) / (2 (LL + RR)), 0..1.
pub fn stereo_width(ll: f64, rr: f64, lr: f64) -> f64 {
    let total = ll + rr;
    if total <= 0.0 {
        return 0.0;
    }
    ((total - 2.0 * lr) / (2.0 * total)).clamp(0.0, 1.0)
}

/// `phase_correlation`: LR / sqrt(LL RR), -1..+1; both silent = +1, one silent = 0.
pub fn phase_correlation(ll: f64, rr: f64, lr: f64) -> f64 {
    if ll <= 0.0 && rr <= 0.0 {
        return 1.0;
    }
    if ll <= 0.0 || rr <= 0.0 {
        return 0.0;
    }
    (lr / (ll * rr).sqrt()).clamp(-1.0, 1.0)
}
