//! Streams a track through every feature in one pass, in bounded memory
//! (`pyengine/features/accumulator.py`).
//!
//! Feed interleaved f32 samples with [`FingerprintAccumulator::add`] in chunks
//! of any size (the result does not depend on the chunking); call
//! [`FingerprintAccumulator::finish`] for the 25 numbers. Per track it keeps
//! one float per 100 ms sub-block (3 arrays) and one per onset frame (~86/s).
//!
//! This module holds the streaming state only (sub-block sums, the spectral
//! framer, the onset framer, the stereo sums); every dimension is computed by
//! the function of its name in its family's module, and `finish` builds the
//! [`Fingerprint`] field by field from them.

use super::fastmath;
use super::fft::PowerSpectrum;
use super::frames::{bin_frequencies, frame_params, periodic_hann, FrameParams, LOG_POWER_FLOOR, SILENCE_MEAN_SQUARE};
use super::harmonicity::{self, HarmonicSums};
use super::spectral_shape::{self, ShapeSums};
use super::{bands, dynamics, loudness, rhythm, stereo, stereo_pass, Fingerprint};
use crate::error::{AnalysisError, ErrorCode, Result};

/// Running loudness/level state for 100 ms sub-blocks.
struct Levels {
    filters: [loudness::Biquad; 2],
    state: Vec<loudness::KState>,
    weights: Vec<f64>,
    size: usize,
    fill: usize,
    weighted_sq: Vec<f64>,
    raw_sq: Vec<f64>,
    peak: f32,
    energy: Vec<f64>,
    mean_square: Vec<f64>,
    peaks: Vec<f64>,
}

impl Levels {
    fn new(sample_rate: u32, channels: usize, size: usize) -> Self {
        Levels {
            filters: loudness::k_weighting(sample_rate),
            state: vec![loudness::KState::default(); channels],
            weights: loudness::channel_weights(channels),
            size,
            fill: 0,
            weighted_sq: vec![0.0; channels],
            raw_sq: vec![0.0; channels],
            peak: 0.0,
            energy: Vec::new(),
            mean_square: Vec::new(),
            peaks: Vec::new(),
        }
    }

    /// Interleaved frames, split at sub-block boundaries; each channel filtered as a strided run.
    #[inline(always)]
    fn add(&mut self, interleaved: &[f32]) {
        let ch = self.state.len();
        let mut rest = interleaved;
        while !rest.is_empty() {
            let frames = (rest.len() / ch).min(self.size - self.fill);
            let (segment, tail) = rest.split_at(frames * ch);
            self.add_segment(segment);
            self.fill += frames;
            if self.fill == self.size {
                self.close_sub_block();
            }
            rest = tail;
        }
    }

    /// Stereo: levels, the whole-track stereo sums and the mono downmix in one
    /// pass ([`stereo_pass`]); `mono` has one slot per frame of `interleaved`.
    #[inline(always)]
    fn add_stereo(&mut self, interleaved: &[f32], mono: &mut [f32], ll_rr: &mut [f64; 2], lr: &mut f64) {
        let mut rest = interleaved;
        let mut mono_rest = mono;
        while !rest.is_empty() {
            let frames = (rest.len() / 2).min(self.size - self.fill);
            let (segment, tail) = rest.split_at(frames * 2);
            let (mono_segment, mono_tail) = std::mem::take(&mut mono_rest).split_at_mut(frames);
            // accumulate from the running sums (not per segment) so chunking never changes the rounding
            let mut sums = stereo_pass::StereoSums {
                weighted: [self.weighted_sq[0], self.weighted_sq[1]],
                raw: [self.raw_sq[0], self.raw_sq[1]],
                peak: self.peak,
                ll_rr: *ll_rr,
                lr: *lr,
            };
            let mut state = [self.state[0], self.state[1]];
            stereo_pass::run(&self.filters, &mut state, &mut sums, segment, mono_segment);
            self.state.copy_from_slice(&state);
            self.weighted_sq.copy_from_slice(&sums.weighted);
            self.raw_sq.copy_from_slice(&sums.raw);
            self.peak = sums.peak;
            (*ll_rr, *lr) = (sums.ll_rr, sums.lr);
            self.fill += frames;
            if self.fill == self.size {
                self.close_sub_block();
            }
            rest = tail;
            mono_rest = mono_tail;
        }
    }

