//! Decoding: content sniffing, file checks, and one module per decoder family
//! (`symphonia.rs`, `opus.rs`, `ffmpeg.rs`) behind `stream.rs`, which picks one.

pub mod ffmpeg;
pub mod file;
pub mod opus;
pub mod sniff;
pub mod source;
pub mod stream;
pub mod symphonia;

pub use stream::DecodedStream;

/// MP3/AAC priming and padding stay well inside this.
pub const TRUNCATION_TOLERANCE_S: f64 = 0.25;
