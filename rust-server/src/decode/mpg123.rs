//! MPEG audio layers I, II and III (MP3, MP2, MP1), decoded by libmpg123.
//!
//! Why mpg123 and not symphonia: it is the reference decoder the Python engine
//! reads MP3 through (libsndfile links it), so both engines see the same
//! samples; and it decodes about 1.5 times as fast as symphonia 0.6 on real
//! MP3 (five tracks, 22 minutes: 1.0 s against 1.5 s of CPU), which was the
//! one codec where the engine stayed above 1.25x the reference decode time.
//! Debian's shared library (libmpg123-0, 1.31) is linked (`libmpg123-dev` to
//! build, `scripts/setup.sh`), through the nine functions declared in [`ffi`].
//! Not through the `mpg123-sys` crate: its build script asks pkg-config for
//! "mpg123" (the library's file is `libmpg123.pc`), so it silently built the
//! mpg123 1.24 it bundles, and `cargo test` then loaded that one in place of
//! the system's, which libavformat's libopenmpt needs (`mpg123_param2`, 1.31).
//!
//! mpg123 runs in feed mode: it never sees the file, only the audio's bytes
//! from our reader (after any leading ID3v2 tags and before trailing
//! ID3v1/APEv2 ones), so it needs no seeking. It decodes to 32-bit float at the
//! stream's own rate and channel count, and trims the encoder delay and
//! padding the LAME/Info frame declares (gapless, as FFmpeg and libsndfile
//! do). A stream without that frame has nothing to trim: every frame is
//! decoded, to the end of the file.
//!
//! Damage: mpg123 resynchronises past up to 1 KiB of bytes that are not a
//! frame (its default limit); more is an error, `corrupt`, as FFmpeg (the
//! Python engine's decoder for MP3 without a frame count) says too. What a
//! stream loses shows against the declared length (`engine.rs`: `corrupt` or
//! `truncated`). Bytes after the last frame of a stream that has decoded its
//! declared length (an unknown trailing tag, junk) end it cleanly, as
//! libsndfile, which stops at that length, reads such a file.

use super::sniff::{self, Sniffed};
use super::source::OffsetFile;
use super::stream::{Opened, Packets, Step};
use crate::error::{AnalysisError, ErrorCode, Result};
use std::ffi::{c_int, c_long, CStr};
use std::fs::File;
use std::io::Read;
use std::sync::Once;

/// The part of libmpg123's API used here (`mpg123.h`, `fmt123.h`; stable since mpg123 1.13).
mod ffi {
    use std::ffi::{c_char, c_double, c_int, c_long, c_uchar};

    #[repr(C)]
    pub struct mpg123_handle {
        _opaque: [u8; 0],
    }

    pub const MPG123_OK: c_int = 0;
    pub const MPG123_NEED_MORE: c_int = -10;
    pub const MPG123_NEW_FORMAT: c_int = -11;
    pub const MPG123_DONE: c_int = -12;
    /// `enum mpg123_parms`: add flags.
    pub const MPG123_ADD_FLAGS: c_int = 2;
    /// `enum mpg123_param_flags`.
    pub const MPG123_QUIET: c_long = 0x20;
    pub const MPG123_GAPLESS: c_long = 0x40;
    pub const MPG123_FORCE_FLOAT: c_long = 0x400;
    /// `enum mpg123_enc_enum`: 32-bit float samples.
    pub const MPG123_ENC_FLOAT_32: c_int = 0x200;

    #[link(name = "mpg123")]
    extern "C" {
        pub fn mpg123_init() -> c_int;
        pub fn mpg123_new(decoder: *const c_char, error: *mut c_int) -> *mut mpg123_handle;
        pub fn mpg123_delete(mh: *mut mpg123_handle);
        pub fn mpg123_param(mh: *mut mpg123_handle, kind: c_int, value: c_long, fvalue: c_double) -> c_int;
        pub fn mpg123_open_feed(mh: *mut mpg123_handle) -> c_int;
        pub fn mpg123_feed(mh: *mut mpg123_handle, input: *const c_uchar, size: usize) -> c_int;
        pub fn mpg123_read(mh: *mut mpg123_handle, out: *mut c_uchar, size: usize, done: *mut usize) -> c_int;
        pub fn mpg123_getformat(mh: *mut mpg123_handle, rate: *mut c_long, channels: *mut c_int, encoding: *mut c_int)
            -> c_int;
        pub fn mpg123_strerror(mh: *mut mpg123_handle) -> *const c_char;
    }
}

