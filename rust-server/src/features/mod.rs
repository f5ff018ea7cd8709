//! The 25-number fingerprint: a line-by-line port of `analyzer/features/*.py`.
//!
//! One module per family, mirroring the Python files; [`accumulator`] streams
//! decoded samples through all of them in one pass.

pub mod accumulator;
pub mod dynamics;
pub mod fastmath;
pub mod fft;
pub mod frames;
pub mod loudness;
pub mod rhythm;
pub mod spectral;
pub mod stereo;
pub mod stereo_pass;

pub use accumulator::FingerprintAccumulator;

/// The 25 dimensions, in the database's column order (`trackprint/fingerprint.py`).
pub const DIMENSIONS: [&str; 25] = [
    "sub_bass_pct",
    "bass_pct",
    "low_mid_pct",
    "mid_pct",
    "upper_mid_pct",
    "presence_pct",
    "air_pct",
    "lufs",
    "crest_db",
    "bass_mid_ratio",
    "tempo_bpm",
    "rhythm_stability",
    "transient_density",
    "silence_ratio",
    "spectral_centroid",
    "spectral_rolloff",
    "spectral_flatness",
    "harmonic_ratio",
    "pitch_stability",
    "chroma_energy",
    "dynamic_range_variation",
    "loudness_variation_std",
    "peak_consistency",
    "stereo_width",
    "phase_correlation",
];

pub const FINGERPRINT_VERSION: u32 = 1;

/// The 25 values in [`DIMENSIONS`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct Fingerprint(pub [f64; 25]);

impl Fingerprint {
    pub fn get(&self, name: &str) -> Option<f64> {
        DIMENSIONS.iter().position(|n| *n == name).map(|i| self.0[i])
    }
}
