//! FFmpeg (libavformat + libavcodec, the system's shared libraries) for what
//! symphonia cannot decode faithfully or at all: AAC (LC, HE-AAC v1 with SBR,
//! HE-AAC v2 with parametric stereo) in MP4/M4A, CAF or ADTS, WavPack, APE and
//! Sony Wave64.
//!
//! Why FFmpeg and not fdk-aac: FFmpeg's AAC decoder is the reference the
//! Python engine (PyAV) and the fidelity tests use, so both engines see the
//! same samples; it is LGPL and linked dynamically from Debian's main archive
//! (libavcodec59), while FDK's licence is one Debian files as non-free; and the
//! same two libraries also decode WavPack and APE, for which no maintained
//! Rust decoder exists. symphonia's own AAC decoder is not used: it moved band
//! shares by up to 3.7 points against FFmpeg and the original.
//!
//! FFmpeg never sees a path: it reads through our own I/O callbacks from the
//! file this engine already opened (after any leading tags), with the demuxer
//! chosen from the sniffed container (no probing, so a crafted file cannot
//! make FFmpeg open playlists, other files or URLs). Decoded frames (s16, s32,
//! f32, f64, u8; planar or packed) are converted to interleaved f32 exactly
//! as the Python engine converts PyAV's frames. Priming samples are dropped by
//! libavcodec itself from the MP4 edit list, as for the FFmpeg CLI and PyAV.

use super::sniff::Sniffed;
use super::source::OffsetFile;
use super::stream::{Opened, Packets, Step};
use crate::error::{AnalysisError, ErrorCode, Result};
use ffmpeg_sys_next as ff;
use std::ffi::{c_int, c_void, CStr, CString};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ptr;

const IO_BUFFER: usize = 1 << 16;

/// The libavformat demuxer for a sniffed container.
fn demuxer_name(container: &str) -> Option<&'static str> {
    Some(match container {
        "mp4" => "mov",
        "caf" => "caf",
        "aac" => "aac",
        "wavpack" => "wv",
        "ape" => "ape",
        "w64" => "w64",
        "wav" => "wav",
        "ogg" => "ogg",
        _ => return None,
    })
}

/// FFmpeg's text for an error code.
fn av_error_text(code: c_int) -> String {
    let mut buf = [0 as std::ffi::c_char; 128];
    // SAFETY: av_strerror writes a NUL-terminated string of at most buf.len() bytes
    unsafe {
        ff::av_strerror(code, buf.as_mut_ptr(), buf.len());
        CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
    }
}

/// The reader behind FFmpeg's I/O callbacks; remembers the first OS error so it
/// is reported as `io_error`, not as whatever FFmpeg makes of a failed read.
struct Reader {
    file: OffsetFile,
    len: u64,
    error: Option<std::io::Error>,
}

unsafe extern "C" fn read_packet(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
    // SAFETY: opaque is the Reader boxed in FfmpegPackets, alive as long as the AVIOContext
    let reader = unsafe { &mut *(opaque as *mut Reader) };
    if size <= 0 {
        return 0;
    }
    // SAFETY: FFmpeg hands a buffer of `size` writable bytes
    let out = unsafe { std::slice::from_raw_parts_mut(buf, size as usize) };
    loop {
        match reader.file.read(out) {
            Ok(0) => return ff::AVERROR_EOF,
            Ok(n) => return n as c_int,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                reader.error.get_or_insert(e);
                return ff::AVERROR(libc_eio());
            }
        }
    }
}

fn libc_eio() -> c_int {
    5 // EIO
}

unsafe extern "C" fn seek(opaque: *mut c_void, offset: i64, whence: c_int) -> i64 {
    // SAFETY: as in read_packet
    let reader = unsafe { &mut *(opaque as *mut Reader) };
    if whence & ff::AVSEEK_SIZE as c_int != 0 {
        return reader.len as i64;
    }
    let target = match whence & !(ff::AVSEEK_FORCE as c_int) {
        0 if offset >= 0 => SeekFrom::Start(offset as u64),
        1 => SeekFrom::Current(offset),
        2 => SeekFrom::End(offset),
        _ => return -1,
    };
    match reader.file.seek(target) {
        Ok(pos) => pos as i64,
        Err(e) => {
            reader.error.get_or_insert(e);
            -1
        }
    }
}

