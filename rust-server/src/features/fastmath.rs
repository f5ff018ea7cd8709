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
    finish_pairs(&mut [0f64; 4], &a[..n], &b[..n], f)
}

/// `sum_i a_i b_i`.
#[inline(always)]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    sum_pairs(a, b, |x, y| x * y)
}

/// `out[l] = dot(x[..n - l], x[l..])` for every lag `l < out.len()`, with [`dot`]'s bits.
///
/// Four lags at a time share the loads of `x[t]`, and their sixteen partial sums are independent
/// chains, where one [`dot`] per lag waits on its own four. Each lag's partial `i` still adds
/// `x[4j + i] x[4j + i + l]` for `j = 0, 1, ...` in order, and the chunks past the common length and
/// the tail go through [`sum_pairs`]'s own code, so the sums are exactly [`dot`]'s.
#[inline(always)]
pub fn autocorrelation(x: &[f64], out: &mut [f64]) {
    const LAGS: usize = 4;
    let n = x.len();
    let lags = out.len().min(n);
    let mut first = 0;
    while first + LAGS <= lags {
        // the last of the four lags has the fewest whole chunks; all four have at least these
        let common = (n - (first + LAGS - 1)) / 4;
        let mut partial = [[0f64; 4]; LAGS];
        for j in 0..common {
            let a = &x[4 * j..4 * j + 4];
            for (k, p) in partial.iter_mut().enumerate() {
                let b = &x[4 * j + first + k..4 * j + first + k + 4];
                for i in 0..4 {
                    p[i] += a[i] * b[i];
                }
            }
        }
        for (k, p) in partial.iter_mut().enumerate() {
            let lag = first + k;
            let (a, b) = (&x[4 * common..n - lag], &x[4 * common + lag..]);
            out[lag] = finish_pairs(p, a, b, |u, v| u * v);
        }
        first += LAGS;
    }
    for lag in first..lags {
        out[lag] = dot(&x[..n - lag], &x[lag..]);
    }
}

/// [`sum_pairs`] of `a`, `b` (equal lengths) continued from the partial sums `partial`.
#[inline(always)]
fn finish_pairs<T: Copy>(partial: &mut [f64; 4], a: &[T], b: &[T], f: impl Fn(T, T) -> f64) -> f64 {
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a4.remainder().iter().zip(b4.remainder()).map(|(&x, &y)| f(x, y)).sum();
    for (x, y) in a4.zip(b4) {
        for i in 0..4 {
            partial[i] += f(x[i], y[i]);
        }
    }
    (partial[0] + partial[1]) + (partial[2] + partial[3]) + tail
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
    fn autocorrelation_has_dot_s_bits() {
        for n in [0usize, 1, 3, 4, 7, 64, 511, 512, 513] {
            let x: Vec<f64> = (0..n).map(|i| ((i * 7919 % 1009) as f64 - 504.0) / 97.0).collect();
            for lags in [0usize, 1, 5, 8, n / 2, n, n + 3] {
                let mut out = vec![f64::NAN; lags];
                super::autocorrelation(&x, &mut out);
                for (lag, &r) in out.iter().enumerate().take(n) {
                    assert_eq!(r.to_bits(), super::dot(&x[..n - lag], &x[lag..]).to_bits(), "n {n} lag {lag}");
                }
            }
        }
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
