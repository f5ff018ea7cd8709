//! Ogg Opus (RFC 7845), decoded by libopus, the reference decoder.
//!
//! libopus comes from `opusic-sys`, which builds the pinned 1.6.1 sources it
//! bundles (cmake and a C compiler: `scripts/setup.sh`) and links them
//! statically. The Ogg pages are read by the `ogg` crate; this module does
//! what RFC 7845 leaves to the player, as FFmpeg (the Python engine's Opus
//! decoder) does:
//!
//! * the `OpusHead` channel mapping (families 0, 1 and 255) through libopus's
//!   multistream decoder, so 5.1 or 7.1 Opus decodes too, family 1 in the WAV
//!   channel order (L R C LFE ...), as FFmpeg gives it;
//! * the header's output gain (Q7.8 dB), applied by libopus (`OPUS_SET_GAIN`);
//! * pre-skip: the first `pre_skip` samples (48 kHz units) are dropped;
//! * end trimming: the last page's granule position says how many samples the
//!   stream holds, the rest of the last packet is encoder padding.
//!
//! Granule positions of the pages in between are not read: FFmpeg writes a
//! page's granule from timestamps, which after a transcode from Vorbis can run
//! a few hundred samples ahead of the packets the page ends (libsndfile calls
//! such a real file malformed; FFmpeg decodes it whole).
//!
//! The output rate is always 48 kHz, as FFmpeg and libopusfile decode; the
//! header's input rate is informative only.
//!
//! Not decoded here: chained streams (another Opus stream after the first
//! one's end): `unsupported_format`, for the fallback.

use super::file::io_error;
use super::sniff::Sniffed;
use super::source::OffsetFile;
use super::stream::{Opened, Packets, Step};
use crate::error::{AnalysisError, ErrorCode, Result};
use ogg::reading::{OggReadError, PacketReader};
use std::ffi::c_int;
use std::fs::File;
use std::io::{BufReader, ErrorKind};

/// The longest Opus packet: 120 ms.
const MAX_PACKET_MS: usize = 120;
const OPUS_RATE: u32 = 48_000;

/// The identification header (RFC 7845 section 5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusHead {
    pub channels: usize,
    pub pre_skip: u16,
    pub input_rate: u32,
    /// Q7.8 dB.
    pub output_gain: i16,
    pub family: u8,
    pub streams: u8,
    pub coupled: u8,
    pub mapping: Vec<u8>,
}

fn corrupt(stage: &'static str, why: impl Into<String>) -> AnalysisError {
    AnalysisError::new(ErrorCode::Corrupt, stage, why.into())
}

impl OpusHead {
    pub fn parse(p: &[u8]) -> Result<OpusHead> {
        if p.len() < 19 || &p[..8] != b"OpusHead" {
            return Err(corrupt("probe", "the first Ogg packet is not a valid OpusHead"));
        }
        if p[8] >> 4 != 0 {
            return Err(AnalysisError::new(
                ErrorCode::UnsupportedFormat,
                "probe",
                format!("Ogg Opus mapping version {} is not understood", p[8]),
            ));
        }
        let channels = p[9] as usize;
        if channels == 0 {
            return Err(corrupt("probe", "OpusHead declares 0 channels"));
        }
        let pre_skip = u16::from_le_bytes([p[10], p[11]]);
        let input_rate = u32::from_le_bytes([p[12], p[13], p[14], p[15]]);
        let output_gain = i16::from_le_bytes([p[16], p[17]]);
        let family = p[18];
        let (streams, coupled, mapping) = if family == 0 {
            if channels > 2 {
                return Err(corrupt("probe", format!("OpusHead mapping family 0 with {channels} channels")));
            }
            (1u8, (channels - 1) as u8, (0..channels as u8).collect::<Vec<u8>>())
        } else {
            if p.len() < 21 + channels {
                return Err(corrupt("probe", "OpusHead channel mapping table is cut short"));
            }
            let (streams, coupled) = (p[19], p[20]);
            if streams == 0 || coupled > streams || streams as usize + coupled as usize > 255 {
                return Err(corrupt("probe", format!("OpusHead declares {streams} streams, {coupled} coupled")));
            }
            let mapping = p[21..21 + channels].to_vec();
            let decoded = streams as usize + coupled as usize;
            if mapping.iter().any(|&m| m != 255 && m as usize >= decoded) {
                return Err(corrupt("probe", "OpusHead channel mapping names a stream that does not exist"));
            }
            (streams, coupled, mapping)
        };
        Ok(OpusHead { channels, pre_skip, input_rate, output_gain, family, streams, coupled, mapping })
    }

