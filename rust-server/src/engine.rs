//! One file in, 25 numbers (or a typed error) out (`pyengine/engine.py`).
//!
//! Decode packet by packet into the accumulator (one streaming pass, bounded
//! memory), check the deadline and the duration cap per packet, and refuse to
//! fingerprint a stream that ended short of what its container declared.

use crate::decode::{file, sniff, DecodedStream, TRUNCATION_TOLERANCE_S};
use crate::error::{AnalysisError, ErrorCode, Result};
use crate::features::{Fingerprint, FingerprintAccumulator};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

pub const DEFAULT_MAX_BYTES: u64 = 8 << 30;
pub const DEFAULT_MAX_DURATION_S: f64 = 12.0 * 3600.0;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_duration_s: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: DEFAULT_MAX_BYTES, max_duration_s: DEFAULT_MAX_DURATION_S }
    }
}

/// `DecodeFacts` of `trackprint/contracts.py`.
#[derive(Debug, Clone, Serialize)]
pub struct DecodeFacts {
    pub codec: String,
    pub container: String,
    pub sample_rate: u32,
    pub channels: usize,
    pub decoded_duration_s: f64,
    pub declared_duration_s: Option<f64>,
    pub bits_per_sample: Option<u32>,
}

/// `Timings` of `trackprint/contracts.py`: seconds, wall clock.
#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    pub total_s: f64,
    pub decode_s: f64,
    pub analysis_s: f64,
}

