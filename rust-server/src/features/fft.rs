//! Real FFTs (realfft: unnormalised, like numpy/scipy) with reusable buffers.

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use std::sync::Arc;

/// A forward real FFT of one size that writes |X_k|^2 into `power`.
pub struct PowerSpectrum {
    fft: Arc<dyn RealToComplex<f32>>,
    input: Vec<f32>,
    output: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
}

impl PowerSpectrum {
    pub fn new(n: usize) -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n);
        let input = fft.make_input_vec();
        let output = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        PowerSpectrum { fft, input, output, scratch }
    }

    pub fn bins(&self) -> usize {
        self.output.len()
    }

    /// The complex spectrum of the last [`compute`](Self::compute) (n/2+1 bins).
    pub fn spectrum(&self) -> &[Complex<f32>] {
        &self.output
    }

    /// Power spectrum of `frame * window` (both of the FFT's length) into `power` (n/2+1 bins).
    #[inline(always)]
    pub fn compute(&mut self, frame: &[f32], window: &[f32], power: &mut [f32]) {
        for ((dst, &x), &w) in self.input.iter_mut().zip(frame).zip(window) {
            *dst = x * w;
        }
        // lengths are right by construction; an error here would be a bug, reported as zeros
        if self.fft.process_with_scratch(&mut self.input, &mut self.output, &mut self.scratch).is_err() {
            power.iter_mut().for_each(|p| *p = 0.0);
            return;
        }
        for (p, c) in power.iter_mut().zip(&self.output) {
            *p = c.re * c.re + c.im * c.im;
        }
    }
}

/// Autocorrelations of windows of one length by FFT: `r[l] = sum_t x_t x_{t+l}` for `l < n`, from the
/// power spectrum of `x` zero-padded to the power of two at least `2n` (numpy's way in the Python
/// engine; a direct sum over 512 lags costs ~130,000 multiply-adds, this ~20,000).
pub struct Autocorrelation {
    forward: Arc<dyn RealToComplex<f64>>,
    inverse: Arc<dyn realfft::ComplexToReal<f64>>,
    padded: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl Autocorrelation {
    pub fn new(n: usize) -> Self {
        let size = (2 * n).next_power_of_two();
        let mut planner = RealFftPlanner::<f64>::new();
        let forward = planner.plan_fft_forward(size);
        let inverse = planner.plan_fft_inverse(size);
        let scratch_len = forward.get_scratch_len().max(inverse.get_scratch_len());
        Autocorrelation {
            padded: forward.make_input_vec(),
            spectrum: forward.make_output_vec(),
            scratch: vec![Complex::new(0.0, 0.0); scratch_len],
            forward,
            inverse,
        }
    }

    /// `out[l]` for `l < out.len() <= x.len()`; zeros if the FFT refuses its buffers (a bug).
    pub fn compute(&mut self, x: &[f64], out: &mut [f64]) {
        let size = self.padded.len();
        self.padded[..x.len()].copy_from_slice(x);
        self.padded[x.len()..].iter_mut().for_each(|v| *v = 0.0);
        let ok = self.forward.process_with_scratch(&mut self.padded, &mut self.spectrum, &mut self.scratch).is_ok();
        for c in self.spectrum.iter_mut() {
            *c = Complex::new(c.norm_sqr(), 0.0);
        }
        let ok = ok && self.inverse.process_with_scratch(&mut self.spectrum, &mut self.padded, &mut self.scratch).is_ok();
        for (o, &v) in out.iter_mut().zip(&self.padded) {
            *o = if ok { v / size as f64 } else { 0.0 };
        }
    }
}
