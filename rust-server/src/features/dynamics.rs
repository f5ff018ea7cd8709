//! Level statistics over 100 ms sub-blocks of the raw signal (`analyzer/features/dynamics.py`).

use super::frames::SILENCE_MEAN_SQUARE;

pub const PEAK_WINDOW_SUB_BLOCKS: usize = 10;

/// `silence_ratio`: share of sub-blocks below -60 dBFS RMS.
pub fn silence_ratio(ms: &[f64]) -> f64 {
    if ms.is_empty() {
        return 1.0;
    }
    ms.iter().filter(|&&m| m < SILENCE_MEAN_SQUARE).count() as f64 / ms.len() as f64
}

/// `crest_db`: sample peak over RMS of the non-silent sub-blocks, dB.
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

/// `peak_consistency`: mean over non-silent 1 s windows of window peak / track peak.
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