#[derive(Debug, Clone)]
pub struct EngineOutput {
    pub fingerprint: Fingerprint,
    pub decode: DecodeFacts,
    pub timings: Timings,
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Fingerprint one file. `deadline`: work stops at the next packet after it.
pub fn analyze_file(path: &Path, limits: &Limits, deadline: Option<Instant>) -> Result<EngineOutput> {
    let display = path.display().to_string();
    analyze_inner(path, limits, deadline).map_err(|e| e.with_path(&display))
}

/// Check, open and sniff `path`, and open its audio stream.
fn open_stream(path: &Path, limits: &Limits) -> Result<DecodedStream> {
    let size = file::check_file(path, limits.max_bytes)?;
    let mut handle = std::fs::File::open(path)
        .map_err(|e| AnalysisError::new(ErrorCode::IoError, "open", format!("cannot open: {e}")))?;
    // the audio between the tags in front (ID3v2, any size) and behind (ID3v1, APEv2, Lyrics3)
    let edges = file::read_edges(&mut handle, size)?;
    // The reason never quotes the file's bytes: they could be anything (a symlink to a secret).
    let mut found = sniff::sniff_audio(&edges.head, edges.start as usize).ok_or_else(|| {
        AnalysisError::new(
            ErrorCode::UnsupportedFormat,
            "probe",
            format!("not a recognised audio format (no known container signature in the first {} bytes)", edges.head.len()),
        )
    })?;
    found.audio_end = edges.end;
    let stream = DecodedStream::open(handle, size, &found, &edges.head, &edges.tail)?;
    if let Some(declared) = stream.declared_duration_s {
        if declared > limits.max_duration_s {
            return Err(AnalysisError::new(
                ErrorCode::TooLarge,
                "probe",
                format!("declared duration {declared:.0} s is above the {:.0} s limit", limits.max_duration_s),
            ));
        }
    }
    Ok(stream)
}

/// Decode every packet of `stream`, handing each block to `sink`; the caps and the
/// deadline are checked per packet, the completeness at the end. Returns the decode seconds.
fn decode_all(
    stream: &mut DecodedStream,
    limits: &Limits,
    deadline: Option<Instant>,
    mut sink: impl FnMut(&DecodedStream) -> Result<()>,
) -> Result<f64> {
    let mut decode_s = 0.0;
    loop {
        let before = Instant::now();
        let block = stream.next_block();
        decode_s += before.elapsed().as_secs_f64();
        if !block? {
            break;
        }
        sink(stream)?;
        if stream.decoded_duration_s() > limits.max_duration_s {
            return Err(AnalysisError::new(
                ErrorCode::TooLarge,
                "decode",
                format!("longer than the {:.0} s limit", limits.max_duration_s),
            ));
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            return Err(AnalysisError::new(
                ErrorCode::Timeout,
                "analyse",
                format!("deadline passed after {:.1} s of audio", stream.decoded_duration_s()),
            ));
        }
    }
    check_complete(stream)?;
    Ok(decode_s)
}

fn facts(stream: &DecodedStream) -> DecodeFacts {
    DecodeFacts {
        codec: stream.codec.clone(),
        container: stream.container.to_string(),
        sample_rate: stream.sample_rate,
        channels: stream.channels,
        decoded_duration_s: round6(stream.decoded_duration_s()),
        declared_duration_s: stream.declared_duration_s.map(round6),
        bits_per_sample: stream.bits_per_sample,
    }
}

/// Decode one file with the engine's decoders and nothing else (fidelity tests, the
/// benchmark's decode-only figure): every block, interleaved f32, goes to `sink`.
pub fn decode_file(path: &Path, limits: &Limits, mut sink: impl FnMut(&[f32]) -> Result<()>) -> Result<DecodeFacts> {
    let display = path.display().to_string();
    let mut inner = || -> Result<DecodeFacts> {
        let mut stream = open_stream(path, limits)?;
        decode_all(&mut stream, limits, None, |s| sink(s.block()))?;
        Ok(facts(&stream))
    };
    inner().map_err(|e| e.with_path(&display))
}

fn analyze_inner(path: &Path, limits: &Limits, deadline: Option<Instant>) -> Result<EngineOutput> {
    let started = Instant::now();
    let mut stream = open_stream(path, limits)?;
    let mut accumulator: Option<FingerprintAccumulator> = None;
    let decode_s = decode_all(&mut stream, limits, deadline, |s| {
        let acc = match accumulator.as_mut() {
            Some(acc) => acc,
            None => accumulator.insert(FingerprintAccumulator::new(s.sample_rate, s.channels)?),
        };
        acc.add(s.block());
        Ok(())
    })?;
    let accumulator = accumulator
        .ok_or_else(|| AnalysisError::new(ErrorCode::TooShort, "decode", "the stream holds no audio samples"))?;
    let fingerprint = accumulator.finish()?;
    let total = started.elapsed().as_secs_f64();
    Ok(EngineOutput {
        fingerprint,
        decode: facts(&stream),
        timings: Timings { total_s: round6(total), decode_s: round6(decode_s), analysis_s: round6(total - decode_s) },
    })
}

/// `truncated` when decoding ended short of what the container promised.
fn check_complete(stream: &DecodedStream) -> Result<()> {
    let decoded = stream.decoded_duration_s();
    if let Some(declared) = stream.declared_duration_s {
        if decoded < declared - TRUNCATION_TOLERANCE_S {
            return Err(AnalysisError::new(
                ErrorCode::Truncated,
                "decode",
                format!("decoded {decoded:.2} s of the {declared:.2} s the {} header declares", stream.container),
            ));
        }
    } else if stream.ended_mid_packet {
        return Err(AnalysisError::new(
            ErrorCode::Truncated,
            "decode",
            format!("the {} stream ends inside a packet (decoded {decoded:.2} s)", stream.container),
        ));
    }
    if !stream.ends_cleanly {
        return Err(AnalysisError::new(
            ErrorCode::Truncated,
            "decode",
            format!("{} stream ends without its end-of-stream page (decoded {decoded:.2} s)", stream.container),
        ));
    }
    if stream.frames_decoded == 0 {
        return Err(AnalysisError::new(ErrorCode::TooShort, "decode", "the stream holds no audio samples"));
    }
    Ok(())
}
