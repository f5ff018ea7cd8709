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