    #[inline(always)]
    fn add_segment(&mut self, segment: &[f32]) {
        let ch = self.state.len();
        {
            for c in 0..ch {
                let mut state = self.state[c];
                let (mut wsq, mut rsq, mut peak) = (self.weighted_sq[c], self.raw_sq[c], self.peak);
                for x in segment.iter().skip(c).step_by(ch) {
                    let y = state.process(&self.filters, *x as f64);
                    wsq += y * y;
                    rsq += (*x as f64) * (*x as f64);
                    peak = peak.max(x.abs());
                }
                self.state[c] = state;
                self.weighted_sq[c] = wsq;
                self.raw_sq[c] = rsq;
                self.peak = peak;
            }
        }
    }

    fn close_sub_block(&mut self) {
        {
            let size = self.size as f64;
            let z: f64 = self.weighted_sq.iter().zip(&self.weights).map(|(s, g)| g * (s / size)).sum();
            self.energy.push(z);
            self.mean_square.push(self.raw_sq.iter().sum::<f64>() / (size * self.weighted_sq.len() as f64));
            self.peaks.push(self.peak as f64);
            self.weighted_sq.iter_mut().for_each(|s| *s = 0.0);
            self.raw_sq.iter_mut().for_each(|s| *s = 0.0);
            self.peak = 0.0;
            self.fill = 0;
        }
    }
}

/// Spectral statistics over non-overlapping periodic-Hann frames of the mono downmix.
struct Spectral {
    frame: Vec<f32>,
    fill: usize,
    fft: PowerSpectrum,
    window: Vec<f32>,
    freqs: Vec<f64>,
    freqs_f32: Vec<f32>,
    audible: Vec<bool>,
    pitch: Vec<i8>,
    power: Vec<f32>,
    magnitude: Vec<f32>,
    log_power: Vec<f32>,
    scratch: Vec<f32>,
    padded: Vec<f64>,
    band_ranges: [(usize, usize); 7],
    chroma_range: (usize, usize),
    shape_range: std::ops::Range<usize>,
    band_energy: bands::BandEnergy,
    shape: ShapeSums,
    harmonic: HarmonicSums,
}

impl Spectral {
    fn new(sample_rate: u32, size: usize) -> Self {
        let freqs = bin_frequencies(sample_rate, size);
        let bands = bands::band_index(&freqs);
        let bins = freqs.len();
        let run = |pred: &dyn Fn(usize) -> bool| -> (usize, usize) {
            let lo = (0..bins).find(|&k| pred(k)).unwrap_or(0);
            let hi = (lo..bins).find(|&k| !pred(k)).unwrap_or(bins);
            if (0..bins).any(|k| pred(k)) { (lo, hi) } else { (0, 0) }
        };
        let mut band_ranges = [(0, 0); 7];
        for (b, range) in band_ranges.iter_mut().enumerate() {
            *range = run(&|k| bands[k] == b as i8);
        }
        let pitch = harmonicity::pitch_classes(&freqs);
        let chroma_range = run(&|k| pitch[k] >= 0);
        let shape_range = spectral_shape::shape_bins(&freqs);
        Spectral {
            band_ranges,
            chroma_range,
            shape_range,
            frame: vec![0.0; size],
            fill: 0,
            fft: PowerSpectrum::new(size),
            window: periodic_hann(size),
            freqs_f32: freqs.iter().map(|&f| f as f32).collect(),
            audible: bands.iter().map(|&b| b >= 0).collect(),
            pitch,
            freqs,
            power: vec![0.0; bins],
            magnitude: vec![0.0; bins],
            log_power: vec![0.0; bins],
            scratch: Vec::with_capacity(bins),
            padded: Vec::with_capacity(bins + 2 * harmonicity::TONAL_NEIGHBOURHOOD),
            band_energy: [0.0; 7],
            shape: ShapeSums::default(),
            harmonic: HarmonicSums::default(),
        }
    }

