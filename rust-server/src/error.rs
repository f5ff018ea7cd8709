//! The error taxonomy shared with the Python engine (`trackprint/errors.py`).
//!
//! Every failure is an [`AnalysisError`]: a stable [`ErrorCode`], the stage
//! where it happened, the path it concerns (kept apart) and the raw reason.
//! The message never names the path: the HTTP body carries `code`, `stage` and
//! `message` separately, and only the log line ([`std::fmt::Display`]) joins
//! them as `PATH: STAGE: CODE: REASON`. The HTTP status of a code is decided
//! in the HTTP layer (`http::status_for`), not here.

use serde::Serialize;
use thiserror::Error;

/// Why a file has no fingerprint. The strings are a contract with the Python
/// side: exactly the values of `trackprint.errors.ErrorCode`, in its order,
/// plus `bad_request` (HTTP only; never reaches the bus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    NotFound,
    NotAFile,
    EmptyFile,
    UnsupportedFormat,
    Corrupt,
    Truncated,
    TooShort,
    OutsideLibrary,
    Timeout,
    Internal,
    TooLarge,
    IoError,
    Busy,
    /// The requested engine cannot run. The server never produces it (the
    /// Python client does, when the server is missing); it is here so that the
    /// taxonomy is one list.
    EngineUnavailable,
    /// A bus message failed validation. The server never produces it (the
    /// services do); it is here so that the taxonomy is one list.
    InvalidMessage,
    /// The request body is not `{"path": ...}` JSON. HTTP only.
    BadRequest,
}

impl ErrorCode {
    /// Every code, in declaration order (`--list-error-codes` prints this).
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::NotFound,
        ErrorCode::NotAFile,
        ErrorCode::EmptyFile,
        ErrorCode::UnsupportedFormat,
        ErrorCode::Corrupt,
        ErrorCode::Truncated,
        ErrorCode::TooShort,
        ErrorCode::OutsideLibrary,
        ErrorCode::Timeout,
        ErrorCode::Internal,
        ErrorCode::TooLarge,
        ErrorCode::IoError,
        ErrorCode::Busy,
        ErrorCode::EngineUnavailable,
        ErrorCode::InvalidMessage,
        ErrorCode::BadRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not_found",
            ErrorCode::NotAFile => "not_a_file",
            ErrorCode::EmptyFile => "empty_file",
            ErrorCode::UnsupportedFormat => "unsupported_format",
            ErrorCode::Corrupt => "corrupt",
            ErrorCode::Truncated => "truncated",
            ErrorCode::TooShort => "too_short",
            ErrorCode::OutsideLibrary => "outside_library",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Internal => "internal",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::IoError => "io_error",
            ErrorCode::Busy => "busy",
            ErrorCode::EngineUnavailable => "engine_unavailable",
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::BadRequest => "bad_request",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed, expected failure to fingerprint one file.
///
/// `message` is the raw reason only (no path, no stage, no code); `Display`
/// is the log form `PATH: STAGE: CODE: REASON` (`PATH: ` omitted without a path).
#[derive(Debug, Clone, Error)]
#[error("{}{stage}: {code}: {message}", path.as_deref().map(|p| format!("{p}: ")).unwrap_or_default())]
pub struct AnalysisError {
    pub code: ErrorCode,
    /// Where it happened: `admit`, `open`, `probe`, `decode`, `analyse`, `request`.
    pub stage: &'static str,
    /// The file concerned, for the log line; never part of `message`.
    pub path: Option<String>,
    /// The raw reason.
    pub message: String,
}

impl AnalysisError {
    pub fn new(code: ErrorCode, stage: &'static str, message: impl Into<String>) -> Self {
        AnalysisError { code, stage, path: None, message: message.into() }
    }

    pub fn with_path(mut self, path: &str) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_string());
        }
        self
    }
}

pub type Result<T> = std::result::Result<T, AnalysisError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_snake_case() {
        let names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::Value::from(code.as_str()));
        }
        assert_eq!(names.last(), Some(&"bad_request"));
    }

    #[test]
    fn display_is_the_log_line_and_message_is_raw() {
        let e = AnalysisError::new(ErrorCode::Corrupt, "decode", "demuxing failed").with_path("/music/a.flac");
        assert_eq!(e.to_string(), "/music/a.flac: decode: corrupt: demuxing failed");
        assert_eq!(e.message, "demuxing failed");
        let e = AnalysisError::new(ErrorCode::BadRequest, "request", "missing field `path`");
        assert_eq!(e.to_string(), "request: bad_request: missing field `path`");
    }
}
