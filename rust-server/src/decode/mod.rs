//! Decoding: content sniffing, file checks, and one module per decoder family
//! (`symphonia.rs`, `mpg123.rs`, `opus.rs`, `ffmpeg.rs`) behind `stream.rs`, which picks one.

pub mod ffmpeg;
pub mod file;
pub mod mpg123;
pub mod opus;
pub mod sniff;
pub mod source;
pub mod stream;
pub mod symphonia;

pub use stream::DecodedStream;

/// MP3/AAC priming and padding stay well inside this.
pub const TRUNCATION_TOLERANCE_S: f64 = 0.25;

/// An Ogg stream may decode this share of its length short of its last page's
/// granule and still be whole (as in `pyengine/decode.py`): symphonia's Vorbis
/// decoder stopped 0.32 s short on a real 378-s file that FFmpeg and libsndfile
/// decode in full. A loss that small cannot move the fingerprint; a damaged page
/// in a short file, what the check is for, loses far more.
pub const OGG_SHORTFALL_SHARE: f64 = 0.005;

/// How far short of `expected` seconds an Ogg stream may decode and still be whole.
pub fn ogg_shortfall_allowed(expected: f64) -> f64 {
    TRUNCATION_TOLERANCE_S.max(OGG_SHORTFALL_SHARE * expected)
}