    #[inline(always)]
    fn push_slice(&mut self, mut mono: &[f32]) {
        while !mono.is_empty() {
            let n = mono.len().min(self.frame.len() - self.fill);
            self.frame[self.fill..self.fill + n].copy_from_slice(&mono[..n]);
            self.fill += n;
            mono = &mono[n..];
            if self.fill == self.frame.len() {
                self.process_frame();
                self.fill = 0;
            }
        }
    }

    /// The zero-padded last frame, if samples remain that no frame covered.
    fn tail(&mut self) {
        if self.fill > 0 {
            self.frame[self.fill..].iter_mut().for_each(|x| *x = 0.0);
            self.process_frame();
            self.fill = 0;
        }
    }

    #[inline(always)]
    fn process_frame(&mut self) {
        let n = self.frame.len() as f64;
        let ms = fastmath::sum_by(&self.frame, |x| (x as f64) * (x as f64)) / n;
        if ms < SILENCE_MEAN_SQUARE {
            self.harmonic.pitch_step(None);
            return;
        }
        self.fft.compute(&self.frame, &self.window, &mut self.power);
        // bands and the chroma range are contiguous runs of bins (frequencies increase with k)
        for (b, &(lo, hi)) in self.band_ranges.iter().enumerate() {
            let e = fastmath::sum_by(&self.power[lo..hi], |p| p as f64);
            self.band_energy[b] += e;
            self.harmonic.audible_power += e;
        }
        let chroma = harmonicity::frame_chroma(&self.power, &self.pitch, self.chroma_range);
        for (m, &p) in self.magnitude.iter_mut().zip(&self.power) {
            *m = p.sqrt();
        }
        fastmath::ln_floored(&self.power, LOG_POWER_FLOOR, &mut self.log_power);
        let h = &mut self.harmonic;
        h.pitch_step(harmonicity::dominant_pitch_class(&chroma));
        h.active_frames += 1;
        h.chroma_concentration += harmonicity::chroma_concentration(&chroma);
        h.tonal_power += harmonicity::frame_tonal_power(&self.log_power, &self.power, &self.audible, &mut self.padded);
        let band = self.shape_range.clone();
        self.shape.add(spectral_shape::frame_shape(
            &self.magnitude[band.clone()],
            &self.log_power[band.clone()],
            &self.freqs[band.clone()],
            &self.freqs_f32[band],
            &mut self.scratch,
        ));
    }
}

/// Onset envelopes: decimate by averaging, frames of 512 every 128, log-spectral flux
/// (`transient_density`) and complex-domain flux (tempo).
struct Onsets {
    decimation: usize,
    /// `1 / decimation`: the decimation is a power of two, so multiplying is exactly dividing.
    dec_scale: f32,
    dec_sum: f32,
    dec_fill: usize,
    frame_len: usize,
    hop: usize,
    buffer: Vec<f32>,
    fft: PowerSpectrum,
    window: Vec<f32>,
    power: Vec<f32>,
    log_spectrum: Vec<f32>,
    previous: Option<Vec<f32>>,
    /// The whole envelope: `transient_density`'s onset count reads it.
    values: Vec<f64>,
    /// The tempo's envelope, from the same frames' complex spectra.
    complex_flux: rhythm::ComplexFlux,
    hfc_flux: rhythm::HfcFlux,
    /// Tempo in constant memory.
    tempo: rhythm::TempoTracker,
}

impl Onsets {
    fn new(p: &FrameParams) -> Self {
        let fft = PowerSpectrum::new(p.onset_frame);
        let bins = fft.bins();
        debug_assert!(p.onset_decimation.is_power_of_two());
        Onsets {
            decimation: p.onset_decimation,
            dec_scale: 1.0 / p.onset_decimation as f32,
            dec_sum: 0.0,
            dec_fill: 0,
            frame_len: p.onset_frame,
            hop: p.onset_hop,
            buffer: Vec::with_capacity(p.onset_frame + p.onset_hop),
            fft,
            window: periodic_hann(p.onset_frame),
            power: vec![0.0; bins],
            log_spectrum: vec![0.0; bins],
            previous: None,
            values: Vec::new(),
            complex_flux: rhythm::ComplexFlux::new(bins),
            hfc_flux: rhythm::HfcFlux::default(),
            tempo: rhythm::TempoTracker::new(p.onset_rate()),
        }
    }

