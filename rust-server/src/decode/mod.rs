//! Decoding: content sniffing, file checks, symphonia streams.

pub mod file;
pub mod sniff;
pub mod source;
pub mod stream;

pub use stream::DecodedStream;

/// MP3/AAC priming and padding stay well inside this.
pub const TRUNCATION_TOLERANCE_S: f64 = 0.25;