const READ_CHUNK: usize = 1 << 16;
/// Output per call, at most: 16 K floats (a few MP3 frames of stereo).
const OUT_FLOATS: usize = 1 << 14;

/// One mpg123 decoder in feed mode, fed from the audio's bytes.
pub struct Mpg123Packets {
    handle: *mut ffi::mpg123_handle,
    source: OffsetFile,
    input: Vec<u8>,
    at_end_of_file: bool,
    channels: usize,
    rate: u32,
    /// The length the Xing/Info/VBRI frame declares, seconds.
    declared_s: Option<f64>,
    frames_out: u64,
}

// SAFETY: the handle is owned by this value alone and used from one thread at a time (`&mut self`)
unsafe impl Send for Mpg123Packets {}

impl Drop for Mpg123Packets {
    fn drop(&mut self) {
        // SAFETY: the handle came from mpg123_new and is deleted once
        unsafe { ffi::mpg123_delete(self.handle) }
    }
}

/// What mpg123 could not decode: the bytes are damaged.
fn decode_error(what: String) -> AnalysisError {
    AnalysisError::new(ErrorCode::Corrupt, "decode", format!("mpg123: {what}"))
}

/// mpg123's text for the handle's last error.
fn handle_error(handle: *mut ffi::mpg123_handle) -> String {
    // SAFETY: mpg123_strerror returns a static or handle-owned NUL-terminated string
    unsafe { CStr::from_ptr(ffi::mpg123_strerror(handle)).to_string_lossy().into_owned() }
}

fn check(handle: *mut ffi::mpg123_handle, code: c_int, what: &str) -> Result<()> {
    if code == ffi::MPG123_OK {
        Ok(())
    } else {
        Err(AnalysisError::new(ErrorCode::Internal, "probe", format!("mpg123 {what}: {}", handle_error(handle))))
    }
}

/// A decoder asking for float output at any rate and channel count, quiet, gapless, in feed mode.
fn new_handle() -> Result<*mut ffi::mpg123_handle> {
    static INIT: Once = Once::new();
    // SAFETY: mpg123_init is called once, before any handle (a no-op from mpg123 1.27 on)
    INIT.call_once(|| unsafe {
        ffi::mpg123_init();
    });
    let mut err: c_int = 0;
    // SAFETY: a NULL decoder name picks the best decoder for this CPU; err receives the reason on failure
    let handle = unsafe { ffi::mpg123_new(std::ptr::null(), &mut err) };
    if handle.is_null() {
        return Err(AnalysisError::new(ErrorCode::Internal, "probe", format!("mpg123_new failed (error {err})")));
    }
    let flags = ffi::MPG123_FORCE_FLOAT | ffi::MPG123_QUIET | ffi::MPG123_GAPLESS;
    // SAFETY: a live handle; parameters and formats set before the stream is opened
    let setup = unsafe {
        check(handle, ffi::mpg123_param(handle, ffi::MPG123_ADD_FLAGS, flags, 0.0), "flags")
            .and_then(|_| check(handle, ffi::mpg123_open_feed(handle), "feed"))
    };
    if let Err(e) = setup {
        // SAFETY: not yet owned by anything else
        unsafe { ffi::mpg123_delete(handle) };
        return Err(e);
    }
    Ok(handle)
}