/// Everything FFmpeg allocated for one stream, freed in Drop in the right order.
pub struct FfmpegPackets {
    format: *mut ff::AVFormatContext,
    io: *mut ff::AVIOContext,
    codec: *mut ff::AVCodecContext,
    packet: *mut ff::AVPacket,
    frame: *mut ff::AVFrame,
    reader: Box<Reader>,
    stream_index: c_int,
    /// The demuxer reached the end and the decoder was sent its flush packet.
    draining: bool,
}

impl Drop for FfmpegPackets {
    fn drop(&mut self) {
        // SAFETY: each pointer is null or owned by us; the free functions accept null
        unsafe {
            ff::av_frame_free(&mut self.frame);
            ff::av_packet_free(&mut self.packet);
            ff::avcodec_free_context(&mut self.codec);
            if !self.format.is_null() {
                ff::avformat_close_input(&mut self.format);
            }
            if !self.io.is_null() {
                ff::av_freep(&mut (*self.io).buffer as *mut *mut u8 as *mut c_void);
                ff::avio_context_free(&mut self.io);
            }
        }
    }
}

impl FfmpegPackets {
    fn io_or(&mut self, stage: &'static str, code: ErrorCode, what: &str, err: c_int) -> AnalysisError {
        match self.reader.error.take() {
            Some(e) => super::file::io_error(stage, &e),
            None => AnalysisError::new(code, stage, format!("{what}: {}", av_error_text(err))),
        }
    }
}

