//! One decoded stream, whichever decoder serves it: the choice of decoder per
//! container and codec, and the checks every decoder gets (sample rate and
//! channel count, no change mid-stream, block sizes).
//!
//! | content | decoder | module |
//! |---|---|---|
//! | FLAC, WAV, AIFF/AIFC, CAF (PCM, ALAC), Ogg Vorbis, Ogg FLAC, MP4 ALAC | symphonia | `symphonia.rs` |
//! | MPEG audio: MP3, MP2, MP1 | libmpg123 (the Python engine's decoder through libsndfile) | `mpg123.rs` |
//! | Ogg Opus | libopus (reference decoder), our Ogg demuxing | `opus.rs` |
//! | MP4/M4A AAC (LC, HE-AAC v1/v2), ADTS AAC, WavPack, APE, W64 | FFmpeg (libavcodec/libavformat) | `ffmpeg.rs` |
//!
//! An I/O error inside the packet loop is an error, never a silent end of
//! stream; a stream that stops mid-packet is remembered so the caller can
//! report it as `truncated`.

use super::sniff::{self, Sniffed};
use crate::error::{AnalysisError, ErrorCode, Result};
use crate::features::frames::{MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
use std::fs::File;

pub const MAX_CHANNELS: usize = 64;

/// What one call of [`Packets::next`] produced.
pub enum Step {
    /// `frames` interleaved frames of `channels` channels at `rate` Hz are in the buffer.
    Audio { frames: usize, rate: u32, channels: usize },
    /// The stream ended cleanly.
    End,
    /// The file ended inside a packet.
    EndMidPacket,
}

/// A decoder's packet loop: fill `buf` with the next decoded packet (interleaved f32, full scale +-1).
pub trait Packets {
    fn next(&mut self, buf: &mut Vec<f32>) -> Result<Step>;
}

/// What a decoder knows once the stream is open (rate and channels 0 when only decoding tells).
pub struct Opened {
    pub codec: String,
    pub sample_rate: u32,
    pub channels: usize,
    pub declared_duration_s: Option<f64>,
    pub bits_per_sample: Option<u32>,
    pub packets: Box<dyn Packets>,
}

/// What the decoder knows before and after decoding, plus the live decoder.
pub struct DecodedStream {
    pub container: &'static str,
    pub codec: String,
    pub sample_rate: u32,
    pub channels: usize,
    pub declared_duration_s: Option<f64>,
    pub bits_per_sample: Option<u32>,
    pub frames_decoded: u64,
    /// False when the container's last page is missing (Ogg without an EOS page).
    pub ends_cleanly: bool,
    /// True when the reader hit the end of the file inside a packet.
    pub ended_mid_packet: bool,
    /// Ogg with a complete end-of-stream page: the stream's length by its last page's granule
    /// position, seconds (pre-skip removed for Opus). Decoding less means pages were lost.
    pub ogg_expected_s: Option<f64>,
    /// Float PCM: every block is checked for NaN and infinity (`corrupt`); other decoders
    /// produce finite samples by construction.
    check_finite: bool,
    packets: Box<dyn Packets>,
    /// Whether the decoder's output rate may differ from what the container said
    /// (HE-AAC: the container declares the core rate, SBR doubles it).
    rate_from_decoder: bool,
    buf: Vec<f32>,
}

pub fn validate_format(sample_rate: u32, channels: usize) -> Result<()> {
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
        return Err(AnalysisError::new(
            ErrorCode::UnsupportedFormat,
            "probe",
            format!("sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"),
        ));
    }
    if !(1..=MAX_CHANNELS).contains(&channels) {
        return Err(AnalysisError::new(ErrorCode::Corrupt, "probe", format!("stream declares {channels} channels")));
    }
    Ok(())
}

/// The decoder for a sniffed container, opened.
fn open_decoder(file: File, size: u64, found: &Sniffed, head: &[u8], tail: &[u8]) -> Result<Opened> {
    match (found.container, found.codec) {
        ("ogg", Some("opus")) => super::opus::open(file, size, found),
        ("mp3", _) => super::mpg123::open(file, size, found, head),
        // Vorbis beyond stereo: symphonia 0.6 decoded three channels of a 5.1 file at libvorbis's default
        // (bit-rate managed) setup wrong (7 dB SNR or worse against FFmpeg, peaks of 2.6 from a 1.2 source);
        // FFmpeg decodes it exactly, in the WAV channel order
        ("ogg", Some("vorbis")) if sniff::vorbis_channels(head).is_some_and(|c| c > 2) => {
            super::ffmpeg::open(file, size, found, tail)
        }
        ("mp4" | "caf", _) => {
            let spare = file.try_clone().map_err(|e| super::file::io_error("probe", &e))?;
            // symphonia for ALAC and PCM; AAC, and codecs it does not know, go to FFmpeg
            match super::symphonia::open(file, size, found, head) {
                Ok(Some(opened)) => Ok(opened),
                Ok(None) => super::ffmpeg::open(spare, size, found, tail),
                Err(e) if e.code == ErrorCode::UnsupportedFormat => super::ffmpeg::open(spare, size, found, tail),
                Err(e) => Err(e),
            }
        }
        ("aac" | "wavpack" | "ape" | "w64", _) => super::ffmpeg::open(file, size, found, tail),
        // RF64 (WAV with 64-bit sizes, for recordings over 4 GiB): symphonia has no reader for it, FFmpeg's
        // WAV demuxer reads it. Not big-endian RIFX: FFmpeg 5.1 decoded sox's RIFX as little-endian noise;
        // symphonia refuses it (`unsupported_format`), so the Python engine (libsndfile) reads it, loudly.
        ("wav", _) if head.starts_with(b"RF64") => super::ffmpeg::open(file, size, found, tail),
        _ => super::symphonia::open(file, size, found, head)?.ok_or_else(|| {
            AnalysisError::new(ErrorCode::UnsupportedFormat, "probe", format!("{} codec not decoded", found.container))
        }),
    }
}

