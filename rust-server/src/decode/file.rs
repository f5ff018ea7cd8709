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

fn read_at(file: &mut File, pos: u64, n: usize) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(pos))?;
    read_up_to(file, n)
}

/// Bytes of ID3v2 tags at the start of the file, read from the file itself: tags
/// can be stacked, and one can be many MiB (embedded cover art), far beyond any
/// fixed window (`pyengine.sniff.leading_id3v2_size`). Only headers are read: the
/// tags are skipped by seeking.
pub fn leading_tags(file: &mut File, size: u64) -> std::io::Result<u64> {
    let mut pos = 0u64;
    while pos + 10 <= size {
        let tag = super::sniff::id3v2_size(&read_at(file, pos, 10)?) as u64;
        if tag == 0 {
            break;
        }
        pos += tag;
    }
    Ok(pos.min(size))
}

/// Where the audio ends: before ID3v1 (`TAG`, 128 bytes), APEv2 (`APETAGEX` footer)
/// and Lyrics3v2 tags at the end of the file, in any order and of any size
/// (`pyengine.identity._strip_trailing_tags`).
pub fn trailing_tags_start(file: &mut File, start: u64, size: u64) -> std::io::Result<u64> {
    let mut end = size;
    loop {
        if end - start >= 128 && read_at(file, end - 128, 3)? == b"TAG" {
            end -= 128;
            continue;
        }
        if end - start >= 32 {
            let footer = read_at(file, end - 32, 32)?;
            if footer.len() == 32 && &footer[..8] == b"APETAGEX" {
                let size = u32::from_le_bytes([footer[12], footer[13], footer[14], footer[15]]) as u64;
                let flags = u32::from_le_bytes([footer[20], footer[21], footer[22], footer[23]]);
                let total = size + if flags & 0x8000_0000 != 0 { 32 } else { 0 };
                if total > 0 && total <= end - start {
                    end -= total;
                    continue;
                }
            }
        }
        if end - start >= 15 {
            let tail = read_at(file, end - 15, 15)?;
            if tail.len() == 15 && &tail[6..] == b"LYRICS200" {
                let total = std::str::from_utf8(&tail[..6]).ok().and_then(|t| t.parse::<u64>().ok()).map(|n| n + 15);
                if let Some(total) = total.filter(|&t| t > 15 && t <= end - start) {
                    end -= total;
                    continue;
                }
            }
        }
        return Ok(end);
    }
}

/// The audio's place in the file (tags in front and behind excluded) and its first and last 64 KiB.
pub struct Edges {
    /// First byte of the audio (after leading ID3v2 tags).
    pub start: u64,
    /// One past the last byte of the audio (before trailing ID3v1/APEv2/Lyrics3 tags).
    pub end: u64,
    /// The first 64 KiB of the audio (the sniffer and the declared-duration readers need them).
    pub head: Vec<u8>,
    /// The last 64 KiB of the audio (the Ogg end-of-stream check).
    pub tail: Vec<u8>,
}

/// Find the audio between the tags and read its edges.
pub fn read_edges(file: &mut File, size: u64) -> Result<Edges> {
    let probe = |e: std::io::Error| io_error("probe", &e);
    if read_at(file, 0, 1).map_err(probe)?.is_empty() {
        return Err(AnalysisError::new(ErrorCode::EmptyFile, "probe", "the first read returned nothing"));
    }
    let start = leading_tags(file, size).map_err(probe)?;
    let end = trailing_tags_start(file, start, size).map_err(probe)?;
    let head = read_at(file, start, HEAD_BYTES.min((end - start) as usize)).map_err(probe)?;
    let tail_from = end.saturating_sub(TAIL_BYTES as u64).max(start);
    let tail = read_at(file, tail_from, (end - tail_from) as usize).map_err(probe)?;
    file.seek(SeekFrom::Start(0)).map_err(probe)?;
    Ok(Edges { start, end, head, tail })
}
