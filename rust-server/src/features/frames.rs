//! Frame geometry as a function of the sample rate, and what every spectral
//! family shares (spec section 3; `pyengine/features/frames.py`).

pub const MIN_SAMPLE_RATE: u32 = 8_000;
pub const MAX_SAMPLE_RATE: u32 = 384_000;
/// -60 dBFS: below this mean square a sub-block or frame is "silent".
pub const SILENCE_MEAN_SQUARE: f64 = 1e-6;
pub const SPECTRAL_FRAME_AT_44K: usize = 8192;
pub const ONSET_FRAME: usize = 512;
pub const ONSET_HOP: usize = 128;
pub const ONSET_DECIMATION_AT_44K: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameParams {
    pub sample_rate: u32,
    pub sub_block: usize,
    pub spectral_frame: usize,
    pub spectral_hop: usize,
    pub onset_decimation: usize,
    pub onset_frame: usize,
    pub onset_hop: usize,
}

impl FrameParams {
    /// Onset-envelope frames per second.
    pub fn onset_rate(&self) -> f64 {
        self.sample_rate as f64 / self.onset_decimation as f64 / self.onset_hop as f64
    }
}

/// The power of two nearest to `sample_rate / 44100` (in log2).
pub fn rate_scale(sample_rate: u32) -> f64 {
    // Python's round() is round-half-even
    2f64.powf((sample_rate as f64 / 44_100.0).log2().round_ties_even())
}

pub fn frame_params(sample_rate: u32) -> FrameParams {
    let scale = rate_scale(sample_rate);
    let spectral = (SPECTRAL_FRAME_AT_44K as f64 * scale) as usize;
    FrameParams {
        sample_rate,
        sub_block: (sample_rate as usize + 5) / 10,
        spectral_frame: spectral,
        spectral_hop: spectral,
        onset_decimation: ((ONSET_DECIMATION_AT_44K as f64 * scale) as usize).max(1),
        onset_frame: ONSET_FRAME,
        onset_hop: ONSET_HOP,
    }
}

/// Floor of the power before its logarithm: `ln max(P, 1e-20)` (spec 4.17, 4.18).
pub const LOG_POWER_FLOOR: f32 = 1e-20;

/// Bin frequencies of a spectral frame (spec 3.3): `f_k = k sr / N` Hz for k = 0..N/2.
pub fn bin_frequencies(sample_rate: u32, n_fft: usize) -> Vec<f64> {
    let step = sample_rate as f64 / n_fft as f64;
    (0..=n_fft / 2).map(|k| k as f64 * step).collect()
}

/// Mean of a per-frame statistic over the T active spectral frames (spec 3.3):
/// `sum / T`, 0 when T = 0 (silence).
pub fn mean_over_active_frames(sum: f64, active_frames: u64) -> f64 {
    if active_frames > 0 {
        sum / active_frames as f64
    } else {
        0.0
    }
}

/// Periodic Hann window (scipy `get_window("hann", n, fftbins=True)`), as f32.
pub fn periodic_hann(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn geometry() {
        let p = frame_params(44_100);
        assert_eq!((p.sub_block, p.spectral_frame, p.onset_decimation), (4410, 8192, 4));
        let p = frame_params(96_000);
        assert_eq!((p.sub_block, p.spectral_frame, p.onset_decimation), (9600, 16384, 8));
        let p = frame_params(8_000);
        assert_eq!((p.sub_block, p.spectral_frame, p.onset_decimation), (800, 2048, 1));
    }
}
