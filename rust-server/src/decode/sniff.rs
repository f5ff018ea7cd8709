//! Recognise a container by its first bytes, never by its name (`pyengine/sniff.py`),
//! and read the duration a container declares.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sniffed {
    /// flac, wav, aiff, w64, caf, ogg, mp4, wavpack, ape, aac, mp3
    pub container: &'static str,
    /// Bytes of ID3v2 tags in front of the stream.
    pub audio_offset: usize,
    /// One past the audio's last byte (before trailing tags); `u64::MAX`: the end of the file.
    pub audio_end: u64,
    /// When the header already says (ogg: vorbis/opus/flac).
    pub codec: Option<&'static str>,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Total size of an ID3v2 tag at the start of `head` (0 when there is none).
pub fn id3v2_size(head: &[u8]) -> usize {
    if head.len() < 10 || &head[..3] != b"ID3" || head[3] == 0xFF || head[4] == 0xFF {
        return 0;
    }
    let s = &head[6..10];
    if s.iter().any(|b| b & 0x80 != 0) {
        return 0;
    }
    let size = ((s[0] as usize) << 21) | ((s[1] as usize) << 14) | ((s[2] as usize) << 7) | s[3] as usize;
    let footer = if head[5] & 0x10 != 0 { 10 } else { 0 };
    10 + size + footer
}

const MPEG1_L3: [u32; 16] = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0];
const MPEG1_L2: [u32; 16] = [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 0];
const MPEG1_L1: [u32; 16] = [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448, 0];
const MPEG2_L3: [u32; 16] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0];
const MPEG2_L1: [u32; 16] = [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256, 0];

/// (frame_length, sample_rate, samples_per_frame) of a valid MPEG audio frame header at `pos`.
pub fn mpeg_frame(head: &[u8], pos: usize) -> Option<(usize, u32, u32)> {
    if pos + 4 > head.len() {
        return None;
    }
    let (b1, b2, b3) = (head[pos + 1], head[pos + 2], head[pos + 3]);
    if head[pos] != 0xFF || (b1 & 0xE0) != 0xE0 {
        return None;
    }
    let (version, layer) = ((b1 >> 3) & 3, (b1 >> 1) & 3);
    let (bitrate_index, rate_index, padding) = ((b2 >> 4) as usize, ((b2 >> 2) & 3) as usize, ((b2 >> 1) & 1) as usize);
    if version == 1 || layer == 0 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 || (b3 & 3) == 2 {
        return None;
    }
    let rates: [u32; 3] = match version {
        3 => [44100, 48000, 32000],
        2 => [22050, 24000, 16000],
        _ => [11025, 12000, 8000],
    };
    let rate = rates[rate_index];
    let kbps = if version == 3 {
        match layer {
            1 => MPEG1_L3[bitrate_index],
            2 => MPEG1_L2[bitrate_index],
            _ => MPEG1_L1[bitrate_index],
        }
    } else if layer == 1 || layer == 2 {
        MPEG2_L3[bitrate_index]
    } else {
        MPEG2_L1[bitrate_index]
    } as usize;
    if layer == 3 {
        return Some(((12 * kbps * 1000 / rate as usize + padding) * 4, rate, 384));
    }
    let spf: usize = if layer == 2 || version == 3 { 1152 } else { 576 };
    Some((spf / 8 * kbps * 1000 / rate as usize + padding, rate, spf as u32))
}

/// Two consecutive valid MPEG frame headers.
pub fn looks_like_mpeg(head: &[u8], pos: usize) -> bool {
    let Some((len, _, _)) = mpeg_frame(head, pos) else { return false };
    let next = pos + len;
    if next + 4 > head.len() {
        return len > 0 && next <= head.len() + 4;
    }
    mpeg_frame(head, next).is_some()
}

/// The container of a file starting with `head` (one ID3v2 tag inside `head` is skipped).
pub fn sniff(head: &[u8]) -> Option<Sniffed> {
    let offset = id3v2_size(head);
    let body: &[u8] = if offset < head.len() { &head[offset..] } else { &[] };
    sniff_audio(body, offset)
}

/// The container of audio starting with `body`, found `offset` bytes into the file (after its tags).
pub fn sniff_audio(body: &[u8], offset: usize) -> Option<Sniffed> {
    let at = |a: usize, b: usize| -> &[u8] { if body.len() >= b { &body[a..b] } else if body.len() > a { &body[a..] } else { &[] } };
    let s = |container, codec| Some(Sniffed { container, audio_offset: offset, audio_end: u64::MAX, codec });
    if at(0, 4) == b"fLaC" {
        return s("flac", Some("flac"));
    }
    if (at(0, 4) == b"RIFF" || at(0, 4) == b"RIFX") && at(8, 12) == b"WAVE" || at(0, 4) == b"RF64" {
        return s("wav", None);
    }
    if at(0, 4) == b"FORM" && (at(8, 12) == b"AIFF" || at(8, 12) == b"AIFC") {
        return s("aiff", None);
    }
    // Sony Wave64: the RIFF GUID 66666972-912e-11cf-a5d6-28db04c10000 ("riff" then 2e 91 cf 11 ...)
    if at(0, 4) == b"riff" && at(4, 8) == [0x2e, 0x91, 0xcf, 0x11] {
        return s("w64", None);
    }
    if at(0, 4) == b"caff" {
        return s("caf", None);
    }
    if at(0, 4) == b"OggS" {
        let packet = at(28, 36);
        let codec = if packet.starts_with(b"\x01vorbis") {
            Some("vorbis")
        } else if packet.starts_with(b"OpusHead") {
            Some("opus")
        } else if at(29, 33) == b"FLAC" {
            Some("flac")
        } else {
            None
        };
        return s("ogg", codec);
    }
    if at(4, 8) == b"ftyp" {
        return s("mp4", None);
    }
    if at(0, 4) == b"wvpk" {
        return s("wavpack", Some("wavpack"));
    }
    if at(0, 4) == b"MAC " {
        return s("ape", Some("ape"));
    }
    if body.len() >= 2 && body[0] == 0xFF && (body[1] & 0xF6) == 0xF0 {
        return s("aac", Some("aac"));
    }
    if looks_like_mpeg(body, 0) {
        return s("mp3", Some("mp3"));
    }
    if offset > 0 && (0..body.len().min(4096)).any(|p| looks_like_mpeg(body, p)) {
        return s("mp3", Some("mp3"));
    }
    None
}

