//! The per-sample work of a stereo track in one pass over the interleaved frames.
//!
//! For every frame it runs both channels' K-weighting cascades, adds the
//! sub-block sums (K-weighted and raw squares, peak), the whole-track stereo
//! sums (LL, RR, LR) and writes the mono downmix. One loop instead of three
//! means one read of the samples, and the two channels' biquads (the
//! latency-bound part) run side by side. On x86-64 with FMA both channels sit
//! in one 128-bit register; every lane does exactly the arithmetic of
//! [`KState::process_fused`], so the results are the same bits as the scalar
//! FMA path (checked by the unit test below).

use super::loudness::{Biquad, KState};

/// Running sums the stereo pass updates; the caller resets `weighted`, `raw`
/// and `peak` per sub-block and keeps `ll_rr`/`lr` for the whole track.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StereoSums {
    pub weighted: [f64; 2],
    pub raw: [f64; 2],
    pub peak: f32,
    pub ll_rr: [f64; 2],
    pub lr: f64,
}

/// Process `segment` (interleaved L R frames); `mono[i]` gets `(L + R) * 0.5` of frame i.
pub fn run(filters: &[Biquad; 2], state: &mut [KState; 2], sums: &mut StereoSums, segment: &[f32], mono: &mut [f32]) {
    debug_assert_eq!(segment.len(), 2 * mono.len());
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU was just checked for FMA (which implies the AVX encoding used).
        unsafe { x86::run_fma(filters, state, sums, segment, mono) };
        return;
    }
    run_scalar(filters, state, sums, segment, mono, KState::process);
}

/// The portable form (also the reference for the SIMD one).
#[inline(always)]
fn run_scalar(
    filters: &[Biquad; 2],
    state: &mut [KState; 2],
    sums: &mut StereoSums,
    segment: &[f32],
    mono: &mut [f32],
    filter: impl Fn(&mut KState, &[Biquad; 2], f64) -> f64,
) {
    let [mut sl, mut sr] = *state;
    let mut s = *sums;
    for (f, m) in segment.chunks_exact(2).zip(mono.iter_mut()) {
        let (l, r) = (f[0] as f64, f[1] as f64);
        let yl = filter(&mut sl, filters, l);
        let yr = filter(&mut sr, filters, r);
        s.weighted[0] += yl * yl;
        s.weighted[1] += yr * yr;
        s.raw[0] += l * l;
        s.raw[1] += r * r;
        s.ll_rr[0] += l * l;
        s.ll_rr[1] += r * r;
        s.lr += l * r;
        let a = f[0].abs().max(f[1].abs());
        if a > s.peak {
            s.peak = a;
        }
        *m = (f[0] + f[1]) * 0.5f32;
    }
    *state = [sl, sr];
    *sums = s;
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Biquad, KState, StereoSums};
    use std::arch::x86_64::*;

    /// Lane 0 = left, lane 1 = right.
    #[target_feature(enable = "avx,fma")]
    pub(super) unsafe fn run_fma(
        filters: &[Biquad; 2],
        state: &mut [KState; 2],
        sums: &mut StereoSums,
        segment: &[f32],
        mono: &mut [f32],
    ) {
        let pair = |l: f64, r: f64| _mm_set_pd(r, l);
        let coef = |c: f64| _mm_set1_pd(c);
        let b0 = [coef(filters[0].b[0]), coef(filters[1].b[0])];
        let b1 = [coef(filters[0].b[1]), coef(filters[1].b[1])];
        let b2 = [coef(filters[0].b[2]), coef(filters[1].b[2])];
        let na1 = [coef(-filters[0].a[1]), coef(-filters[1].a[1])];
        let na2 = [coef(-filters[0].a[2]), coef(-filters[1].a[2])];
        let (zl, zr) = (state[0].z, state[1].z);
        let mut s0 = [pair(zl[0][0], zr[0][0]), pair(zl[1][0], zr[1][0])];
        let mut s1 = [pair(zl[0][1], zr[0][1]), pair(zl[1][1], zr[1][1])];
        let mut weighted = pair(sums.weighted[0], sums.weighted[1]);
        let mut raw = pair(sums.raw[0], sums.raw[1]);
        let mut ll_rr = pair(sums.ll_rr[0], sums.ll_rr[1]);
        let (mut lr, mut peak) = (sums.lr, sums.peak);
        for (f, m) in segment.chunks_exact(2).zip(mono.iter_mut()) {
            let (l, r) = (f[0] as f64, f[1] as f64);
            let x = pair(l, r);
            let mut v = x;
            for st in 0..2 {
                let y = _mm_fmadd_pd(b0[st], v, s0[st]);
                s0[st] = _mm_fmadd_pd(na1[st], y, _mm_fmadd_pd(b1[st], v, s1[st]));
                s1[st] = _mm_fmadd_pd(na2[st], y, _mm_mul_pd(b2[st], v));
                v = y;
            }
            weighted = _mm_add_pd(weighted, _mm_mul_pd(v, v));
            let xx = _mm_mul_pd(x, x);
            raw = _mm_add_pd(raw, xx);
            ll_rr = _mm_add_pd(ll_rr, xx);
            lr += l * r;
            let a = f[0].abs().max(f[1].abs());
            if a > peak {
                peak = a;
            }
            *m = (f[0] + f[1]) * 0.5f32;
        }
        let lanes = |v: __m128d| {
            let mut out = [0f64; 2];
            _mm_storeu_pd(out.as_mut_ptr(), v);
            out
        };
        let (s0l, s1l) = (lanes(s0[0]), lanes(s1[0]));
        let (s0h, s1h) = (lanes(s0[1]), lanes(s1[1]));
        state[0].z = [[s0l[0], s1l[0]], [s0h[0], s1h[0]]];
        state[1].z = [[s0l[1], s1l[1]], [s0h[1], s1h[1]]];
        *sums = StereoSums { weighted: lanes(weighted), raw: lanes(raw), peak, ll_rr: lanes(ll_rr), lr };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::loudness::k_weighting;

    #[test]
    fn simd_matches_scalar_fused_bit_for_bit() {
        let filters = k_weighting(44_100);
        let mut seed = 7u32;
        let frames: Vec<f32> = (0..2 * 10_000)
            .map(|_| {
                seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                (seed >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect();
        let (mut st_a, mut sums_a, mut mono_a) = ([KState::default(); 2], StereoSums::default(), vec![0f32; 10_000]);
        let (mut st_b, mut sums_b, mut mono_b) = ([KState::default(); 2], StereoSums::default(), vec![0f32; 10_000]);
        run(&filters, &mut st_a, &mut sums_a, &frames, &mut mono_a);
        let fused = |s: &mut KState, f: &[Biquad; 2], x: f64| s.process_fused(f, x);
        let plain = |s: &mut KState, f: &[Biquad; 2], x: f64| s.process(f, x);
        #[cfg(target_arch = "x86_64")]
        let has_fma = std::arch::is_x86_feature_detected!("fma");
        #[cfg(not(target_arch = "x86_64"))]
        let has_fma = false;
        if has_fma {
            run_scalar(&filters, &mut st_b, &mut sums_b, &frames, &mut mono_b, fused);
        } else {
            run_scalar(&filters, &mut st_b, &mut sums_b, &frames, &mut mono_b, plain);
        }
        assert_eq!(sums_a, sums_b);
        assert_eq!(mono_a, mono_b);
        assert_eq!(format!("{st_a:?}"), format!("{st_b:?}"));
    }
}
