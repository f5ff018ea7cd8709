//! Loops the compiler can vectorise: a branch-free natural logarithm and sums
//! in interleaved partial sums.
//!
//! The logarithm is accurate to about 1e-7 relative (f32 rounding) for
//! positive normal inputs, which is all the spectra give (power is floored
//! before the log). libm's `logf` per bin was the largest single cost of the
//! spectral features.
//!
//! A running f64 sum is a chain of dependent additions, one every 4 cycles; the
//! sums here keep four independent chains (SIMD lanes), which only changes the
//! rounding order, as numpy's pairwise sums do.

const LN2: f32 = std::f32::consts::LN_2;

/// ln(x) for a positive normal f32.
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    // split x = m * 2^e with m in [sqrt(1/2), sqrt(2))
    let adjusted = bits.wrapping_sub(0x3f35_04f3); // bits of sqrt(1/2)
    let e = (adjusted as i32) >> 23;
    let m = f32::from_bits(bits.wrapping_sub((e as u32) << 23));
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    // 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + s^7/7 + s^9/9)
    let poly = 1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0))));
    e as f32 * LN2 + 2.0 * s * poly
}

/// out[k] = ln(max(x[k], floor)).
#[inline(always)]
pub fn ln_floored(x: &[f32], floor: f32, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = ln(v.max(floor));
    }
}

/// `sum_i f(x_i)` in four interleaved partial sums.
#[inline(always)]
pub fn sum_by<T: Copy>(x: &[T], f: impl Fn(T) -> f64) -> f64 {
    let mut partial = [0f64; 4];
    let chunks = x.chunks_exact(4);
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for i in 0..4 {
            partial[i] += f(c[i]);
        }
    }
    (partial[0] + partial[1]) + (partial[2] + partial[3]) + tail
}

/// `sum_i f(a_i, b_i)` over the common length, in four interleaved partial sums.
#[inline(always)]
pub fn sum_pairs<T: Copy>(a: &[T], b: &[T], f: impl Fn(T, T) -> f64) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut partial = [0f64; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a4.remainder().iter().zip(b4.remainder()).map(|(&x, &y)| f(x, y)).sum();
    for (x, y) in a4.zip(b4) {
        for i in 0..4 {
            partial[i] += f(x[i], y[i]);
        }
    }
    (partial[0] + partial[1]) + (partial[2] + partial[3]) + tail
}

/// `sum_i a_i b_i`.
#[inline(always)]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    sum_pairs(a, b, |x, y| x * y)
}

#[cfg(test)]
mod tests {
    #[test]
    fn partial_sums_match_a_running_sum() {
        let x: Vec<f32> = (0..1003).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01).collect();
        let running: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
        assert!((super::sum_by(&x, |v| v as f64 * v as f64) - running).abs() < 1e-12 * running);
        let y: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        assert!((super::dot(&y, &y) - running).abs() < 1e-12 * running);
        assert_eq!(super::sum_by(&[], |v: f32| v as f64), 0.0);
    }

    #[test]
    fn matches_libm() {
        let mut x = 1e-20f32;
        while x < 1e20 {
            let (got, want) = (super::ln(x) as f64, (x as f64).ln());
            assert!((got - want).abs() <= 2e-6 * want.abs().max(1.0), "{x}: {got} vs {want}");
            x *= 1.37;
        }
    }
}
