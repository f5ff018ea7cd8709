//! Branch-free natural logarithm over slices (the compiler vectorises it).
//!
//! Accurate to about 1e-7 relative (f32 rounding) for positive normal inputs,
//! which is all the spectra give (power is floored before the log). libm's
//! `logf` per bin was the largest single cost of the spectral features.

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
pub fn ln_floored(x: &[f32], floor: f32, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = ln(v.max(floor));
    }
}

#[cfg(test)]
mod tests {
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
