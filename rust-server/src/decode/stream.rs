//! symphonia probing and the packet loop, with typed errors.
//!
//! An I/O error inside the packet loop is an error, never a silent end of
//! stream; a stream that stops mid-packet is remembered so the caller can
//! report it as `truncated`.

use super::sniff::{self, Sniffed};
use super::source::OffsetFile;
use crate::error::{AnalysisError, ErrorCode, Result};
use crate::features::frames::{MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
use std::fs::File;
use std::io::ErrorKind;
use symphonia::core::audio::sample::SampleFormat;
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

pub const MAX_CHANNELS: usize = 64;

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
    reader: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    buf: Vec<f32>,
}

fn hint_extension(container: &str) -> Option<&'static str> {
    Some(match container {
        "flac" => "flac",
        "wav" => "wav",
        "aiff" => "aiff",
        "mp3" => "mp3",
        "mp4" => "m4a",
        "ogg" => "ogg",
        "caf" => "caf",
        "aac" => "aac",
        _ => return None,
    })
}

fn probe_error(container: &str, e: SymError) -> AnalysisError {
    match e {
        SymError::Unsupported(what) => AnalysisError::new(
            ErrorCode::UnsupportedFormat,
            "probe",
            format!("{container} stream uses a feature this engine cannot decode: {what}"),
        ),
        SymError::IoError(io) if io.kind() != ErrorKind::UnexpectedEof => {
            AnalysisError::new(ErrorCode::IoError, "probe", format!("read failed: {io}"))
        }
        other => AnalysisError::new(ErrorCode::Corrupt, "probe", format!("{container} stream cannot be opened: {other}")),
    }
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

fn codec_name(container: &str, short_name: &str, format: Option<SampleFormat>, bits: Option<u32>) -> String {
    if matches!(container, "wav" | "aiff" | "caf") && short_name.starts_with("pcm") {
        let kind = match format {
            Some(SampleFormat::F32) => "f32".to_string(),
            Some(SampleFormat::F64) => "f64".to_string(),
            Some(SampleFormat::U8) => "u8".to_string(),
            _ => format!("s{}", bits.unwrap_or(16)),
        };
        return format!("pcm_{kind}");
    }
    short_name.to_string()
}

impl DecodedStream {
    /// Recognise and open the audio; `head`/`tail` are the file's first and last 64 KiB.
    pub fn open(file: File, size: u64, found: &Sniffed, head: &[u8], tail: &[u8]) -> Result<Self> {
        let container = found.container;
        if container == "ogg" && found.codec == Some("opus") {
            return Err(AnalysisError::new(ErrorCode::UnsupportedFormat, "probe", "Opus is not decoded by this engine"));
        }
        let Some(ext) = hint_extension(container) else {
            return Err(AnalysisError::new(
                ErrorCode::UnsupportedFormat,
                "probe",
                format!("{container} is not decoded by this engine"),
            ));
        };
        let offset = found.audio_offset as u64;
        let source = OffsetFile::new(file, offset, size).map_err(|e| super::file::io_error("probe", &e))?;
        let mss = MediaSourceStream::new(Box::new(source), Default::default());
        let mut hint = Hint::new();
        hint.with_extension(ext);
        let reader = symphonia::default::get_probe()
            .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
            .map_err(|e| probe_error(container, e))?;
        let track = reader.default_track(TrackType::Audio).ok_or_else(|| {
            AnalysisError::new(ErrorCode::UnsupportedFormat, "probe", format!("{container} file has no audio stream"))
        })?;
        let track_id = track.id;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| AnalysisError::new(ErrorCode::UnsupportedFormat, "probe", "the audio track has no codec parameters"))?
            .clone();
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(&params, &AudioDecoderOptions::default())
            .map_err(|e| match e {
                SymError::Unsupported(what) => AnalysisError::new(
                    ErrorCode::UnsupportedFormat,
                    "probe",
                    format!("codec not decoded by this engine: {what}"),
                ),
                other => AnalysisError::new(ErrorCode::Corrupt, "probe", format!("decoder cannot start: {other}")),
            })?;
        let sample_rate = params.sample_rate.unwrap_or(0);
        let channels = params.channels.as_ref().map(|c| c.count()).unwrap_or(0);
        if sample_rate != 0 || channels != 0 {
            validate_format(sample_rate, channels)?;
        }
        let lossless = matches!(container, "flac" | "wav" | "aiff" | "caf") || decoder.codec_info().short_name == "alac";
        let bits_per_sample = if lossless { params.bits_per_sample } else { None };
        let codec = codec_name(container, decoder.codec_info().short_name, params.sample_format, params.bits_per_sample);

        let per_rate = |frames: Option<u64>| frames.filter(|_| sample_rate > 0).map(|f| f as f64 / sample_rate as f64);
        let off = found.audio_offset;
        let declared_duration_s = match container {
            "flac" => per_rate(sniff::flac_declared_frames(head, off)),
            "wav" => per_rate(sniff::wav_declared_frames(head, off)),
            "aiff" => per_rate(sniff::aiff_declared_frames(head, off)),
            "mp3" => sniff::mp3_declared_seconds(head, off),
            "mp4" | "caf" => per_rate(track.num_frames).or_else(|| {
                let (tb, d) = (track.time_base?, track.duration?);
                tb.calc_duration(d).map(|t| t.as_secs_f64())
            }),
            _ => None,
        };
        let ends_cleanly = container != "ogg" || sniff::ogg_ends_cleanly(tail);
        Ok(DecodedStream {
            container,
            codec,
            sample_rate,
            channels,
            declared_duration_s,
            bits_per_sample,
            frames_decoded: 0,
            ends_cleanly,
            ended_mid_packet: false,
            reader,
            decoder,
            track_id,
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
        loop {
            let packet = match self.reader.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(false),
                Err(SymError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                    self.ended_mid_packet = true;
                    return Ok(false);
                }
                Err(SymError::IoError(e)) => {
                    return Err(AnalysisError::new(ErrorCode::IoError, "decode", format!("read failed: {e}")))
                }
                Err(SymError::ResetRequired) => {
                    return Err(AnalysisError::new(
                        ErrorCode::UnsupportedFormat,
                        "decode",
                        "chained stream (the track list changes mid-file)",
                    ))
                }
                Err(SymError::Unsupported(what)) => {
                    return Err(AnalysisError::new(ErrorCode::UnsupportedFormat, "decode", format!("unsupported: {what}")))
                }
                Err(e) => return Err(AnalysisError::new(ErrorCode::Corrupt, "decode", format!("demuxing failed: {e}"))),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            let decoded = match self.decoder.decode(&packet) {
                Ok(b) => b,
                Err(SymError::Unsupported(what)) => {
                    return Err(AnalysisError::new(ErrorCode::UnsupportedFormat, "decode", format!("unsupported: {what}")))
                }
                Err(e) => return Err(AnalysisError::new(ErrorCode::Corrupt, "decode", format!("decoding failed: {e}"))),
            };
            let frames = decoded.frames();
            if frames == 0 {
                continue;
            }
            let spec = decoded.spec();
            let (rate, channels) = (spec.rate(), spec.channels().count());
            if self.channels == 0 && self.sample_rate == 0 {
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
            decoded.copy_to_vec_interleaved(&mut self.buf);
            if self.buf.len() != frames * channels {
                return Err(AnalysisError::new(ErrorCode::Internal, "decode", "decoded buffer has an unexpected size"));
            }
            self.frames_decoded += frames as u64;
            return Ok(true);
        }
    }
}