impl DecodedStream {
    /// Recognise and open the audio; `head`/`tail` are the first 64 KiB of the
    /// audio (after any leading tags) and the file's last 64 KiB.
    pub fn open(file: File, size: u64, found: &Sniffed, head: &[u8], tail: &[u8]) -> Result<Self> {
        let opened = open_decoder(file, size, found, head, tail)?;
        if opened.sample_rate != 0 || opened.channels != 0 {
            validate_format(opened.sample_rate, opened.channels)?;
        }
        let rate_from_decoder = matches!(opened.codec.as_str(), "aac");
        let ogg_granule = if found.container == "ogg" { sniff::ogg_last_granule(tail) } else { None };
        let ogg_expected_s = ogg_granule.and_then(|g| match found.codec {
            Some("opus") => Some(g.saturating_sub(sniff::opus_pre_skip(head)? as u64) as f64 / 48_000.0),
            _ if opened.sample_rate > 0 => Some(g as f64 / opened.sample_rate as f64),
            _ => None,
        });
        let check_finite = opened.codec.starts_with("pcm_f");
        Ok(DecodedStream {
            container: found.container,
            codec: opened.codec,
            sample_rate: opened.sample_rate,
            channels: opened.channels,
            declared_duration_s: opened.declared_duration_s,
            bits_per_sample: opened.bits_per_sample,
            frames_decoded: 0,
            ends_cleanly: found.container != "ogg" || sniff::ogg_ends_cleanly(tail),
            ended_mid_packet: false,
            ogg_expected_s,
            check_finite,
            packets: opened.packets,
            rate_from_decoder,
            buf: Vec::new(),
        })
    }

    pub fn decoded_duration_s(&self) -> f64 {
        if self.sample_rate == 0 {
            0.0
        } else {
            self.frames_decoded as f64 / self.sample_rate as f64
        }
    }

    /// The last decoded packet as interleaved f32 (full scale +-1).
    pub fn block(&self) -> &[f32] {
        &self.buf
    }

    /// Decode the next packet into [`Self::block`]; false at the end of the stream.
    pub fn next_block(&mut self) -> Result<bool> {
        let (frames, rate, channels) = match self.packets.next(&mut self.buf)? {
            Step::Audio { frames, rate, channels } => (frames, rate, channels),
            Step::End => return Ok(false),
            Step::EndMidPacket => {
                self.ended_mid_packet = true;
                return Ok(false);
            }
        };
        let first = self.frames_decoded == 0;
        if (self.channels == 0 && self.sample_rate == 0) || (first && self.rate_from_decoder) {
            validate_format(rate, channels)?;
            self.sample_rate = rate;
            self.channels = channels;
        } else if channels != self.channels || (rate != self.sample_rate && self.sample_rate != 0) {
            return Err(AnalysisError::new(
                ErrorCode::Corrupt,
                "decode",
                format!("the stream changed to {channels} channels at {rate} Hz mid-stream"),
            ));
        }
        if self.buf.len() != frames * channels {
            return Err(AnalysisError::new(ErrorCode::Internal, "decode", "decoded buffer has an unexpected size"));
        }
        if self.check_finite && !all_finite(&self.buf) {
            return Err(AnalysisError::new(ErrorCode::Corrupt, "decode", "the stream contains NaN or infinite samples"));
        }
        self.frames_decoded += frames as u64;
        Ok(true)
    }
}

/// True when no sample is NaN or infinite (x - x is 0 for finite x, NaN otherwise; lanes of 8
/// so the loop vectorises).
fn all_finite(samples: &[f32]) -> bool {
    let mut acc = [0.0f32; 8];
    let chunks = samples.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i] - c[i];
        }
    }
    acc.iter().chain(rest).all(|x| (x - x) == 0.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn non_finite_samples_are_found() {
        let mut x = vec![0.5f32; 37];
        assert!(super::all_finite(&x));
        x[35] = f32::NAN;
        assert!(!super::all_finite(&x));
        x[35] = 0.0;
        x[3] = f32::INFINITY;
        assert!(!super::all_finite(&x));
        x[3] = f32::NEG_INFINITY;
        assert!(!super::all_finite(&x));
    }
}
