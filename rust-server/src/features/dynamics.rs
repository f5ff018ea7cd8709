//! Level / dynamics: spec 4.9 `crest_db`, 4.14 `silence_ratio`, 4.23
//! `peak_consistency` (the spec's "level features", section 2.3;
//! `pyengine/features/dynamics.py`).
//!
//! Input: per complete 100 ms sub-block j (spec 3.2) of all channels,
//! unweighted, the mean square `ms_j` and the sample peak `pk_j`.

use super::frames::SILENCE_MEAN_SQUARE;

pub const PEAK_WINDOW_SUB_BLOCKS: usize = 10;

/// `silence_ratio` (4.14), ratio 0..1: share of sub-blocks with `ms_j < 1e-6`
/// (RMS below -60 dBFS); 1 for silence (and with no sub-block).
pub fn silence_ratio(ms: &[f64]) -> f64 {
    if ms.is_empty() {
        return 1.0;
    }
    ms.iter().filter(|&&m| m < SILENCE_MEAN_SQUARE).count() as f64 / ms.len() as f64
}

/// `crest_db` (4.9), dB, 0..200: `max(0, 20 log10(P / sqrt(R)))`, `P = max_j pk_j`,
/// `R` = mean of the `ms_j >= 1e-6`; 0 for silence. Crest factor with sample peak.
pub fn crest_db(ms: &[f64], peak: &[f64]) -> f64 {
    let loud: Vec<f64> = ms.iter().copied().filter(|&m| m >= SILENCE_MEAN_SQUARE).collect();
    let top = peak.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let top = if peak.is_empty() { 0.0 } else { top };
    if loud.is_empty() || top <= 0.0 {
        return 0.0;
    }
    let mean = loud.iter().sum::<f64>() / loud.len() as f64;
    (20.0 * (top / mean.sqrt()).log10()).max(0.0)
}

/// `peak_consistency` (4.23), ratio 0..1: over the 1 s windows (10 sub-blocks
/// from sub-block 0) whose mean `ms` is `>= 1e-6`, the mean of
/// `window peak / Pmax`, `Pmax` the largest such window peak; 0 for silence.
pub fn peak_consistency(ms: &[f64], peak: &[f64]) -> f64 {
    if ms.is_empty() {
        return 0.0;
    }
    let mut loud_peaks = Vec::new();
    for (wm, wp) in ms.chunks(PEAK_WINDOW_SUB_BLOCKS).zip(peak.chunks(PEAK_WINDOW_SUB_BLOCKS)) {
        let window_ms = wm.iter().sum::<f64>() / wm.len() as f64;
        if window_ms >= SILENCE_MEAN_SQUARE {
            loud_peaks.push(wp.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        }
    }
    if loud_peaks.is_empty() {
        return 0.0;
    }
    let top = loud_peaks.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if top <= 0.0 {
        return 0.0;
    }
    loud_peaks.iter().map(|p| p / top).sum::<f64>() / loud_peaks.len() as f64
}