    /// The channel mapping in the output order: family 1 (the Vorbis order: L C R, then the
    /// surrounds, LFE last) reordered to the WAV order (L R C LFE, then the surrounds) that FFmpeg
    /// gives and the loudness weights assume (`features::loudness::channel_weights`); libopus puts
    /// output channel i where `mapping[i]` says, so reordering the table reorders the output.
    pub fn output_mapping(&self) -> Vec<u8> {
        // FFmpeg's ff_vorbis_channel_layout_offsets: output channel i is Vorbis channel ORDER[n][i]
        const ORDER: [&[usize]; 9] = [
            &[],
            &[0],
            &[0, 1],
            &[0, 2, 1],
            &[0, 1, 2, 3],
            &[0, 2, 1, 3, 4],
            &[0, 2, 1, 5, 3, 4],
            &[0, 2, 1, 6, 5, 3, 4],
            &[0, 2, 1, 7, 5, 6, 3, 4],
        ];
        match ORDER.get(self.channels) {
            Some(order) if self.family == 1 => order.iter().map(|&i| self.mapping[i]).collect(),
            _ => self.mapping.clone(),
        }
    }
}

/// libopus's multistream decoder (also serves mapping family 0).
struct MsDecoder(*mut opusic_sys::OpusMSDecoder);

impl MsDecoder {
    /// Always at 48 kHz, as FFmpeg and libopusfile decode (the header's input rate is informative only).
    fn new(head: &OpusHead) -> Result<MsDecoder> {
        let mut error: c_int = 0;
        let mapping = head.output_mapping();
        // SAFETY: the mapping table has `channels` entries, as libopus reads; the
        // pointer returned is owned by MsDecoder and destroyed once, in Drop.
        let ptr = unsafe {
            opusic_sys::opus_multistream_decoder_create(
                OPUS_RATE as i32,
                head.channels as c_int,
                head.streams as c_int,
                head.coupled as c_int,
                mapping.as_ptr(),
                &mut error,
            )
        };
        if ptr.is_null() || error != opusic_sys::OPUS_OK {
            if !ptr.is_null() {
                // SAFETY: created above, not used elsewhere
                unsafe { opusic_sys::opus_multistream_decoder_destroy(ptr) };
            }
            return Err(corrupt("probe", format!("libopus refuses the OpusHead (error {error})")));
        }
        let decoder = MsDecoder(ptr);
        if head.output_gain != 0 {
            // SAFETY: a valid decoder; OPUS_SET_GAIN takes one opus_int32 (Q7.8 dB)
            let rc = unsafe {
                opusic_sys::opus_multistream_decoder_ctl(
                    decoder.0,
                    opusic_sys::OPUS_SET_GAIN_REQUEST,
                    head.output_gain as c_int,
                )
            };
            if rc != opusic_sys::OPUS_OK {
                return Err(corrupt("probe", format!("libopus refuses the output gain {} (error {rc})", head.output_gain)));
            }
        }
        Ok(decoder)
    }

    /// Decode one packet into `pcm` (interleaved); frames per channel.
    fn decode(&mut self, packet: &[u8], pcm: &mut [f32], channels: usize) -> std::result::Result<usize, c_int> {
        let frame_size = (pcm.len() / channels) as c_int;
        // SAFETY: `pcm` holds frame_size * channels floats; libopus writes at most that.
        let n = unsafe {
            opusic_sys::opus_multistream_decode_float(
                self.0,
                packet.as_ptr(),
                packet.len() as i32,
                pcm.as_mut_ptr(),
                frame_size,
                0,
            )
        };
        if n < 0 {
            Err(n)
        } else {
            Ok(n as usize)
        }
    }
}

impl Drop for MsDecoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_multistream_decoder_create, destroyed only here
        unsafe { opusic_sys::opus_multistream_decoder_destroy(self.0) };
    }
}

pub struct OggOpus {
    reader: PacketReader<BufReader<OffsetFile>>,
    serial: u32,
    decoder: MsDecoder,
    channels: usize,
    /// Output samples (per channel) still to drop at the start.
    skip: u64,
    /// Samples per channel the decoder produced so far, dropped ones included.
    position: u64,
    pcm: Vec<f32>,
    ended: bool,
}

/// Another Ogg stream after the end of the first (a chained file): the fallback's.
fn chained() -> AnalysisError {
    AnalysisError::new(
        ErrorCode::UnsupportedFormat,
        "decode",
        "chained stream (another Ogg stream follows the first one's end)",
    )
}

fn ogg_error(stage: &'static str, e: OggReadError) -> AnalysisError {
    match e {
        OggReadError::ReadError(io) => io_error(stage, &io),
        other => corrupt(stage, format!("Ogg page damaged: {other}")),
    }
}

