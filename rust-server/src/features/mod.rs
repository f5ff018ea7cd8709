//! The 25-number fingerprint of `docs/fingerprint-spec.md`, a port of
//! `pyengine/features/*.py`.
//!
//! One module per family of the spec, and in it one function per dimension,
//! named as the spec names the dimension (doc comment: formula, unit, spec
//! section), in the manner of librosa's feature modules:
//!
//! | spec family | module | dimension functions |
//! |---|---|---|
//! | bands, spectral balance (4.1–4.7, 4.10) | [`bands`] | `sub_bass_pct` … `air_pct`, `bass_mid_ratio` |
//! | loudness (4.8, 4.21, 4.22) | [`loudness`] | `lufs`, `dynamic_range_variation`, `loudness_variation_std` |
//! | level / dynamics (4.9, 4.14, 4.23) | [`dynamics`] | `crest_db`, `silence_ratio`, `peak_consistency` |
//! | rhythm (4.11–4.13) | [`rhythm`] | `tempo_bpm`, `rhythm_stability`, `transient_density` |
//! | spectral shape (4.15–4.17) | [`spectral_shape`] | `spectral_centroid`, `spectral_rolloff`, `spectral_flatness` |
//! | harmonicity (4.18–4.20) | [`harmonicity`] | `harmonic_ratio`, `pitch_stability`, `chroma_energy` |
//! | stereo (4.24, 4.25) | [`stereo`] | `stereo_width`, `phase_correlation` |
//!
//! The signals they read (section 3 of the spec) come from [`frames`]
//! (geometry, windows, bin frequencies), [`fft`], [`fastmath`],
//! [`stereo_pass`] (the fused per-sample pass of a stereo track) and
//! [`accumulator`], which streams decoded samples through all of them in one
//! pass and builds the [`Fingerprint`] field by field. The per-block loops are
//! `#[inline(always)]` so that the AVX2 copy of [`FingerprintAccumulator::add`]
//! (chosen at run time) compiles all of them with the wider vectors.

pub mod accumulator;
pub mod bands;
pub mod dynamics;
pub mod fastmath;
pub mod fft;
pub mod frames;
pub mod harmonicity;
pub mod loudness;
pub mod rhythm;
pub mod spectral_shape;
pub mod stereo;
pub mod stereo_pass;

pub use accumulator::FingerprintAccumulator;

pub const FINGERPRINT_VERSION: u32 = 4;

/// Declares [`DIMENSIONS`] and the fields of [`Fingerprint`] from one list, so
/// the names, their order and the struct cannot drift apart.
macro_rules! dimensions {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// The 25 dimensions, in the database's column order (`trackprint/fingerprint.py`).
        pub const DIMENSIONS: [&str; 25] = [$(stringify!($name)),*];

        /// The 25 values, one named field per dimension (spec section 4), declared
        /// in [`DIMENSIONS`] order.
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct Fingerprint {
            $($(#[$doc])* pub $name: f64,)*
        }

        impl Fingerprint {
            /// `(name, value)` in [`DIMENSIONS`] order.
            pub fn named(&self) -> [(&'static str, f64); 25] {
                [$((stringify!($name), self.$name)),*]
            }
        }
    };
}

dimensions! {
    /// 4.1, % of the 20 Hz–20 kHz power in 20–60 Hz.
    sub_bass_pct,
    /// 4.2, % in 60–250 Hz.
    bass_pct,
    /// 4.3, % in 250–500 Hz.
    low_mid_pct,
    /// 4.4, % in 500–2000 Hz.
    mid_pct,
    /// 4.5, % in 2–4 kHz.
    upper_mid_pct,
    /// 4.6, % in 4–6 kHz.
    presence_pct,
    /// 4.7, % in 6–20 kHz.
    air_pct,
    /// 4.8, integrated loudness, LUFS.
    lufs,
    /// 4.9, sample peak over RMS of the non-silent sub-blocks, dB.
    crest_db,
    /// 4.10, 20–250 Hz power over 20–4000 Hz power.
    bass_mid_ratio,
    /// 4.11, BPM (0 = no tempo).
    tempo_bpm,
    /// 4.12, onset-envelope autocorrelation at the beat lag over lag 0.
    rhythm_stability,
    /// 4.13, onsets per second.
    transient_density,
    /// 4.14, share of silent 100 ms sub-blocks.
    silence_ratio,
    /// 4.15, mean magnitude-weighted frequency, Hz.
    spectral_centroid,
    /// 4.16, mean 85 % magnitude roll-off frequency, Hz.
    spectral_rolloff,
    /// 4.17, mean magnitude spectral flatness.
    spectral_flatness,
    /// 4.18, share of the power in tonal bins.
    harmonic_ratio,
    /// 4.19, share of consecutive frames with the same dominant pitch class.
    pitch_stability,
    /// 4.20, mean chroma concentration.
    chroma_energy,
    /// 4.21, loudness range (EBU Tech 3342), LU.
    dynamic_range_variation,
    /// 4.22, std of the gated momentary loudness, LU.
    loudness_variation_std,
    /// 4.23, mean 1 s window peak over the track peak.
    peak_consistency,
    /// 4.24, side share of the stereo power.
    stereo_width,
    /// 4.25, normalised L/R correlation at lag 0.
    phase_correlation,
}

impl Fingerprint {
    /// The values as an array in [`DIMENSIONS`] order.
    pub fn values(&self) -> [f64; 25] {
        self.named().map(|(_, v)| v)
    }

    /// The value of the dimension called `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.named().into_iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_follow_dimensions() {
        assert_eq!(DIMENSIONS.len(), 25);
        let fp = Fingerprint {
            sub_bass_pct: 1.0,
            bass_pct: 2.0,
            low_mid_pct: 3.0,
            mid_pct: 4.0,
            upper_mid_pct: 5.0,
            presence_pct: 6.0,
            air_pct: 7.0,
            lufs: 8.0,
            crest_db: 9.0,
            bass_mid_ratio: 10.0,
            tempo_bpm: 11.0,
            rhythm_stability: 12.0,
            transient_density: 13.0,
            silence_ratio: 14.0,
            spectral_centroid: 15.0,
            spectral_rolloff: 16.0,
            spectral_flatness: 17.0,
            harmonic_ratio: 18.0,
            pitch_stability: 19.0,
            chroma_energy: 20.0,
            dynamic_range_variation: 21.0,
            loudness_variation_std: 22.0,
            peak_consistency: 23.0,
            stereo_width: 24.0,
            phase_correlation: 25.0,
        };
        for (i, (name, value)) in fp.named().into_iter().enumerate() {
            assert_eq!(name, DIMENSIONS[i]);
            assert_eq!(value, (i + 1) as f64);
            assert_eq!(fp.get(name), Some(value));
        }
        assert_eq!(fp.get("nope"), None);
    }
}