/// Open MPEG audio (`found.container == "mp3"`) for decoding.
pub fn open(file: File, size: u64, found: &Sniffed, head: &[u8]) -> Result<Opened> {
    let source = OffsetFile::new(file, found.audio_offset as u64, found.audio_end.min(size))
        .map_err(|e| super::file::io_error("probe", &e))?;
    let handle = new_handle()?;
    let declared_s = sniff::mp3_declared_seconds(head, 0);
    Ok(Opened {
        codec: sniff::mpeg_codec(head).unwrap_or("mp3").to_string(),
        sample_rate: 0,
        channels: 0,
        declared_duration_s: declared_s,
        bits_per_sample: None,
        packets: Box::new(Mpg123Packets {
            handle,
            source,
            input: vec![0; READ_CHUNK],
            at_end_of_file: false,
            channels: 0,
            rate: 0,
            declared_s,
            frames_out: 0,
        }),
    })
}

impl Mpg123Packets {
    /// Give mpg123 the next bytes of the audio; false at the end of the file.
    fn feed(&mut self) -> Result<bool> {
        let n = loop {
            match self.source.read(&mut self.input) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(super::file::io_error("decode", &e)),
            }
        };
        if n == 0 {
            return Ok(false);
        }
        // SAFETY: `input[..n]` is initialised; mpg123 copies what it is fed
        let code = unsafe { ffi::mpg123_feed(self.handle, self.input.as_ptr(), n) };
        if code != ffi::MPG123_OK {
            return Err(decode_error(handle_error(self.handle)));
        }
        Ok(true)
    }

    /// True once the stream has decoded the length its header declares.
    fn declared_length_decoded(&self) -> bool {
        match self.declared_s {
            Some(declared) if self.rate > 0 => {
                self.frames_out as f64 / self.rate as f64 >= declared - super::TRUNCATION_TOLERANCE_S
            }
            _ => false,
        }
    }

    fn read_format(&mut self) -> Result<()> {
        let (mut rate, mut channels, mut encoding): (c_long, c_int, c_int) = (0, 0, 0);
        // SAFETY: a live handle; all out-pointers are valid
        let code = unsafe { ffi::mpg123_getformat(self.handle, &mut rate, &mut channels, &mut encoding) };
        if code != ffi::MPG123_OK {
            return Err(decode_error(handle_error(self.handle)));
        }
        if encoding != ffi::MPG123_ENC_FLOAT_32 {
            return Err(AnalysisError::new(ErrorCode::Internal, "decode", format!("mpg123 gave encoding {encoding:#x}, not float")));
        }
        (self.rate, self.channels) = (rate.max(0) as u32, channels.max(0) as usize);
        Ok(())
    }
}

impl Packets for Mpg123Packets {
    fn next(&mut self, buf: &mut Vec<f32>) -> Result<Step> {
        loop {
            let mut done: usize = 0;
            buf.resize(OUT_FLOATS, 0.0);
            // SAFETY: `buf` holds OUT_FLOATS floats; mpg123 writes at most that many bytes and says how many
            let code = unsafe { ffi::mpg123_read(self.handle, buf.as_mut_ptr().cast(), OUT_FLOATS * 4, &mut done) };
            let floats = done / 4;
            buf.truncate(floats);
            if floats > 0 {
                if self.channels == 0 || floats % self.channels != 0 {
                    return Err(AnalysisError::new(ErrorCode::Internal, "decode", "mpg123 gave samples before a whole format"));
                }
                let frames = floats / self.channels;
                self.frames_out += frames as u64;
                return Ok(Step::Audio { frames, rate: self.rate, channels: self.channels });
            }
            match code {
                ffi::MPG123_OK => {}
                // a frame of another format after the declared length: junk that looked like a frame
                ffi::MPG123_NEW_FORMAT if self.declared_length_decoded() => return Ok(Step::End),
                ffi::MPG123_NEW_FORMAT => self.read_format()?,
                ffi::MPG123_NEED_MORE => {
                    if self.at_end_of_file {
                        return Ok(Step::End);
                    }
                    self.at_end_of_file = !self.feed()?;
                }
                ffi::MPG123_DONE => return Ok(Step::End),
                _ if self.declared_length_decoded() => return Ok(Step::End),
                _ => return Err(decode_error(handle_error(self.handle))),
            }
        }
    }
}