/// Open an Ogg Opus stream: the identification and comment headers.
pub fn open(file: File, size: u64, found: &Sniffed) -> Result<Opened> {
    let source = OffsetFile::new(file, found.audio_offset as u64, found.audio_end.min(size)).map_err(|e| io_error("probe", &e))?;
    let mut reader = PacketReader::new(BufReader::with_capacity(1 << 16, source));
    let first = reader
        .read_packet()
        .map_err(|e| ogg_error("probe", e))?
        .ok_or_else(|| corrupt("probe", "the Ogg stream holds no packet"))?;
    let head = OpusHead::parse(&first.data)?;
    let serial = first.stream_serial();
    // the comment header (OpusTags): the next packet of this stream, possibly over several pages
    loop {
        let packet = reader
            .read_packet()
            .map_err(|e| ogg_error("probe", e))?
            .ok_or_else(|| corrupt("probe", "the Ogg Opus stream ends before its comment header"))?;
        if packet.stream_serial() == serial {
            break;
        }
    }
    let decoder = MsDecoder::new(&head)?;
    let per_packet = OPUS_RATE as usize * MAX_PACKET_MS / 1000;
    let channels = head.channels;
    Ok(Opened {
        codec: "opus".to_string(),
        sample_rate: OPUS_RATE,
        channels,
        declared_duration_s: None,
        bits_per_sample: None,
        packets: Box::new(OggOpus {
            reader,
            serial,
            decoder,
            channels,
            skip: head.pre_skip as u64,
            position: 0,
            pcm: vec![0.0; per_packet * channels],
            ended: false,
        }),
    })
}

impl Packets for OggOpus {
    fn next(&mut self, buf: &mut Vec<f32>) -> Result<Step> {
        loop {
            let packet = match self.reader.read_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(Step::End),
                Err(OggReadError::ReadError(e)) if e.kind() == ErrorKind::UnexpectedEof => return Ok(Step::EndMidPacket),
                Err(OggReadError::InvalidData) if self.ended => return Err(chained()),
                Err(e) => return Err(ogg_error("decode", e)),
            };
            if packet.stream_serial() != self.serial {
                if packet.first_in_stream() && self.ended {
                    return Err(chained());
                }
                continue; // another multiplexed stream (a cover image, a video track)
            }
            if self.ended {
                return Err(corrupt("decode", "Ogg Opus packets after the end-of-stream page"));
            }
            let n = self
                .decoder
                .decode(&packet.data, &mut self.pcm, self.channels)
                .map_err(|code| corrupt("decode", format!("libopus cannot decode a packet (error {code})")))?;
            let start = self.position;
            self.position += n as u64;
            let mut end = n as u64;
            if packet.last_in_stream() {
                self.ended = true;
                // the granule position counts 48 kHz samples from the stream start, pre-skip included
                let total = packet.absgp_page();
                end = end.min(total.saturating_sub(start));
            }
            let begin = self.skip.min(end);
            self.skip -= begin.min(self.skip);
            let frames = (end - begin) as usize;
            if frames == 0 {
                continue; // all pre-skip or padding; after the end, read on: a chained stream must be noticed
            }
            buf.clear();
            buf.extend_from_slice(&self.pcm[begin as usize * self.channels..end as usize * self.channels]);
            return Ok(Step::Audio { frames, rate: OPUS_RATE, channels: self.channels });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(channels: u8, family: u8, extra: &[u8]) -> Vec<u8> {
        let mut p = b"OpusHead".to_vec();
        p.extend_from_slice(&[1, channels]);
        p.extend_from_slice(&312u16.to_le_bytes());
        p.extend_from_slice(&44100u32.to_le_bytes());
        p.extend_from_slice(&(-256i16).to_le_bytes());
        p.push(family);
        p.extend_from_slice(extra);
        p
    }

    #[test]
    fn parses_family_0_and_1() {
        let h = OpusHead::parse(&head(2, 0, &[])).unwrap();
        assert_eq!((h.channels, h.pre_skip, h.output_gain, h.streams, h.coupled), (2, 312, -256, 1, 1));
        assert_eq!(h.mapping, vec![0, 1]);
        assert_eq!(h.output_mapping(), vec![0, 1]);
        let h = OpusHead::parse(&head(6, 1, &[4, 2, 0, 4, 1, 2, 3, 5])).unwrap();
        assert_eq!((h.streams, h.coupled, h.mapping.len()), (4, 2, 6));
        // Vorbis order FL FC FR RL RR LFE out as FL FR FC LFE RL RR
        assert_eq!(h.output_mapping(), vec![0, 1, 4, 5, 2, 3]);
    }

    #[test]
    fn refuses_bad_heads_with_types() {
        assert_eq!(OpusHead::parse(b"OpusHead").unwrap_err().code, ErrorCode::Corrupt);
        assert_eq!(OpusHead::parse(&head(0, 0, &[])).unwrap_err().code, ErrorCode::Corrupt);
        assert_eq!(OpusHead::parse(&head(3, 0, &[])).unwrap_err().code, ErrorCode::Corrupt);
        assert_eq!(OpusHead::parse(&head(6, 1, &[4, 2, 0])).unwrap_err().code, ErrorCode::Corrupt);
        assert_eq!(OpusHead::parse(&head(2, 1, &[1, 1, 0, 9])).unwrap_err().code, ErrorCode::Corrupt);
        let mut v = head(2, 0, &[]);
        v[8] = 0x10;
        assert_eq!(OpusHead::parse(&v).unwrap_err().code, ErrorCode::UnsupportedFormat);
    }
}
