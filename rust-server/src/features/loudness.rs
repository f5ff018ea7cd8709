//! Loudness: spec 4.8 `lufs`, 4.21 `dynamic_range_variation`, 4.22
//! `loudness_variation_std`; ITU-R BS.1770-4 / EBU R128 as libebur128
//! (`pyengine/features/loudness.py`: `integrated_loudness`, `loudness_range`,
//! `loudness_variation_std`).
//!
//! Everything starts from the sub-block energies z_j of spec 3.2: for each
//! complete 100 ms sub-block, sum_c G_c * mean(y_c^2) of the K-weighted signal.

/// LUFS: the absolute gate, and the value of silence.
pub const LOUDNESS_FLOOR: f64 = -70.0;

fn abs_gate_energy() -> f64 {
    10f64.powf((LOUDNESS_FLOOR + 0.691) / 10.0)
}

/// One biquad (direct form II transposed, like scipy's sosfilt).
#[derive(Debug, Clone, Copy)]
pub struct Biquad {
    pub b: [f64; 3],
    pub a: [f64; 3],
}

/// K-weighting as two biquads (shelf, then RLB high-pass), re-derived for any rate.
pub fn k_weighting(sample_rate: u32) -> [Biquad; 2] {
    let sr = sample_rate as f64;
    let (f0, gain_db, q) = (1681.974450955533, 3.999843853973347, 0.7071752369554196);
    let k = (std::f64::consts::PI * f0 / sr).tan();
    let vh = 10f64.powf(gain_db / 20.0);
    let vb = vh.powf(0.4996667741545416);
    let a0 = 1.0 + k / q + k * k;
    let shelf = Biquad {
        b: [(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0],
        a: [1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0],
    };
    let (f0, q) = (38.13547087602444, 0.5003270373238773);
    let k = (std::f64::consts::PI * f0 / sr).tan();
    let a0 = 1.0 + k / q + k * k;
    let highpass = Biquad { b: [1.0, -2.0, 1.0], a: [1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0] };
    [shelf, highpass]
}

/// The running state of the K-weighting cascade for one channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct KState {
    pub(crate) z: [[f64; 2]; 2],
}

impl KState {
    #[inline]
    pub fn process(&mut self, filters: &[Biquad; 2], x: f64) -> f64 {
        let mut v = x;
        for (s, f) in self.z.iter_mut().zip(filters.iter()) {
            let y = f.b[0] * v + s[0];
            s[0] = f.b[1] * v - f.a[1] * y + s[1];
            s[1] = f.b[2] * v - f.a[2] * y;
            v = y;
        }
        v
    }

    /// The same recursion with fused multiply-adds (shorter dependency chain where the CPU has FMA).
    #[inline(always)]
    pub fn process_fused(&mut self, filters: &[Biquad; 2], x: f64) -> f64 {
        let mut v = x;
        for (s, f) in self.z.iter_mut().zip(filters.iter()) {
            let y = f.b[0].mul_add(v, s[0]);
            s[0] = (-f.a[1]).mul_add(y, f.b[1].mul_add(v, s[1]));
            s[1] = (-f.a[2]).mul_add(y, f.b[2] * v);
            v = y;
        }
        v
    }
}

/// BS.1770 channel weights with libebur128's default channel map.
pub fn channel_weights(channels: usize) -> Vec<f64> {
    match channels {
        4 => vec![1.0, 1.0, 1.41, 1.41],
        5 => vec![1.0, 1.0, 1.0, 1.41, 1.41],
        _ => {
            let base = [1.0, 1.0, 1.0, 0.0, 1.41, 1.41];
            (0..channels).map(|c| if c < base.len() { base[c] } else { 0.0 }).collect()
        }
    }
}

/// L = -0.691 + 10 log10(z), floored at -70 LUFS.
pub fn energy_to_lufs(energy: f64) -> f64 {
    if energy <= 0.0 {
        return LOUDNESS_FLOOR;
    }
    LOUDNESS_FLOOR.max(-0.691 + 10.0 * energy.log10())
}