    /// Decimate `mono` onto the end of the buffer, then analyse every complete frame in it.
    #[inline(always)]
    fn push_slice(&mut self, mono: &[f32]) {
        let d = self.decimation;
        if d == 1 {
            self.buffer.extend_from_slice(mono);
        } else {
            let mut rest = mono;
            if self.dec_fill > 0 {
                let n = rest.len().min(d - self.dec_fill);
                rest[..n].iter().for_each(|&x| self.dec_sum += x);
                self.dec_fill += n;
                rest = &rest[n..];
                if self.dec_fill == d {
                    self.buffer.push(self.dec_sum * self.dec_scale);
                    self.dec_sum = 0.0;
                    self.dec_fill = 0;
                }
            }
            let whole = rest.len() / d * d;
            for &x in &rest[whole..] {
                self.dec_sum += x;
                self.dec_fill += 1;
            }
            decimate(&rest[..whole], d, self.dec_scale, &mut self.buffer);
        }
        self.drain_frames();
    }

    /// Frames of `frame_len` every `hop` decimated samples; the buffer keeps what the next frame needs.
    /// (Batched per packet rather than per sample: one shift of the buffer per packet, not per hop.)
    #[inline(always)]
    fn drain_frames(&mut self) {
        let mut start = 0;
        while self.buffer.len() - start >= self.frame_len {
            let frame = &self.buffer[start..start + self.frame_len];
            self.fft.compute(frame, &self.window, &mut self.power);
            rhythm::log_power(&self.power, &mut self.log_spectrum);
            let flux = match &self.previous {
                Some(prev) => rhythm::spectral_flux(&self.log_spectrum, prev),
                None => 0.0,
            };
            self.values.push(flux);
            let complex = self.complex_flux.push(self.fft.spectrum());
            let hfc = self.hfc_flux.push(&self.power);
            self.tempo.push(complex, flux, hfc);
            match &mut self.previous {
                // the next frame overwrites log_spectrum whole, so swapping is enough
                Some(prev) => std::mem::swap(prev, &mut self.log_spectrum),
                None => self.previous = Some(self.log_spectrum.clone()),
            }
            start += self.hop;
        }
        self.buffer.drain(..start);
    }
}

/// Appends `(x[i d] + ... + x[i d + d - 1]) * scale` for each whole group of `d` in `x`, summed from
/// 0 in order as the partial group across calls is. The usual factors are spelled out: with the
/// group's length a constant the groups become independent straight-line sums, which the compiler
/// interleaves (over a run-time `d` it left one chain of dependent additions).
#[inline(always)]
fn decimate(x: &[f32], d: usize, scale: f32, out: &mut Vec<f32>) {
    let mean = |g: &[f32]| g.iter().fold(0f32, |a, &b| a + b) * scale;
    match d {
        2 => out.extend(x.chunks_exact(2).map(mean)),
        4 => out.extend(x.chunks_exact(4).map(mean)),
        8 => out.extend(x.chunks_exact(8).map(mean)),
        _ => out.extend(x.chunks_exact(d).map(mean)),
    }
}

/// One track's running analysis state. Not thread-safe; one per track.
pub struct FingerprintAccumulator {
    pub sample_rate: u32,
    pub channels: usize,
    pub params: FrameParams,
    pub samples: u64,
    levels: Levels,
    ll: f64,
    rr: f64,
    lr: f64,
    spectral: Spectral,
    onsets: Onsets,
    mono: Vec<f32>,
}

impl FingerprintAccumulator {
    pub fn new(sample_rate: u32, channels: usize) -> Result<Self> {
        if channels < 1 {
            return Err(AnalysisError::new(ErrorCode::Corrupt, "analyse", format!("stream declares {channels} channels")));
        }
        if sample_rate == 0 {
            return Err(AnalysisError::new(ErrorCode::Corrupt, "analyse", "stream declares a 0 Hz sample rate"));
        }
        let params = frame_params(sample_rate);
        Ok(FingerprintAccumulator {
            sample_rate,
            channels,
            params,
            samples: 0,
            levels: Levels::new(sample_rate, channels, params.sub_block),
            ll: 0.0,
            rr: 0.0,
            lr: 0.0,
            spectral: Spectral::new(sample_rate, params.spectral_frame),
            onsets: Onsets::new(&params),
            mono: Vec::new(),
        })
    }

