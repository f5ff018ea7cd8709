//! Bands / spectral balance: spec 4.1–4.7 (`*_pct`) and 4.10 (`bass_mid_ratio`);
//! `pyengine/features/spectral.py` (`band_index`, `band_percentages`, `bass_mid_ratio`).
//!
//! Input: the band energies `E_b = sum_{t active} sum_{k in b} P_t[k]` of the
//! whole track (power of the active spectral frames, spec 3.3), summed per
//! frame by the accumulator into a [`BandEnergy`].

/// Band edges, Hz: sub_bass [20, 60), bass [60, 250), low_mid [250, 500),
/// mid [500, 2000), upper_mid [2000, 4000), presence [4000, 6000), air [6000, 20000).
pub const BAND_EDGES_HZ: [f64; 8] = [20.0, 60.0, 250.0, 500.0, 2000.0, 4000.0, 6000.0, 20000.0];

pub const SUB_BASS: usize = 0;
pub const BASS: usize = 1;
pub const LOW_MID: usize = 2;
pub const MID: usize = 3;
pub const UPPER_MID: usize = 4;
pub const PRESENCE: usize = 5;
pub const AIR: usize = 6;

/// `E_b` for the seven bands, indexed by [`SUB_BASS`] … [`AIR`].
pub type BandEnergy = [f64; 7];

/// Band 0..6 of each bin (`edge_b <= f_k < edge_{b+1}`), -1 outside 20 Hz..20 kHz.
pub fn band_index(freqs: &[f64]) -> Vec<i8> {
    freqs
        .iter()
        .map(|&f| {
            if f < BAND_EDGES_HZ[0] || f >= BAND_EDGES_HZ[7] {
                -1
            } else {
                (BAND_EDGES_HZ.iter().filter(|&&e| e <= f).count() as i8) - 1
            }
        })
        .collect()
}

/// `pct_b = 100 * E_b / sum_{b'} E_{b'}`, percent; 0 when there is no power (silence).
pub fn band_pct(energy: &BandEnergy, band: usize) -> f64 {
    let total: f64 = energy.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    100.0 * energy[band] / total
}

/// `sub_bass_pct` (4.1): % of the 20 Hz–20 kHz power in [20, 60) Hz.
pub fn sub_bass_pct(energy: &BandEnergy) -> f64 {
    band_pct(energy, SUB_BASS)
}

/// `bass_pct` (4.2): % of the 20 Hz–20 kHz power in [60, 250) Hz.
pub fn bass_pct(energy: &BandEnergy) -> f64 {
    band_pct(energy, BASS)
}

/// `low_mid_pct` (4.3): % of the 20 Hz–20 kHz power in [250, 500) Hz.
pub fn low_mid_pct(energy: &BandEnergy) -> f64 {
    band_pct(energy, LOW_MID)
}

/// `mid_pct` (4.4): % of the 20 Hz–20 kHz power in [500, 2000) Hz.
pub fn mid_pct(energy: &BandEnergy) -> f64 {
    band_pct(energy, MID)
}

/// `upper_mid_pct` (4.5): % of the 20 Hz–20 kHz power in [2000, 4000) Hz.
pub fn upper_mid_pct(energy: &BandEnergy) -> f64 {
    band_pct(energy, UPPER_MID)
}

/// `presence_pct` (4.6): % of the 20 Hz–20 kHz power in [4000, 6000) Hz.
pub fn presence_pct(energy: &BandEnergy) -> f64 {
    band_pct(energy, PRESENCE)
}

/// `air_pct` (4.7): % of the 20 Hz–20 kHz power in [6000, 20000) Hz (0 below 12 kHz Nyquist).
pub fn air_pct(energy: &BandEnergy) -> f64 {
    band_pct(energy, AIR)
}

/// `bass_mid_ratio` (4.10), ratio 0..1:
/// `(E_sub_bass + E_bass) / (E_sub_bass + E_bass + E_low_mid + E_mid + E_upper_mid)`,
/// i.e. power in 20–250 Hz over power in 20–4000 Hz; 0 when the denominator is 0.
pub fn bass_mid_ratio(energy: &BandEnergy) -> f64 {
    let bass = energy[SUB_BASS] + energy[BASS];
    let mid = energy[LOW_MID] + energy[MID] + energy[UPPER_MID];
    if bass + mid > 0.0 {
        bass / (bass + mid)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_sum_to_100_and_silence_is_zero() {
        let e: BandEnergy = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let all = [sub_bass_pct, bass_pct, low_mid_pct, mid_pct, upper_mid_pct, presence_pct, air_pct];
        let total: f64 = all.iter().map(|f| f(&e)).sum();
        assert!((total - 100.0).abs() < 1e-12);
        assert!(all.iter().all(|f| f(&[0.0; 7]) == 0.0));
        assert_eq!(bass_mid_ratio(&e), 3.0 / 15.0);
        assert_eq!(band_index(&[10.0, 20.0, 59.9, 60.0, 19_999.0, 20_000.0]), vec![-1, 0, 0, 1, 6, -1]);
    }
}
