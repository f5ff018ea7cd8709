//! One file in, 25 numbers (or a typed error) out (`pyengine/engine.py`).
//!
//! Decode packet by packet into the accumulator (one streaming pass, bounded
//! memory), check the deadline and the duration cap per packet, and refuse to
//! fingerprint a stream that ended short of what its container declared.

use crate::decode::{file, ogg_shortfall_allowed, sniff, DecodedStream, TRUNCATION_TOLERANCE_S};
use crate::error::{AnalysisError, ErrorCode, Result};
use crate::features::{Fingerprint, FingerprintAccumulator};
use serde::Serialize;
use std::path::Path;
use std::sync::mpsc;
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
    analyze_file_with(path, limits, deadline, Threads::ByLength)
}

/// How one analysis uses threads; the answer is the same either way (a test holds it to that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// Two threads for a file of [`TWO_THREADS_FROM_S`] or more, else one.
    ByLength,
    One,
    Two,
}

/// [`analyze_file`] with the choice of threads made by the caller.
pub fn analyze_file_with(path: &Path, limits: &Limits, deadline: Option<Instant>, threads: Threads) -> Result<EngineOutput> {
    let display = path.display().to_string();
    analyze_inner(path, limits, deadline, threads).map_err(|e| e.with_path(&display))
}

/// What is needed to tell a cut file from a damaged one once a decoder failed or fell short:
/// the container's own structure against the file's length (`sniff::byte_extent`).
struct ExtentProbe {
    file: std::fs::File,
    container: &'static str,
    start: u64,
    end: u64,
    ogg_tail: Option<bool>,
}

impl ExtentProbe {
    fn extent(&self) -> sniff::Extent {
        use std::os::unix::fs::FileExt;
        let len = self.end - self.start;
        let mut read_at = |pos: u64, buf: &mut [u8]| -> usize {
            let n = buf.len().min(len.saturating_sub(pos) as usize);
            let mut got = 0;
            while got < n {
                match self.file.read_at(&mut buf[got..n], self.start + pos + got as u64) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => got += k,
                }
            }
            got
        };
        sniff::byte_extent(self.container, len, self.ogg_tail, &mut read_at)
    }

    /// A decoder's `corrupt` on a file shorter than its structure declares is `truncated`: the
    /// damage is the missing end (`docs/fingerprint-spec.md`, "Outcomes").
    fn refine(&self, e: AnalysisError) -> AnalysisError {
        if e.code != ErrorCode::Corrupt {
            return e;
        }
        match self.extent() {
            sniff::Extent::Cut(declared) => AnalysisError::new(
                ErrorCode::Truncated,
                e.stage,
                format!("{}: the file ends {} bytes short of what its {} structure declares", e.message,
                        declared - (self.end - self.start), self.container),
            ),
            _ => e,
        }
    }
}

/// Check, open and sniff `path`, and open its audio stream.
fn open_stream(path: &Path, limits: &Limits) -> Result<(DecodedStream, ExtentProbe)> {
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
    let probe = ExtentProbe {
        file: handle.try_clone().map_err(|e| file::io_error("probe", &e))?,
        container: found.container,
        start: edges.start,
        end: edges.end,
        ogg_tail: sniff::ogg_tail_state(&edges.tail),
    };
    if found.container == "flac" && sniff::flac_metadata_end(&edges.head) == Some((edges.end - edges.start) as usize) {
        // a FLAC stream of headers only: empty if its STREAMINFO declares no samples, else cut after them
        return Err(match sniff::flac_declared_frames(&edges.head, 0) {
            None => AnalysisError::new(ErrorCode::TooShort, "probe", "the flac stream has its headers but no audio frames"),
            Some(_) => AnalysisError::new(ErrorCode::Truncated, "probe", "the flac stream ends after its headers, before any audio frame"),
        });
    }
    let stream = DecodedStream::open(handle, size, &found, &edges.head, &edges.tail).map_err(|e| probe.refine(e))?;
    if let Some(declared) = stream.declared_duration_s {
        if declared > limits.max_duration_s {
            return Err(AnalysisError::new(
                ErrorCode::TooLarge,
                "probe",
                format!("declared duration {declared:.0} s is above the {:.0} s limit", limits.max_duration_s),
            ));
        }
    }
    Ok((stream, probe))
}