    /// Consume interleaved samples (a whole number of frames), full scale +-1.
    pub fn add(&mut self, interleaved: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU was just checked for both.
            return unsafe { self.add_avx2(interleaved) };
        }
        self.add_portable(interleaved)
    }

    /// [`Self::add`] compiled for AVX2: every feature loop is `#[inline(always)]` into it, so they
    /// all get the wider vectors. The values stay the same bits: Rust never fuses or reorders float
    /// arithmetic on its own, so only the instructions change.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn add_avx2(&mut self, interleaved: &[f32]) {
        self.add_portable(interleaved)
    }

    #[inline(always)]
    fn add_portable(&mut self, interleaved: &[f32]) {
        let ch = self.channels;
        let interleaved = &interleaved[..interleaved.len() / ch * ch];
        let frames = interleaved.len() / ch;
        // every slot is written below; resize only zero-fills when the buffer grows
        self.mono.resize(frames, 0.0);
        match ch {
            2 => {
                let mut ll_rr = [self.ll, self.rr];
                self.levels.add_stereo(interleaved, &mut self.mono, &mut ll_rr, &mut self.lr);
                [self.ll, self.rr] = ll_rr;
            }
            1 => {
                self.levels.add(interleaved);
                let mut ll = self.ll;
                for &x in interleaved {
                    ll += x as f64 * x as f64;
                }
                (self.ll, self.rr, self.lr) = (ll, ll, ll);
                self.mono.copy_from_slice(interleaved);
            }
            _ => {
                self.levels.add(interleaved);
                let (mut ll, mut rr, mut lr) = (self.ll, self.rr, self.lr);
                for f in interleaved.chunks_exact(ch) {
                    let (l, r) = (f[0] as f64, f[1] as f64);
                    ll += l * l;
                    rr += r * r;
                    lr += l * r;
                }
                (self.ll, self.rr, self.lr) = (ll, rr, lr);
                let scale = 1.0f32 / ch as f32;
                for (m, f) in self.mono.iter_mut().zip(interleaved.chunks_exact(ch)) {
                    *m = f.iter().fold(0f32, |a, &b| a + b) * scale;
                }
            }
        }
        self.spectral.push_slice(&self.mono);
        self.onsets.push_slice(&self.mono);
        self.samples += frames as u64;
    }

    pub fn duration_s(&self) -> f64 {
        self.samples as f64 / self.sample_rate as f64
    }

    /// The 25 numbers. `too_short` under 100 ms; `internal` if a value is not finite.
    pub fn finish(mut self) -> Result<Fingerprint> {
        if self.samples < self.params.sub_block as u64 {
            return Err(AnalysisError::new(
                ErrorCode::TooShort,
                "analyse",
                format!("{:.1} ms of audio; the minimum is 100 ms", self.duration_s() * 1000.0),
            ));
        }
        self.spectral.tail();
        let levels = &self.levels;
        let (band_energy, shape, harmonic) = (&self.spectral.band_energy, &self.spectral.shape, &self.spectral.harmonic);
        let tempo = self.onsets.tempo.result();
        let onsets = &self.onsets.values;
        let (ll, rr, lr) = (self.ll, self.rr, self.lr);
        let fingerprint = Fingerprint {
            sub_bass_pct: bands::sub_bass_pct(band_energy),
            bass_pct: bands::bass_pct(band_energy),
            low_mid_pct: bands::low_mid_pct(band_energy),
            mid_pct: bands::mid_pct(band_energy),
            upper_mid_pct: bands::upper_mid_pct(band_energy),
            presence_pct: bands::presence_pct(band_energy),
            air_pct: bands::air_pct(band_energy),
            lufs: loudness::lufs(&levels.energy),
            crest_db: dynamics::crest_db(&levels.mean_square, &levels.peaks),
            bass_mid_ratio: bands::bass_mid_ratio(band_energy),
            tempo_bpm: rhythm::tempo_bpm(&tempo),
            rhythm_stability: rhythm::rhythm_stability(&tempo),
            transient_density: rhythm::transient_density(onsets, self.duration_s()),
            silence_ratio: dynamics::silence_ratio(&levels.mean_square),
            spectral_centroid: spectral_shape::spectral_centroid(shape),
            spectral_rolloff: spectral_shape::spectral_rolloff(shape),
            spectral_flatness: spectral_shape::spectral_flatness(shape),
            harmonic_ratio: harmonicity::harmonic_ratio(harmonic),
            pitch_stability: harmonicity::pitch_stability(harmonic),
            chroma_energy: harmonicity::chroma_energy(harmonic),
            dynamic_range_variation: loudness::dynamic_range_variation(&levels.energy),
            loudness_variation_std: loudness::loudness_variation_std(&levels.energy),
            peak_consistency: dynamics::peak_consistency(&levels.mean_square, &levels.peaks),
            stereo_width: stereo::stereo_width(ll, rr, lr),
            phase_correlation: stereo::phase_correlation(ll, rr, lr),
        };
        let bad: Vec<&str> = fingerprint.named().into_iter().filter(|(_, v)| !v.is_finite()).map(|(n, _)| n).collect();
        if !bad.is_empty() {
            return Err(AnalysisError::new(ErrorCode::Internal, "analyse", format!("non-finite values for {}", bad.join(", "))));
        }
        Ok(fingerprint)
    }
}

