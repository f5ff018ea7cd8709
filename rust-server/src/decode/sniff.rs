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

/// Where a FLAC stream's metadata blocks end (its first frame starts), when they fit in `head`.
pub fn flac_metadata_end(head: &[u8]) -> Option<usize> {
    let mut pos = 4;
    while pos + 4 <= head.len() {
        let last = head[pos] & 0x80 != 0;
        pos += 4 + ((head[pos + 1] as usize) << 16 | (head[pos + 2] as usize) << 8 | head[pos + 3] as usize);
        if last {
            return Some(pos);
        }
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

/// Where the first MPEG audio frame in `body` starts (searched in its first 8 KiB).
fn first_mpeg_frame(body: &[u8]) -> Option<usize> {
    (0..body.len().min(8192)).find(|&p| looks_like_mpeg(body, p))
}

/// The codec of MPEG audio starting in `head` by its first frame's layer: "mp3", "mp2" or "mp1".
pub fn mpeg_codec(head: &[u8]) -> Option<&'static str> {
    let pos = first_mpeg_frame(head)?;
    Some(match (head[pos + 1] >> 1) & 3 {
        1 => "mp3",
        2 => "mp2",
        _ => "mp1",
    })
}

/// Frame count of a Xing/Info or VBRI header times samples per frame, seconds.
pub fn mp3_declared_seconds(head: &[u8], offset: usize) -> Option<f64> {
    let body = head.get(offset..)?;
    let pos = first_mpeg_frame(body)?;
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

/// The end of an Ogg stream as its last 64 KiB show it: `Some(true)` a complete end-of-stream page
/// at the very end, `Some(false)` a last page that runs past the end of the file or ends it without
/// the end-of-stream flag (the stream was cut), `None` bytes after the last complete page, or no
/// page at all (what is there is not Ogg: damage, not a cut).
pub fn ogg_tail_state(tail: &[u8]) -> Option<bool> {
    let at = tail.windows(4).rposition(|w| w == b"OggS")?;
    if at + 27 > tail.len() || at + 27 + tail[at + 26] as usize > tail.len() {
        return Some(false);
    }
    let segments = tail[at + 26] as usize;
    let body: usize = tail[at + 27..at + 27 + segments].iter().map(|&b| b as usize).sum();
    let end = at + 27 + segments + body;
    match end.cmp(&tail.len()) {
        std::cmp::Ordering::Greater => Some(false),
        std::cmp::Ordering::Equal => Some(tail[at + 5] & 0x04 != 0),
        std::cmp::Ordering::Less => None,
    }
}

/// The granule position of the last Ogg page, when `tail` ends with a complete end-of-stream page
/// (for Vorbis and FLAC the samples per channel; for Opus 48 kHz samples, pre-skip included).
pub fn ogg_last_granule(tail: &[u8]) -> Option<u64> {
    if !ogg_ends_cleanly(tail) {
        return None;
    }
    let at = tail.windows(4).rposition(|w| w == b"OggS")?;
    let g = i64::from_le_bytes(tail[at + 6..at + 14].try_into().ok()?);
    (g >= 0).then_some(g as u64)
}

/// The pre-skip of an Ogg Opus stream's `OpusHead` (in the first page of `head`).
/// The channel count in an Ogg Vorbis stream's identification header (in the first page of `head`).
pub fn vorbis_channels(head: &[u8]) -> Option<u8> {
    let at = head.get(..head.len().min(300))?.windows(7).position(|w| w == b"\x01vorbis")?;
    head.get(at + 11).copied()
}

pub fn opus_pre_skip(head: &[u8]) -> Option<u16> {
    let at = head.get(..head.len().min(300))?.windows(8).position(|w| w == b"OpusHead")?;
    head.get(at + 10..at + 12).map(|b| u16::from_le_bytes([b[0], b[1]]))
}

/// Whether the audio's bytes reach the end that the container's own structure declares
/// (`docs/fingerprint-spec.md`, "Outcomes": truncated vs corrupt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// The structure declares this many bytes, more than the file holds: the file was cut.
    Cut(u64),
    /// The structure's declared end is inside the file: it was not cut (damage, if any, is corruption).
    Whole,
    /// The container declares no byte length (FLAC, ADTS, W64, APE before 3.98), or its structure is unreadable.
    Unknown,
}

/// How many bytes the container structure of `container` declares, against `len`, the bytes the
/// audio span holds. `read_at(pos, buf)` reads at `pos` of the audio span, returning the bytes
/// read. RIFF/FORM sizes (WAV, AIFF), CAF chunk sizes, MP4 top-level box sizes, WavPack block
/// sizes, the MP3 Xing/Info/VBRI byte count, the byte counts of APE's descriptor (3.98 and
/// later); Ogg: `ogg_tail` ([`ogg_tail_state`]).
pub fn byte_extent(container: &str, len: u64, ogg_tail: Option<bool>, read_at: &mut dyn FnMut(u64, &mut [u8]) -> usize) -> Extent {
    let judge = |declared: u64| if declared > len { Extent::Cut(declared) } else { Extent::Whole };
    let mut buf = [0u8; 16];
    // walk chunks/boxes from `pos`: header(pos) -> Some(total size of the chunk) / None (to the end)
    let mut walk = |mut pos: u64, hdr: usize, size_of: &dyn Fn(&[u8]) -> Option<Option<u64>>| -> Extent {
        for _ in 0..1_000_000 {
            if pos >= len {
                return if pos == len { Extent::Whole } else { Extent::Cut(pos) };
            }
            let got = read_at(pos, &mut buf[..hdr]);
            if got < hdr {
                return Extent::Cut(pos + hdr as u64);
            }
            match size_of(&buf[..hdr]) {
                None => return Extent::Unknown,
                Some(None) => return Extent::Whole,
                Some(Some(size)) => pos = pos.saturating_add(size),
            }
        }
        Extent::Unknown
    };
    match container {
        "wav" | "aiff" => {
            if read_at(0, &mut buf[..8]) < 8 || &buf[..4] == b"RF64" {
                return Extent::Unknown;
            }
            let size = if &buf[..4] == b"FORM" || &buf[..4] == b"RIFX" { be32(&buf[4..8]) } else { le32(&buf[4..8]) };
            if size == 0 || size == u32::MAX {
                return Extent::Unknown; // a stream writer's placeholder
            }
            judge(8 + size as u64)
        }
        "caf" => walk(8, 12, &|h| {
            let size = i64::from_be_bytes(h[4..12].try_into().unwrap());
            match size {
                -1 if &h[..4] == b"data" => Some(None),
                s if s >= 0 => Some(Some(12 + s as u64)),
                _ => None,
            }
        }),
        "mp4" => walk(0, 8, &|h| match be32(&h[..4]) {
            0 => Some(None),
            s if s >= 8 => Some(Some(s as u64)),
            _ => None, // 1: a 64-bit size (files over 4 GiB): not judged
        }),
        "wavpack" => walk(0, 8, &|h| (&h[..4] == b"wvpk").then(|| Some(le32(&h[4..8]) as u64 + 8))),
        "ape" => {
            // APE_DESCRIPTOR: "MAC ", version, padding, then the byte counts of the descriptor, header,
            // seek table, WAV header data, frame data (low, high 32 bits) and WAV terminating data
            let mut d = [0u8; 36];
            if read_at(0, &mut d) < 36 || &d[..4] != b"MAC " || u16::from_le_bytes([d[4], d[5]]) < 3980 {
                return Extent::Unknown; // older files have no descriptor
            }
            let field = |i: usize| le32(&d[8 + 4 * i..12 + 4 * i]) as u64;
            judge(field(0) + field(1) + field(2) + field(3) + (field(5) << 32 | field(4)) + field(6))
        }
        "mp3" => {
            // the byte count of a Xing/Info (flag 2) or VBRI header counts from the first frame
            let mut head = vec![0u8; 4096 + 200];
            let got = read_at(0, &mut head);
            head.truncate(got);
            let Some(first) = (0..got.min(4096)).find(|&p| looks_like_mpeg(&head, p)) else { return Extent::Unknown };
            let frame = &head[first..(first + 200).min(got)];
            let judge = |bytes: u32| judge(first as u64 + bytes as u64);
            for tag in [b"Xing", b"Info"] {
                if let Some(at) = frame.windows(4).position(|w| w == tag) {
                    let flags = if at + 8 <= frame.len() { be32(&frame[at + 4..at + 8]) } else { 0 };
                    let pos = at + 8 + if flags & 1 != 0 { 4 } else { 0 };
                    return if flags & 2 != 0 && pos + 4 <= frame.len() { judge(be32(&frame[pos..pos + 4])) } else { Extent::Unknown };
                }
            }
            match frame.windows(4).position(|w| w == b"VBRI") {
                Some(at) if at + 14 <= frame.len() => judge(be32(&frame[at + 10..at + 14])),
                _ => Extent::Unknown,
            }
        }
        "ogg" => match ogg_tail {
            Some(true) => Extent::Whole,
            Some(false) => Extent::Cut(len + 1), // its last page is incomplete or not the end-of-stream page
            None => Extent::Unknown,             // no page in the last bytes: garbage, not a cut
        },
        _ => Extent::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two frames of MPEG-1 at 44.1 kHz, 128 kbit/s, of the given layer bits (3: I, 2: II, 1: III).
    fn two_mpeg_frames(layer_bits: u8) -> Vec<u8> {
        let header = [0xFF, 0xE0 | (3 << 3) | (layer_bits << 1) | 1, 0x90, 0x00];
        let len = mpeg_frame(&header, 0).expect("a valid header").0;
        let mut frame = header.to_vec();
        frame.resize(len, 0);
        [frame.clone(), frame].concat()
    }

    #[test]
    fn names_the_mpeg_layer() {
        assert_eq!(mpeg_codec(&two_mpeg_frames(1)), Some("mp3"));
        assert_eq!(mpeg_codec(&two_mpeg_frames(2)), Some("mp2"));
        assert_eq!(mpeg_codec(&two_mpeg_frames(3)), Some("mp1"));
        assert_eq!(mpeg_codec(b"not mpeg audio at all"), None);
    }
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

    fn extent_of(container: &str, data: &[u8], ogg_tail: Option<bool>) -> Extent {
        let mut read_at = |pos: u64, buf: &mut [u8]| -> usize {
            let from = (pos as usize).min(data.len());
            let n = buf.len().min(data.len() - from);
            buf[..n].copy_from_slice(&data[from..from + n]);
            n
        };
        byte_extent(container, data.len() as u64, ogg_tail, &mut read_at)
    }

    #[test]
    fn a_cut_file_is_told_from_a_whole_one_by_its_structure() {
        let mut wav = b"RIFF".to_vec();
        wav.extend_from_slice(&(36u32 + 1000).to_le_bytes());
        wav.extend_from_slice(&[0; 36 + 1000]);
        assert_eq!(extent_of("wav", &wav, None), Extent::Whole);
        assert_eq!(extent_of("wav", &wav[..500], None), Extent::Cut(1044));
        let mut mp4 = Vec::new();
        for (kind, size) in [(b"ftyp", 24u32), (b"mdat", 1000), (b"moov", 200)] {
            mp4.extend_from_slice(&size.to_be_bytes());
            mp4.extend_from_slice(kind);
            mp4.extend_from_slice(&vec![0; size as usize - 8]);
        }
        assert_eq!(extent_of("mp4", &mp4, None), Extent::Whole);
        assert_eq!(extent_of("mp4", &mp4[..600], None), Extent::Cut(1024));
        assert_eq!(extent_of("mp4", &mp4[..1100], None), Extent::Cut(1224));
        assert_eq!(extent_of("flac", &mp4, None), Extent::Unknown);
        assert_eq!(extent_of("ogg", &mp4, Some(false)), Extent::Cut(mp4.len() as u64 + 1));
        assert_eq!(extent_of("ogg", &mp4, None), Extent::Unknown);
        // APE 3.98+: the descriptor's byte counts (52 + 24 + 8 + 44 + 1000 frame bytes + 4) add up to the file
        let mut ape = b"MAC ".to_vec();
        ape.extend_from_slice(&3990u16.to_le_bytes());
        ape.extend_from_slice(&[0; 2]);
        for count in [52u32, 24, 8, 44, 1000, 0, 4] {
            ape.extend_from_slice(&count.to_le_bytes());
        }
        ape.resize(1132, 0);
        assert_eq!(extent_of("ape", &ape, None), Extent::Whole);
        assert_eq!(extent_of("ape", &ape[..700], None), Extent::Cut(1132));
        ape[4..6].copy_from_slice(&3970u16.to_le_bytes()); // before 3.98: no descriptor to judge by
        assert_eq!(extent_of("ape", &ape[..700], None), Extent::Unknown);
    }
}