/// Total samples per channel from STREAMINFO (None when 0 = unknown).
pub fn flac_declared_frames(head: &[u8], offset: usize) -> Option<u64> {
    let start = offset + 8;
    if head.len() < start + 18 {
        return None;
    }
    let info = &head[start..];
    let total = (((info[13] & 0x0F) as u64) << 32) | be32(&info[14..18]) as u64;
    (total > 0).then_some(total)
}

/// data-chunk bytes / block align from the RIFF header (None for streamed or RF64 files).
pub fn wav_declared_frames(head: &[u8], offset: usize) -> Option<u64> {
    let body = head.get(offset..)?;
    if body.len() < 4 || &body[..4] != b"RIFF" {
        return None;
    }
    let (mut pos, mut block_align) = (12usize, None::<u64>);
    while pos + 8 <= body.len() {
        let chunk = &body[pos..pos + 4];
        let size = le32(&body[pos + 4..pos + 8]) as usize;
        if chunk == b"fmt " && pos + 22 <= body.len() {
            block_align = Some(u16::from_le_bytes([body[pos + 20], body[pos + 21]]) as u64);
        }
        if chunk == b"data" {
            let align = block_align.filter(|&a| a > 0)?;
            if size == 0 || size == 0xFFFF_FFFF {
                return None;
            }
            return Some(size as u64 / align);
        }
        pos = pos.checked_add(8 + size + (size & 1))?;
    }
    None
}

/// numSampleFrames of the AIFF COMM chunk.
pub fn aiff_declared_frames(head: &[u8], offset: usize) -> Option<u64> {
    let body = head.get(offset..)?;
    let mut pos = 12usize;
    while pos + 8 <= body.len() {
        let chunk = &body[pos..pos + 4];
        let size = be32(&body[pos + 4..pos + 8]) as usize;
        if chunk == b"COMM" && pos + 14 <= body.len() {
            let n = be32(&body[pos + 10..pos + 14]) as u64;
            return (n > 0).then_some(n);
        }
        pos = pos.checked_add(8 + size + (size & 1))?;
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Frame count of a Xing/Info or VBRI header times samples per frame, seconds.
pub fn mp3_declared_seconds(head: &[u8], offset: usize) -> Option<f64> {
    let body = head.get(offset..)?;
    let pos = (0..body.len().min(8192)).find(|&p| looks_like_mpeg(body, p))?;
    let (_, rate, spf) = mpeg_frame(body, pos)?;
    let frame = &body[pos..(pos + 200).min(body.len())];
    for tag in [b"Xing", b"Info"] {
        if let Some(at) = find(frame, tag) {
            if at + 12 <= frame.len() {
                let flags = be32(&frame[at + 4..at + 8]);
                if flags & 1 != 0 {
                    return Some(be32(&frame[at + 8..at + 12]) as f64 * spf as f64 / rate as f64);
                }
            }
        }
    }
    if let Some(at) = find(frame, b"VBRI") {
        if at + 18 <= frame.len() {
            return Some(be32(&frame[at + 14..at + 18]) as f64 * spf as f64 / rate as f64);
        }
    }
    None
}

/// True when the last Ogg page is complete and carries the end-of-stream flag.
pub fn ogg_ends_cleanly(tail: &[u8]) -> bool {
    let Some(at) = tail.windows(4).rposition(|w| w == b"OggS") else { return false };
    if at + 27 > tail.len() {
        return false;
    }
    let segments = tail[at + 26] as usize;
    if at + 27 + segments > tail.len() {
        return false;
    }
    let body: usize = tail[at + 27..at + 27 + segments].iter().map(|&b| b as usize).sum();
    at + 27 + segments + body == tail.len() && tail[at + 5] & 0x04 != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn recognises_flac_after_id3() {
        let mut head = b"ID3\x04\x00\x00\x00\x00\x00\x05".to_vec();
        head.extend_from_slice(&[0; 5]);
        head.extend_from_slice(b"fLaC");
        let s = sniff(&head).unwrap();
        assert_eq!((s.container, s.audio_offset), ("flac", 15));
        assert_eq!(sniff(b"hello world"), None);
        assert_eq!(sniff(b""), None);
    }
}
