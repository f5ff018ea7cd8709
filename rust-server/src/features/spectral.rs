//! Spectral balance, shape and harmonicity per frame (`analyzer/features/spectral.py`).
//!
//! Input is the power spectrum P[k] = |X[k]|^2 of the unnormalised real FFT of
//! a periodic-Hann-windowed frame of the mono downmix; bin k is at k sr / N Hz.

pub const BAND_EDGES_HZ: [f64; 8] = [20.0, 60.0, 250.0, 500.0, 2000.0, 4000.0, 6000.0, 20000.0];
pub const ROLLOFF_FRACTION: f32 = 0.85;
pub const FLATNESS_FLOOR: f64 = 1e-10;
pub const LOG_POWER_FLOOR: f32 = 1e-20;
pub const TONAL_NEIGHBOURHOOD: usize = 16;
pub const CHROMA_LOW_HZ: f64 = 65.406;
pub const CHROMA_HIGH_HZ: f64 = 2093.005;

pub fn tonal_margin() -> f32 {
    std::f64::consts::LN_10 as f32
}

/// f_k = k sr / N for k = 0..N/2.
pub fn bin_frequencies(sample_rate: u32, n_fft: usize) -> Vec<f64> {
    let step = sample_rate as f64 / n_fft as f64;
    (0..=n_fft / 2).map(|k| k as f64 * step).collect()
}

/// Band 0..6 of each bin (edges[b] <= f < edges[b+1]), -1 outside 20 Hz..20 kHz.
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

/// `*_pct`: percent of 20 Hz..20 kHz power per band; zeros for silence.
pub fn band_percentages(band_energy: &[f64; 7]) -> [f64; 7] {
    let total: f64 = band_energy.iter().sum();
    if total <= 0.0 {
        return [0.0; 7];
    }
    band_energy.map(|e| 100.0 * e / total)
}

/// `bass_mid_ratio`: E(20..250) / (E(20..250) + E(250..4000)).
pub fn bass_mid_ratio(e: &[f64; 7]) -> f64 {
    let bass = e[0] + e[1];
    let mid = e[2] + e[3] + e[4];
    if bass + mid > 0.0 {
        bass / (bass + mid)
    } else {
        0.0
    }
}

/// Pitch class (0 = C) of each bin in C2..C7, -1 elsewhere: round-half-even(69 + 12 log2(f/440)) mod 12.
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

/// Per-frame shape: (centroid Hz, rolloff Hz, flatness) from one pass over the bins.
///
/// One loop keeps four independent running sums (and the rolloff's f32
/// cumulative sum) side by side instead of five loops of one dependency chain
/// each; every sum still adds the bins in order, so the values are the same.
/// centroid = sum f|X| / sum |X|; rolloff = lowest f_k with cumulative |X| >=
/// 0.85 of the total (f32 running sum like numpy); flatness of the magnitude
/// spectrum (librosa, power=1) = exp(mean ln|X|) / mean max(|X|, 1e-10).
pub fn shape(
    magnitude: &[f32],
    log_power: &[f32],
    freqs: &[f64],
    freqs_f32: &[f32],
    cumulative: &mut Vec<f32>,
) -> (f64, f64, f64) {
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
    (centroid, freqs[first], flatness)
}

/// Tonal bins: ln P >= (mean of ln P over k-16..k+16, edge bins repeated) + ln 10.
/// Returns the summed power of the tonal bins that are also audible. `padded` is scratch.
pub fn tonal_power(log_power: &[f32], power: &[f32], audible: &[bool], padded: &mut Vec<f64>) -> f64 {
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
        if audible[k] && log_power[k] >= local + margin {
            total += power[k] as f64;
        }
    }
    total
}

/// Per-frame chroma concentration (12 max / sum - 1) / 11, 0 without chroma power.
pub fn chroma_concentration(chroma: &[f64; 12]) -> f64 {
    let total: f64 = chroma.iter().sum();
    let share = if total > 0.0 { chroma.iter().copied().fold(f64::NEG_INFINITY, f64::max) / total } else { 1.0 / 12.0 };
    (12.0 * share - 1.0) / 11.0
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