/// Open the file's audio with libavformat/libavcodec.
pub fn open(file: File, size: u64, found: &Sniffed, _tail: &[u8]) -> Result<Opened> {
    let container = found.container;
    let name = demuxer_name(container).ok_or_else(|| {
        AnalysisError::new(ErrorCode::UnsupportedFormat, "probe", format!("{container} is not decoded by this engine"))
    })?;
    let (start, end) = (found.audio_offset as u64, found.audio_end.min(size));
    let file = OffsetFile::new(file, start, end).map_err(|e| super::file::io_error("probe", &e))?;
    let reader = Box::new(Reader { file, len: end.saturating_sub(start), error: None });
    let mut this = FfmpegPackets {
        format: ptr::null_mut(),
        io: ptr::null_mut(),
        codec: ptr::null_mut(),
        packet: ptr::null_mut(),
        frame: ptr::null_mut(),
        reader,
        stream_index: -1,
        draining: false,
    };
    let oom = || AnalysisError::new(ErrorCode::Internal, "probe", "FFmpeg could not allocate its context");
    // SAFETY: plain libav* calls; every allocation is owned by `this` and freed in its Drop,
    // and the opaque pointer (the boxed Reader) outlives the AVIOContext.
    unsafe {
        let buffer = ff::av_malloc(IO_BUFFER) as *mut u8;
        if buffer.is_null() {
            return Err(oom());
        }
        let opaque = &mut *this.reader as *mut Reader as *mut c_void;
        this.io = ff::avio_alloc_context(buffer, IO_BUFFER as c_int, 0, opaque, Some(read_packet), None, Some(seek));
        if this.io.is_null() {
            ff::av_free(buffer as *mut c_void);
            return Err(oom());
        }
        this.format = ff::avformat_alloc_context();
        if this.format.is_null() {
            return Err(oom());
        }
        (*this.format).pb = this.io;
        (*this.format).flags |= ff::AVFMT_FLAG_CUSTOM_IO as c_int;
        let cname = CString::new(name).map_err(|_| oom())?;
        let input = ff::av_find_input_format(cname.as_ptr());
        if input.is_null() {
            return Err(AnalysisError::new(
                ErrorCode::UnsupportedFormat,
                "probe",
                format!("this FFmpeg has no {name} demuxer"),
            ));
        }
        let rc = ff::avformat_open_input(&mut this.format, ptr::null(), input as _, ptr::null_mut());
        if rc < 0 {
            // avformat_open_input freed the context on failure
            this.format = ptr::null_mut();
            return Err(this.io_or("probe", ErrorCode::Corrupt, &format!("{container} stream cannot be opened"), rc));
        }
        let rc = ff::avformat_find_stream_info(this.format, ptr::null_mut());
        if rc < 0 {
            return Err(this.io_or("probe", ErrorCode::Corrupt, &format!("{container} stream cannot be read"), rc));
        }
        let mut decoder: *const ff::AVCodec = ptr::null();
        let index = ff::av_find_best_stream(this.format, ff::AVMediaType::AVMEDIA_TYPE_AUDIO, -1, -1, &mut decoder as *mut _ as _, 0);
        if index < 0 || decoder.is_null() {
            let what = if index == ff::AVERROR_DECODER_NOT_FOUND { "its codec has no decoder here" } else { "no audio stream" };
            return Err(AnalysisError::new(ErrorCode::UnsupportedFormat, "probe", format!("{container} file: {what}")));
        }
        this.stream_index = index;
        let stream = *(*this.format).streams.add(index as usize);
        let par = (*stream).codecpar;
        this.codec = ff::avcodec_alloc_context3(decoder);
        if this.codec.is_null() {
            return Err(oom());
        }
        let rc = ff::avcodec_parameters_to_context(this.codec, par);
        if rc < 0 {
            return Err(this.io_or("probe", ErrorCode::Corrupt, "codec parameters", rc));
        }
        (*this.codec).pkt_timebase = (*stream).time_base;
        (*this.codec).thread_count = 1; // one analysis per core already
        // WavPack and APE carry a checksum per block: verify it, so a damaged block is `corrupt`
        // (FFmpeg otherwise decodes the damage as sound), as the Python engine does (PyAV, err_detect)
        if matches!((*par).codec_id, ff::AVCodecID::AV_CODEC_ID_WAVPACK | ff::AVCodecID::AV_CODEC_ID_APE) {
            (*this.codec).err_recognition |= ff::AV_EF_CRCCHECK;
        }
        let rc = ff::avcodec_open2(this.codec, decoder, ptr::null_mut());
        if rc < 0 {
            return Err(this.io_or("probe", ErrorCode::Corrupt, "decoder cannot start", rc));
        }
        this.packet = ff::av_packet_alloc();
        this.frame = ff::av_frame_alloc();
        if this.packet.is_null() || this.frame.is_null() {
            return Err(oom());
        }
        let codec_name = CStr::from_ptr((*decoder).name).to_string_lossy().into_owned();
        // PCM as the other decoders name it (pcm_s16le -> pcm_s16): the byte order is the container's business
        let codec_name = match codec_name.strip_prefix("pcm_") {
            Some(kind) => format!("pcm_{}", kind.trim_end_matches("le").trim_end_matches("be")),
            None => codec_name,
        };
        let sample_rate = (*this.codec).sample_rate.max(0) as u32;
        let channels = (*this.codec).ch_layout.nb_channels.max(0) as usize;
        let bits = (*par).bits_per_raw_sample;
        let lossless = !matches!(codec_name.as_str(), "aac" | "aac_fixed" | "aac_latm");
        let bits_per_sample = (lossless && bits > 0).then_some(bits as u32);
        let declared_duration_s = declared_seconds(this.format, stream);
        Ok(Opened {
            codec: codec_name,
            sample_rate,
            channels,
            declared_duration_s,
            bits_per_sample,
            packets: Box::new(this),
        })
    }
}

/// The duration the container states (never one FFmpeg estimated from the bitrate).
unsafe fn declared_seconds(format: *mut ff::AVFormatContext, stream: *mut ff::AVStream) -> Option<f64> {
    // SAFETY: both pointers are live (the caller owns the format context)
    unsafe {
        // FFmpeg fills the stream's duration from the bit rate too (raw ADTS: 61.5 s "declared" for a 60-s
        // file, which made a whole file look cut), so the method is checked before either duration is read
        if (*format).duration_estimation_method == ff::AVDurationEstimationMethod::AVFMT_DURATION_FROM_BITRATE {
            return None;
        }
        let tb = (*stream).time_base;
        if (*stream).duration > 0 && tb.den > 0 && tb.num > 0 {
            return Some((*stream).duration as f64 * tb.num as f64 / tb.den as f64);
        }
        ((*format).duration > 0).then(|| (*format).duration as f64 / ff::AV_TIME_BASE as f64)
    }
}

