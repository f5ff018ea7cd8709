//! Checks before any decoder sees the file: stat, type, size, first and last bytes.

use crate::error::{AnalysisError, ErrorCode, Result};
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::Path;

pub const HEAD_BYTES: usize = 1 << 16;
pub const TAIL_BYTES: usize = 1 << 16;

/// Stat `path` and turn every problem into a typed error; returns the size in bytes.
pub fn check_file(path: &Path, max_bytes: u64) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => AnalysisError::new(ErrorCode::NotFound, "open", "no such file"),
        ErrorKind::NotADirectory => {
            AnalysisError::new(ErrorCode::NotFound, "open", "a parent of the path is not a directory")
        }
        ErrorKind::PermissionDenied => AnalysisError::new(ErrorCode::IoError, "open", "permission denied"),
        _ => AnalysisError::new(ErrorCode::IoError, "open", format!("cannot stat: {e}")),
    })?;
    if meta.is_dir() {
        return Err(AnalysisError::new(ErrorCode::NotAFile, "open", "is a directory"));
    }
    if !meta.is_file() {
        return Err(AnalysisError::new(ErrorCode::NotAFile, "open", "not a regular file"));
    }
    if meta.len() == 0 {
        return Err(AnalysisError::new(ErrorCode::EmptyFile, "open", "file is empty (0 bytes)"));
    }
    if meta.len() > max_bytes {
        return Err(AnalysisError::new(
            ErrorCode::TooLarge,
            "open",
            format!("{} bytes is above the {max_bytes}-byte limit", meta.len()),
        ));
    }
    Ok(meta.len())
}

pub fn io_error(stage: &'static str, e: &std::io::Error) -> AnalysisError {
    AnalysisError::new(ErrorCode::IoError, stage, format!("read failed: {e}"))
}

fn read_up_to(file: &mut File, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    file.by_ref().take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The first and last 64 KiB of the file (the sniffer and the declared-duration readers need them).
pub fn read_edges(file: &mut File, size: u64) -> Result<(Vec<u8>, Vec<u8>)> {
    let head = read_up_to(file, HEAD_BYTES).map_err(|e| io_error("probe", &e))?;
    if head.is_empty() {
        return Err(AnalysisError::new(ErrorCode::EmptyFile, "probe", "the first read returned nothing"));
    }
    file.seek(SeekFrom::Start(size.saturating_sub(TAIL_BYTES as u64))).map_err(|e| io_error("probe", &e))?;
    let tail = read_up_to(file, TAIL_BYTES).map_err(|e| io_error("probe", &e))?;
    file.seek(SeekFrom::Start(0)).map_err(|e| io_error("probe", &e))?;
    Ok((head, tail))
}