/// Fingerprint of an in-memory interleaved signal (tests and tools).
pub fn fingerprint_of(interleaved: &[f32], sample_rate: u32, channels: usize) -> Result<Fingerprint> {
    let mut acc = FingerprintAccumulator::new(sample_rate, channels)?;
    acc.add(interleaved);
    acc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(frames: usize, channels: usize) -> Vec<f32> {
        let mut state = 12345u32;
        (0..frames * channels)
            .map(|i| {
                state = state.wrapping_mul(1664525).wrapping_add(1013904223);
                let noise = (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                let t = (i / channels) as f32 / 44100.0;
                0.3 * (2.0 * std::f32::consts::PI * 440.0 * t).sin() + 0.05 * noise
            })
            .collect()
    }

    #[test]
    fn result_does_not_depend_on_chunking() {
        for channels in [1, 2, 6] {
            let x = signal(44100 * 3 + 777, channels);
            let whole = fingerprint_of(&x, 44100, channels).unwrap();
            for chunk in [1usize, 113, 4096, 100_000] {
                let mut acc = FingerprintAccumulator::new(44100, channels).unwrap();
                for part in x.chunks(chunk * channels) {
                    acc.add(part);
                }
                assert_eq!(acc.finish().unwrap(), whole, "chunk {chunk}, {channels} channels");
            }
        }
    }

    #[test]
    fn the_avx2_build_gives_the_portable_build_s_bits() {
        // 8 s: a whole tempo window, so every loop of the features runs in both builds
        for channels in [1, 2, 6] {
            // the test tone and noise, with a decaying burst every 0.5 s (a beat to find)
            let x: Vec<f32> = signal(44100 * 8 + 777, channels)
                .iter()
                .enumerate()
                .map(|(i, &v)| v * (1.0 + 3.0 * (-(((i / channels) % 22050) as f32) / 2000.0).exp()))
                .collect();
            let mut dispatched = FingerprintAccumulator::new(44100, channels).unwrap();
            let mut portable = FingerprintAccumulator::new(44100, channels).unwrap();
            for part in x.chunks(4096 * channels) {
                dispatched.add(part);
                portable.add_portable(part);
            }
            let portable = portable.finish().unwrap();
            assert!(portable.tempo_bpm > 0.0 && portable.harmonic_ratio > 0.0);
            assert_eq!(dispatched.finish().unwrap(), portable, "{channels} channels");
        }
    }

    #[test]
    fn too_short_and_silence() {
        let e = fingerprint_of(&[0.0; 100], 44100, 1).unwrap_err();
        assert_eq!(e.code, ErrorCode::TooShort);
        let fp = fingerprint_of(&vec![0.0; 88200], 44100, 2).unwrap();
        assert_eq!(fp.get("silence_ratio"), Some(1.0));
        assert_eq!(fp.get("lufs"), Some(-70.0));
        assert_eq!(fp.get("phase_correlation"), Some(1.0));
    }
}
