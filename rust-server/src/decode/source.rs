//! A seekable media source over the audio's bytes only: it starts after the
//! leading ID3v2 tags (a malformed one makes symphonia's probe fail; a large one
//! is skipped by seeking) and ends before the trailing ID3v1/APEv2 tags, so no
//! decoder ever mistakes a tag for a damaged frame or page.

use std::fs::File;
use std::io::{Read, Result, Seek, SeekFrom};
use symphonia::core::io::MediaSource;

pub struct OffsetFile {
    file: File,
    offset: u64,
    len: u64,
    /// Position, relative to `offset`.
    pos: u64,
}

impl OffsetFile {
    /// The bytes `[offset, end)` of `file` (`end` is clamped to the file's length).
    pub fn new(mut file: File, offset: u64, end: u64) -> Result<Self> {
        file.seek(SeekFrom::Start(offset))?;
        Ok(OffsetFile { file, offset, len: end.saturating_sub(offset), pos: 0 })
    }
}

impl Read for OffsetFile {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for OffsetFile {
    fn seek(&mut self, pos: SeekFrom) -> Result<u64> {
        let target = match pos {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
            SeekFrom::End(d) => self.len as i128 + d as i128,
        };
        // never expose the skipped tags: clamp to the logical start (past the end is allowed, reads give 0)
        let target = target.clamp(0, u64::MAX as i128 - self.offset as i128) as u64;
        self.file.seek(SeekFrom::Start(self.offset + target))?;
        self.pos = target;
        Ok(target)
    }
}

impl MediaSource for OffsetFile {
    fn is_seekable(&self) -> bool {
        true
    }
    fn byte_len(&self) -> Option<u64> {
        Some(self.len)
    }
}