fn cumsum(z: &[f64]) -> Vec<f64> {
    let mut c = Vec::with_capacity(z.len() + 1);
    let mut acc = 0.0;
    c.push(0.0);
    for v in z {
        acc += v;
        c.push(acc);
    }
    c
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// 400 ms blocks with 75 % overlap: means of 4 consecutive sub-blocks.
pub fn momentary_block_energies(z: &[f64]) -> Vec<f64> {
    if z.is_empty() {
        return Vec::new();
    }
    if z.len() < 4 {
        return vec![mean(z)];
    }
    let c = cumsum(z);
    (4..c.len()).map(|i| (c[i] - c[i - 4]) / 4.0).collect()
}

/// Blocks passing both gates: >= -70 LUFS, then >= mean - 10 LU.
pub fn gated_blocks(blocks: &[f64]) -> Vec<f64> {
    let gate = abs_gate_energy();
    let above: Vec<f64> = blocks.iter().copied().filter(|&z| z >= gate).collect();
    if above.is_empty() {
        return above;
    }
    let relative = mean(&above) * 0.1;
    above.into_iter().filter(|&z| z >= relative).collect()
}

/// `lufs` (4.8), LUFS, -70..40: integrated loudness,
/// `-0.691 + 10 log10(mean of the gated Z_b)` over the 400 ms momentary blocks
/// passing the absolute (-70 LUFS) and relative (-10 LU) gates; -70 for silence.
/// ITU-R BS.1770-4; libebur128 `ebur128_loudness_global`.
pub fn lufs(z: &[f64]) -> f64 {
    let gated = gated_blocks(&momentary_block_energies(z));
    if gated.is_empty() {
        return LOUDNESS_FLOOR;
    }
    energy_to_lufs(mean(&gated))
}

/// `loudness_variation_std` (4.22), LU, 0..100: population standard deviation
/// of `-0.691 + 10 log10(Z_b)` over the gated momentary blocks of [`lufs`];
/// 0 with fewer than 2 (silence, under 500 ms).
pub fn loudness_variation_std(z: &[f64]) -> f64 {
    let gated = gated_blocks(&momentary_block_energies(z));
    if gated.len() < 2 {
        return 0.0;
    }
    let levels: Vec<f64> = gated.iter().map(|g| -0.691 + 10.0 * g.log10()).collect();
    let m = mean(&levels);
    (levels.iter().map(|l| (l - m) * (l - m)).sum::<f64>() / levels.len() as f64).sqrt()
}

/// `dynamic_range_variation` (4.21), LU, 0..100: loudness range (LRA) of the
/// 3 s short-term blocks every 1 s, gated at -70 LUFS and -20 LU,
/// `max(0, 10 log10(s_hi / s_lo))` at the 10th and 95th percentiles
/// (libebur128's indexing); 0 with fewer than 2 blocks (silence, under 4 s).
/// EBU Tech 3342; libebur128 `ebur128_loudness_range`.
pub fn dynamic_range_variation(z: &[f64]) -> f64 {
    if z.len() < 30 {
        return 0.0;
    }
    let c = cumsum(z);
    let gate = abs_gate_energy();
    let short: Vec<f64> = (0..=z.len() - 30)
        .step_by(10)
        .map(|s| (c[s + 30] - c[s]) / 30.0)
        .filter(|&e| e >= gate)
        .collect();
    if short.is_empty() {
        return 0.0;
    }
    let relative = mean(&short) * 0.01;
    let mut kept: Vec<f64> = short.into_iter().filter(|&e| e >= relative).collect();
    kept.sort_by(|a, b| a.total_cmp(b));
    let n = kept.len();
    if n < 2 {
        return 0.0;
    }
    let low = kept[((n - 1) as f64 * 0.10 + 0.5) as usize];
    let high = kept[((n - 1) as f64 * 0.95 + 0.5) as usize];
    (10.0 * (high / low).log10()).max(0.0)
}