/// Decode every packet of `stream`, handing each block to `sink`; the caps and the
/// deadline are checked per packet, the completeness at the end. Returns the decode seconds.
fn decode_all(
    stream: &mut DecodedStream,
    probe: &ExtentProbe,
    limits: &Limits,
    deadline: Option<Instant>,
    mut sink: impl FnMut(&DecodedStream) -> Result<()>,
) -> Result<f64> {
    let mut decode_s = 0.0;
    loop {
        let before = Instant::now();
        let block = stream.next_block();
        decode_s += before.elapsed().as_secs_f64();
        if !block.map_err(|e| probe.refine(e))? {
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
    check_complete(stream, probe)?;
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
        let (mut stream, probe) = open_stream(path, limits)?;
        decode_all(&mut stream, &probe, limits, None, |s| sink(s.block()))?;
        Ok(facts(&stream))
    };
    inner().map_err(|e| e.with_path(&display))
}

/// Blocks in flight from the decoding thread to the analysis: enough to ride out an uneven packet,
/// few enough that memory stays about a MiB whatever the file.
const BLOCKS_IN_FLIGHT: usize = 4;

/// Decoded packets are gathered into blocks of at least this many samples (about 0.4 s of stereo at
/// 44.1 kHz) before they cross threads: one hand-over per block, not per MP3 frame of 1,152 samples.
pub const SAMPLES_PER_HANDOVER: usize = 32_768;

/// The first block's format and every block's samples, as the analysis thread receives them.
struct Block {
    sample_rate: u32,
    channels: usize,
    samples: Vec<f32>,
}

/// Files shorter than this are decoded and analysed on one thread: a second thread's fixed cost
/// (start, hand-overs, fresh buffers: about 0.3 ms of CPU, measured on 2-s files) is then a tenth of
/// the whole analysis, and there is little to overlap.
pub const TWO_THREADS_FROM_S: f64 = 30.0;
/// The same test for a stream that declares no duration: its audio bytes (about 30 s of MP3 at 256 kb/s).
const TWO_THREADS_FROM_BYTES: u64 = 1 << 20;

fn analyze_inner(path: &Path, limits: &Limits, deadline: Option<Instant>, threads: Threads) -> Result<EngineOutput> {
    let started = Instant::now();
    let (mut stream, probe) = open_stream(path, limits)?;
    let two = match (threads, stream.declared_duration_s) {
        (Threads::One, _) => false,
        (Threads::Two, _) => true,
        (Threads::ByLength, Some(declared)) => declared >= TWO_THREADS_FROM_S,
        (Threads::ByLength, None) => probe.end - probe.start >= TWO_THREADS_FROM_BYTES,
    };
    let (decode_s, accumulator) = if two {
        decode_and_analyse_on_two_threads(&mut stream, &probe, limits, deadline)?
    } else {
        decode_and_analyse_inline(&mut stream, &probe, limits, deadline)?
    };
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

/// The decode seconds and the accumulator of every block (None: no block came).
type Decoded = (f64, Option<FingerprintAccumulator>);

fn decode_and_analyse_inline(stream: &mut DecodedStream, probe: &ExtentProbe, limits: &Limits,
                             deadline: Option<Instant>) -> Result<Decoded> {
    let mut accumulator: Option<FingerprintAccumulator> = None;
    let decode_s = decode_all(stream, probe, limits, deadline, |s| {
        let acc = match accumulator.as_mut() {
            Some(acc) => acc,
            None => accumulator.insert(FingerprintAccumulator::new(s.sample_rate, s.channels)?),
        };
        acc.add(s.block());
        Ok(())
    })?;
    Ok((decode_s, accumulator))
}

/// Decoding on this thread and the features on a second one, a block at a time, so a file takes
/// about the longer of the two rather than their sum when a core is free (one file on its own, the
/// last file of a batch); with every core busy it costs one copy per block. The analysis thread's
/// own error (an impossible format) wins over the decoder's "analysis stopped".
fn decode_and_analyse_on_two_threads(stream: &mut DecodedStream, probe: &ExtentProbe, limits: &Limits,
                                     deadline: Option<Instant>) -> Result<Decoded> {
    let (to_analysis, blocks) = mpsc::sync_channel::<Block>(BLOCKS_IN_FLIGHT);
    let (give_back, spare) = mpsc::channel::<Vec<f32>>();
    let (decoded, analysed) = std::thread::scope(|scope| {
        let analysis = scope.spawn(move || analyse_blocks(blocks, give_back));
        let stopped = || AnalysisError::new(ErrorCode::Internal, "analyse", "the analysis stopped early");
        let mut filling: Vec<f32> = Vec::new();
        let mut format = (0, 0);
        let mut decoded = decode_all(stream, probe, limits, deadline, |s| {
            if filling.is_empty() {
                filling = spare.try_recv().unwrap_or_default();
                filling.clear(); // a buffer the analysis gave back still holds its last block
                format = (s.sample_rate, s.channels);
            }
            filling.extend_from_slice(s.block());
            if filling.len() < SAMPLES_PER_HANDOVER {
                return Ok(());
            }
            let samples = std::mem::take(&mut filling);
            to_analysis.send(Block { sample_rate: format.0, channels: format.1, samples }).map_err(|_| stopped())
        });
        if decoded.is_ok() && !filling.is_empty() {
            let last = Block { sample_rate: format.0, channels: format.1, samples: filling };
            decoded = to_analysis.send(last).map_err(|_| stopped()).and(decoded);
        }
        drop(to_analysis); // the analysis sees the end of the stream (or stops, on an error)
        let analysed = analysis.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (decoded, analysed)
    });
    match (decoded, analysed) {
        (_, Err(e)) | (Err(e), Ok(_)) => Err(e),
        (Ok(decode_s), Ok(accumulator)) => Ok((decode_s, accumulator)),
    }
}

/// The analysis thread: every block into one accumulator, each buffer handed back for reuse. None when
/// no block came (the decoder then says why, or the stream was empty).
fn analyse_blocks(blocks: mpsc::Receiver<Block>, give_back: mpsc::Sender<Vec<f32>>) -> Result<Option<FingerprintAccumulator>> {
    let mut accumulator: Option<FingerprintAccumulator> = None;
    for block in blocks {
        let acc = match accumulator.as_mut() {
            Some(acc) => acc,
            None => accumulator.insert(FingerprintAccumulator::new(block.sample_rate, block.channels)?),
        };
        acc.add(&block.samples);
        let _ = give_back.send(block.samples); // the decoder may have finished: then the buffer is dropped
    }
    Ok(accumulator)
}

/// `truncated` when decoding ended short of what the container promised and the file is shorter
/// than its structure declares (or its structure declares no length); `corrupt` when the file is
/// whole but audio is missing (damaged frames or pages were skipped).
fn check_complete(stream: &DecodedStream, probe: &ExtentProbe) -> Result<()> {
    let decoded = stream.decoded_duration_s();
    let short = |reason: String| -> AnalysisError {
        match probe.extent() {
            sniff::Extent::Whole => AnalysisError::new(
                ErrorCode::Corrupt,
                "decode",
                format!("{reason}, though the file is as long as its {} structure declares: damaged audio was skipped", stream.container),
            ),
            _ => AnalysisError::new(ErrorCode::Truncated, "decode", reason),
        }
    };
    if let Some(declared) = stream.declared_duration_s {
        if decoded < declared - TRUNCATION_TOLERANCE_S {
            return Err(short(format!("decoded {decoded:.2} s of the {declared:.2} s the {} header declares", stream.container)));
        }
    } else if stream.ended_mid_packet {
        return Err(short(format!("the {} stream ends inside a packet (decoded {decoded:.2} s)", stream.container)));
    }
    if !stream.ends_cleanly {
        return Err(AnalysisError::new(
            ErrorCode::Truncated,
            "decode",
            format!("{} stream ends without its end-of-stream page (decoded {decoded:.2} s)", stream.container),
        ));
    }
    if let Some(expected) = stream.ogg_expected_s {
        if decoded < expected - ogg_shortfall_allowed(expected) {
            return Err(AnalysisError::new(
                ErrorCode::Corrupt,
                "decode",
                format!("decoded {decoded:.2} s of the {expected:.2} s its last Ogg page marks: damaged pages were skipped"),
            ));
        }
    }
    if stream.frames_decoded == 0 {
        return Err(AnalysisError::new(ErrorCode::TooShort, "decode", "the stream holds no audio samples"));
    }
    Ok(())
}
