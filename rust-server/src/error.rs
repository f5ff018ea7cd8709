//! The error taxonomy shared with the Python engine (`trackprint/errors.py`).
//!
//! Every failure is an [`AnalysisError`]: a stable [`ErrorCode`] string, the
//! stage where it happened and a message naming the file and the reason. The
//! HTTP layer maps codes to statuses with [`ErrorCode::http_status`].

use serde::Serialize;
use thiserror::Error;

/// Why a file has no fingerprint. The strings are a contract with the Python side.
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
    BadRequest,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 14] = [
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
            ErrorCode::BadRequest => "bad_request",
        }
    }

    /// The HTTP status the server answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::NotFound => 404,
            ErrorCode::NotAFile | ErrorCode::EmptyFile | ErrorCode::Corrupt => 422,
            ErrorCode::Truncated | ErrorCode::TooShort => 422,
            ErrorCode::UnsupportedFormat => 415,
            ErrorCode::OutsideLibrary => 403,
            ErrorCode::Timeout => 504,
            ErrorCode::TooLarge => 413,
            ErrorCode::IoError => 503,
            ErrorCode::Internal => 500,
            ErrorCode::Busy => 503,
            ErrorCode::BadRequest => 400,
        }
    }
}

/// A typed, expected failure to fingerprint one file.
#[derive(Debug, Clone, Error)]
#[error("{}{stage}: {}: {message}", path.as_deref().map(|p| format!("{p}: ")).unwrap_or_default(), code.as_str())]
pub struct AnalysisError {
    pub code: ErrorCode,
    pub stage: &'static str,
    pub path: Option<String>,
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
