//! Harmonicity (tonal content): spec 4.18 `harmonic_ratio`, 4.19
//! `pitch_stability`, 4.20 `chroma_energy`; `pyengine/features/spectral.py`
//! (`tonal_mask`, `pitch_classes`, `chroma_matrix`, `chroma_concentration`).
//!
//! All three read the power `P_t[k]` of the active spectral frames (spec 3.3).
//! Per frame: [`frame_tonal_power`], [`frame_chroma`], [`dominant_pitch_class`],
//! [`chroma_concentration`]; over the track: [`HarmonicSums`]; the dimension
//! functions turn the sums into the three values.

use super::frames::mean_over_active_frames;

/// 4.18: the neighbourhood of the tonal test is k-16 .. k+16 (33 bins).
pub const TONAL_NEIGHBOURHOOD: usize = 16;
/// 4.20: chroma bins span C2 (65.406 Hz) ..
pub const CHROMA_LOW_HZ: f64 = 65.406;
/// .. C7 (2093.005 Hz), exclusive.
pub const CHROMA_HIGH_HZ: f64 = 2093.005;

/// 4.18: a tonal bin is `ln 10` (10 dB of power) above its neighbourhood's log mean.
pub fn tonal_margin() -> f32 {
    std::f64::consts::LN_10 as f32
}

/// Pitch class (0 = C .. 11 = B) of each bin in C2..C7, -1 elsewhere (4.20):
/// `round_half_even(69 + 12 log2(f_k / 440)) mod 12`.
pub fn pitch_classes(freqs: &[f64]) -> Vec<i8> {
    freqs
        .iter()
        .map(|&f| {
            if (CHROMA_LOW_HZ..CHROMA_HIGH_HZ).contains(&f) {
                ((69.0 + 12.0 * (f / 440.0).log2()).round_ties_even() as i64).rem_euclid(12) as i8
            } else {
                -1
            }
        })
        .collect()
}

/// Summed power of one frame's tonal bins that are also audible (4.18).
///
/// Bin k is tonal when `lp[k] >= mu[k] + ln 10`, `lp = ln max(P, 1e-20)` and
/// `mu[k]` the mean of `lp` over k-16..k+16 with the edge bins repeated
/// (scipy `uniform_filter1d(mode="nearest")`). `padded` is scratch.
#[inline(always)]
pub fn frame_tonal_power(log_power: &[f32], power: &[f32], audible: &[bool], padded: &mut Vec<f64>) -> f64 {
    let n = log_power.len();
    if n == 0 {
        return 0.0;
    }
    let h = TONAL_NEIGHBOURHOOD;
    padded.clear();
    padded.extend(std::iter::repeat(log_power[0] as f64).take(h));
    padded.extend(log_power.iter().map(|&v| v as f64));
    padded.extend(std::iter::repeat(log_power[n - 1] as f64).take(h));
    let size = (2 * h + 1) as f64;
    let mut sum: f64 = padded[..2 * h + 1].iter().sum();
    let margin = tonal_margin();
    let mut total = 0.0;
    for k in 0..n {
        if k > 0 {
            sum += padded[k + 2 * h] - padded[k - 1];
        }
        let local = (sum / size) as f32;
        // a select, not a branch: whether a bin is tonal is as unpredictable as the music
        let tonal = audible[k] & (log_power[k] >= local + margin);
        total += if tonal { power[k] as f64 } else { 0.0 };
    }
    total
}

/// One frame's chroma (4.20): `C_t[p] = sum_{k: pc(k) = p} P_t[k]` over the
/// contiguous bin range `lo..hi` of C2..C7 (`pitch` from [`pitch_classes`]).
#[inline(always)]
pub fn frame_chroma(power: &[f32], pitch: &[i8], (lo, hi): (usize, usize)) -> [f64; 12] {
    let mut chroma = [0f64; 12];
    for (&p, &pc) in power[lo..hi].iter().zip(&pitch[lo..hi]) {
        chroma[pc as usize] += p as f64;
    }
    chroma
}

/// `p_t = argmax_p C_t[p]` (lowest p on ties) of a frame with chroma power, else none (4.19).
pub fn dominant_pitch_class(chroma: &[f64; 12]) -> Option<usize> {
    (chroma.iter().sum::<f64>() > 0.0).then(|| argmax(chroma))
}

/// First maximum (numpy argmax tie-breaking).
pub fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// One frame's chroma concentration (4.20): `chi_t = (12 s_t - 1) / 11` with
/// `s_t = max_p C_t[p] / sum_p C_t[p]` (`1/12` without chroma power).
pub fn chroma_concentration(chroma: &[f64; 12]) -> f64 {
    let total: f64 = chroma.iter().sum();
    let share = if total > 0.0 { chroma.iter().copied().fold(f64::NEG_INFINITY, f64::max) / total } else { 1.0 / 12.0 };
    (12.0 * share - 1.0) / 11.0
}

/// Harmonicity sums over the track.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HarmonicSums {
    /// Power of the tonal audible bins, all active frames.
    pub tonal_power: f64,
    /// Power of every bin in 20 Hz–20 kHz, all active frames.
    pub audible_power: f64,
    /// Active frames, and their summed [`chroma_concentration`].
    pub active_frames: u64,
    pub chroma_concentration: f64,
    /// The dominant pitch class of the previous frame (none: inactive or no chroma).
    pub previous_pitch: Option<usize>,
    /// Pairs of consecutive frames both with a pitch class, and those with the same one.
    pub pitch_pairs: u64,
    pub pitch_same: u64,
}

impl HarmonicSums {
    /// The next frame of the track (active or not) has dominant pitch class `class`.
    pub fn pitch_step(&mut self, class: Option<usize>) {
        if let (Some(previous), Some(current)) = (self.previous_pitch, class) {
            self.pitch_pairs += 1;
            if previous == current {
                self.pitch_same += 1;
            }
        }
        self.previous_pitch = class;
    }
}

/// `harmonic_ratio` (4.18), ratio 0..1: power of the tonal bins in
/// 20 Hz–20 kHz over all power in 20 Hz–20 kHz, whole track; 0 for silence.
pub fn harmonic_ratio(sums: &HarmonicSums) -> f64 {
    if sums.audible_power > 0.0 {
        sums.tonal_power / sums.audible_power
    } else {
        0.0
    }
}

/// `pitch_stability` (4.19), ratio 0..1: share of consecutive frame pairs,
/// both with a dominant pitch class, whose classes are equal; 0 without a pair.
pub fn pitch_stability(sums: &HarmonicSums) -> f64 {
    if sums.pitch_pairs > 0 {
        sums.pitch_same as f64 / sums.pitch_pairs as f64
    } else {
        0.0
    }
}

/// `chroma_energy` (4.20), ratio 0..1: `(1/T) sum_t chi_t` over the active
/// frames (1 = one pitch class, 0 = all twelve equal); 0 for silence.
pub fn chroma_energy(sums: &HarmonicSums) -> f64 {
    mean_over_active_frames(sums.chroma_concentration, sums.active_frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pitch_pairs_skip_frames_without_a_class() {
        let mut s = HarmonicSums::default();
        for class in [Some(3), Some(3), None, Some(3), Some(4), Some(4)] {
            s.pitch_step(class);
        }
        assert_eq!((s.pitch_pairs, s.pitch_same), (3, 2));
        assert_eq!(pitch_stability(&s), 2.0 / 3.0);
        assert_eq!(dominant_pitch_class(&[0.0; 12]), None);
        let mut c = [1.0; 12];
        c[5] = 2.0;
        c[7] = 2.0;
        assert_eq!(dominant_pitch_class(&c), Some(5));
    }
}
