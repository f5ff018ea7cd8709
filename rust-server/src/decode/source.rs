//! A seekable media source that starts at a byte offset (skips an ID3v2 tag in
//! front of a FLAC stream, which makes symphonia's probe fail when malformed).

use std::fs::File;
use std::io::{Read, Result, Seek, SeekFrom};
use symphonia::core::io::MediaSource;

pub struct OffsetFile {
    file: File,
    offset: u64,
    len: u64,
}

impl OffsetFile {
    pub fn new(mut file: File, offset: u64, file_len: u64) -> Result<Self> {
        file.seek(SeekFrom::Start(offset))?;
        Ok(OffsetFile { file, offset, len: file_len.saturating_sub(offset) })
    }
}

impl Read for OffsetFile {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.file.read(buf)
    }
}

impl Seek for OffsetFile {
    fn seek(&mut self, pos: SeekFrom) -> Result<u64> {
        let absolute = match pos {
            SeekFrom::Start(p) => self.file.seek(SeekFrom::Start(p.saturating_add(self.offset)))?,
            other => self.file.seek(other)?,
        };
        if absolute < self.offset {
            // never expose the skipped tag: clamp to the logical start
            self.file.seek(SeekFrom::Start(self.offset))?;
            return Ok(0);
        }
        Ok(absolute - self.offset)
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
