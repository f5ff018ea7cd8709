//! symphonia: FLAC, WAV, AIFF, CAF (PCM, ALAC), Ogg Vorbis, Ogg FLAC, MP4 ALAC.
//!
//! These are the codecs where symphonia's output equals the reference
//! decoders' (`tests/test_decoder_fidelity.py`: FLAC/PCM/ALAC bit-exact, Vorbis
//! far above the lossy threshold). AAC is not taken from it: its
//! AAC decoder disagrees with FFmpeg and the original (see `ffmpeg.rs`).

use super::sniff::{self, Sniffed};
use super::source::OffsetFile;
use super::stream::{Opened, Packets, Step};
use crate::error::{AnalysisError, ErrorCode, Result};
use std::fs::File;
use std::io::ErrorKind;
use symphonia::core::codecs::audio::well_known::CODEC_ID_AAC;
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

/// The symphonia reader and decoder of one track.
pub struct SymphoniaPackets {
    reader: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    /// FLAC: the first sample the next frame must start at. symphonia's FLAC demuxer drops a frame
    /// that fails its CRC or loses sync and resynchronises at the next one; the jump in the frame
    /// numbers is how we see it (libFLAC, the Python engine's decoder, reports it as an error).
    flac_next_ts: Option<i64>,
}

/// The extension hint for symphonia's probe, per sniffed container (None: not for symphonia).
pub fn hint_extension(container: &str) -> Option<&'static str> {
    Some(match container {
        "flac" => "flac",
        "wav" => "wav",
        "aiff" => "aiff",
        "mp4" => "m4a",
        "ogg" => "ogg",
        "caf" => "caf",
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

fn codec_name(container: &str, short_name: &str) -> String {
    // symphonia names PCM by its stored sample format (pcm_s16le, pcm_f32be, pcm_u8, ...): the
    // label is that format without the byte order, as the Python engine names it (pcm_s24, pcm_f32)
    if matches!(container, "wav" | "aiff" | "caf") && short_name.starts_with("pcm_") {
        let name = short_name.strip_suffix("le").or_else(|| short_name.strip_suffix("be")).unwrap_or(short_name);
        return name.to_string();
    }
    short_name.to_string()
}

/// Probe and open the audio with symphonia (`head`: the audio's first bytes); `None` for AAC (in MP4 or CAF), which
/// symphonia could open but not decode faithfully: the caller hands it to FFmpeg.
pub fn open(file: File, size: u64, found: &Sniffed, head: &[u8]) -> Result<Option<Opened>> {
    let container = found.container;
    let Some(ext) = hint_extension(container) else {
        return Err(AnalysisError::new(
            ErrorCode::UnsupportedFormat,
            "probe",
            format!("{container} is not decoded by this engine"),
        ));
    };
    let source = OffsetFile::new(file, found.audio_offset as u64, found.audio_end.min(size))
        .map_err(|e| super::file::io_error("probe", &e))?;
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
    if params.codec == CODEC_ID_AAC {
        return Ok(None);
    }
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
    let lossless = matches!(container, "flac" | "wav" | "aiff" | "caf") || decoder.codec_info().short_name == "alac";
    let bits_per_sample = if lossless { params.bits_per_sample } else { None };
    let codec = codec_name(container, decoder.codec_info().short_name);

    let per_rate = |frames: Option<u64>| frames.filter(|_| sample_rate > 0).map(|f| f as f64 / sample_rate as f64);
    let off = 0; // `head` starts at the audio
    let declared_duration_s = match container {
        "flac" => per_rate(sniff::flac_declared_frames(head, off)),
        "wav" => per_rate(sniff::wav_declared_frames(head, off)),
        "aiff" => per_rate(sniff::aiff_declared_frames(head, off)),
        "mp4" | "caf" => per_rate(track.num_frames).or_else(|| {
            let (tb, d) = (track.time_base?, track.duration?);
            tb.calc_duration(d).map(|t| t.as_secs_f64())
        }),
        _ => None,
    };
    Ok(Some(Opened {
        codec,
        sample_rate,
        channels,
        declared_duration_s,
        bits_per_sample,
        packets: Box::new(SymphoniaPackets {
            reader,
            decoder,
            track_id,
            flac_next_ts: (container == "flac").then_some(0),
        }),
    }))
}

impl Packets for SymphoniaPackets {
    fn next(&mut self, buf: &mut Vec<f32>) -> Result<Step> {
        loop {
            let packet = match self.reader.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(Step::End),
                Err(SymError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => return Ok(Step::EndMidPacket),
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
            if let Some(expected) = self.flac_next_ts {
                let ts = packet.pts.get();
                if ts != expected {
                    return Err(AnalysisError::new(
                        ErrorCode::Corrupt,
                        "decode",
                        format!(
                            "damaged FLAC frames (failed CRC or lost sync) between sample {expected} and sample {ts} were skipped"
                        ),
                    ));
                }
                self.flac_next_ts = Some(ts + packet.dur.get() as i64);
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
            decoded.copy_to_vec_interleaved(buf);
            return Ok(Step::Audio { frames, rate, channels });
        }
    }
}