/// Append one frame to `buf` as interleaved f32; None for a sample format we do not convert.
unsafe fn frame_to_f32(frame: *const ff::AVFrame, buf: &mut Vec<f32>) -> Option<(usize, usize)> {
    use ff::AVSampleFormat::*;
    // SAFETY: the frame was just returned by avcodec_receive_frame: its planes hold
    // nb_samples samples per channel in the format it names
    unsafe {
        let n = (*frame).nb_samples.max(0) as usize;
        let ch = (*frame).ch_layout.nb_channels.max(0) as usize;
        let format: ff::AVSampleFormat = std::mem::transmute((*frame).format);
        buf.clear();
        buf.resize(n * ch, 0.0);
        let planar = ff::av_sample_fmt_is_planar(format) != 0;
        let data = (*frame).extended_data;
        macro_rules! convert {
            ($t:ty, $f:expr) => {{
                if planar {
                    for c in 0..ch {
                        let plane = std::slice::from_raw_parts(*data.add(c) as *const $t, n);
                        for (i, &s) in plane.iter().enumerate() {
                            buf[i * ch + c] = $f(s);
                        }
                    }
                } else {
                    let packed = std::slice::from_raw_parts(*data as *const $t, n * ch);
                    for (o, &s) in buf.iter_mut().zip(packed) {
                        *o = $f(s);
                    }
                }
            }};
        }
        match format {
            AV_SAMPLE_FMT_FLT | AV_SAMPLE_FMT_FLTP => convert!(f32, |s: f32| s),
            AV_SAMPLE_FMT_DBL | AV_SAMPLE_FMT_DBLP => convert!(f64, |s: f64| s as f32),
            AV_SAMPLE_FMT_S16 | AV_SAMPLE_FMT_S16P => convert!(i16, |s: i16| s as f32 / 32768.0),
            AV_SAMPLE_FMT_S32 | AV_SAMPLE_FMT_S32P => convert!(i32, |s: i32| (s as f64 / 2147483648.0) as f32),
            AV_SAMPLE_FMT_U8 | AV_SAMPLE_FMT_U8P => convert!(u8, |s: u8| (s as f32 - 128.0) / 128.0),
            _ => return None,
        }
        Some((n, ch))
    }
}

impl Packets for FfmpegPackets {
    fn next(&mut self, buf: &mut Vec<f32>) -> Result<Step> {
        // SAFETY: the contexts are open and owned by self; packets are unreferenced after use
        unsafe {
            loop {
                let rc = ff::avcodec_receive_frame(self.codec, self.frame);
                if rc >= 0 {
                    let rate = (*self.frame).sample_rate.max(0) as u32;
                    let converted = frame_to_f32(self.frame, buf);
                    ff::av_frame_unref(self.frame);
                    let Some((frames, channels)) = converted else {
                        return Err(AnalysisError::new(
                            ErrorCode::UnsupportedFormat,
                            "decode",
                            "the decoder's sample format is not converted by this engine",
                        ));
                    };
                    if frames == 0 {
                        continue;
                    }
                    return Ok(Step::Audio { frames, rate, channels });
                }
                if rc == ff::AVERROR_EOF {
                    return Ok(Step::End);
                }
                if rc != ff::AVERROR(11) {
                    // not EAGAIN: the decoder failed
                    return Err(self.io_or("decode", ErrorCode::Corrupt, "decoding failed", rc));
                }
                if self.draining {
                    return Ok(Step::End);
                }
                let rc = ff::av_read_frame(self.format, self.packet);
                if rc < 0 {
                    if let Some(e) = self.reader.error.take() {
                        return Err(AnalysisError::new(ErrorCode::IoError, "decode", format!("read failed: {e}")));
                    }
                    if rc != ff::AVERROR_EOF {
                        return Err(AnalysisError::new(
                            ErrorCode::Corrupt,
                            "decode",
                            format!("demuxing failed: {}", av_error_text(rc)),
                        ));
                    }
                    self.draining = true;
                    let rc = ff::avcodec_send_packet(self.codec, ptr::null());
                    if rc < 0 && rc != ff::AVERROR_EOF {
                        return Err(self.io_or("decode", ErrorCode::Corrupt, "decoding failed", rc));
                    }
                    continue;
                }
                if (*self.packet).stream_index != self.stream_index {
                    ff::av_packet_unref(self.packet);
                    continue;
                }
                let rc = ff::avcodec_send_packet(self.codec, self.packet);
                ff::av_packet_unref(self.packet);
                if rc < 0 && rc != ff::AVERROR(11) {
                    return Err(self.io_or("decode", ErrorCode::Corrupt, "decoding failed", rc));
                }
            }
        }
    }
}
