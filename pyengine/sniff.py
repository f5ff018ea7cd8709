"""Recognise an audio container by its first bytes, never by its file name.

Pure functions over bytes: the decoders only ever see files that one of these
recognised, and anything else is ``unsupported_format`` with the bytes it
started with. Also reads the duration a container *declares*, so decoding
short of it can be reported as ``truncated`` instead of fingerprinting half a
song.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import BinaryIO

HEAD_BYTES = 1 << 16  # what is read after the leading tags: every header the sniffers look at fits

_MPEG_BITRATES = {  # (version_bits, layer_bits) -> kbps table index 0..15
    (3, 1): [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0],  # MPEG1 L3
    (3, 2): [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 0],  # MPEG1 L2
    (3, 3): [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448, 0],  # MPEG1 L1
}
_MPEG2_L3 = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0]
_MPEG_RATES = {3: [44100, 48000, 32000], 2: [22050, 24000, 16000], 0: [11025, 12000, 8000]}


@dataclass(frozen=True)
class Sniffed:
    container: str  # flac, wav, aiff, ogg, mp3, mp4, aac, wavpack, ape, caf, w64
    audio_offset: int = 0  # bytes of ID3v2 tag in front of the stream
    codec: str | None = None  # when the header already says (ogg: vorbis/opus/flac)


def id3v2_size(head: bytes) -> int:
    """Total size of an ID3v2 tag at the start of ``head`` (0 when there is none)."""
    if len(head) < 10 or head[:3] != b"ID3" or head[3] == 0xFF or head[4] == 0xFF:
        return 0
    size_bytes = head[6:10]
    if any(b & 0x80 for b in size_bytes):
        return 0
    size = (size_bytes[0] << 21) | (size_bytes[1] << 14) | (size_bytes[2] << 7) | size_bytes[3]
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer


def leading_id3v2_size(f: BinaryIO, size: int) -> int:
    """Bytes of ID3v2 tags at the start of a file, read from the file itself.

    Several tags can be stacked, and a tag can be megabytes long (embedded
    cover art), so this follows the tag headers instead of looking inside a
    fixed window. Used by decoding and by the content id alike.
    """
    pos = 0
    while pos + 10 <= size:
        f.seek(pos)
        tag = id3v2_size(f.read(10))
        if tag == 0:
            break
        pos += tag
    return min(pos, size)


def mpeg_frame(head: bytes, pos: int) -> tuple[int, int, int] | None:
    """(frame_length, sample_rate, samples_per_frame) of a valid MPEG audio frame header at ``pos``."""
    if pos + 4 > len(head):
        return None
    b1, b2, b3 = head[pos + 1], head[pos + 2], head[pos + 3]
    if head[pos] != 0xFF or (b1 & 0xE0) != 0xE0:
        return None
    version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
    bitrate_index, rate_index, padding = b2 >> 4, (b2 >> 2) & 3, (b2 >> 1) & 1
    if version == 1 or layer == 0 or bitrate_index in (0, 15) or rate_index == 3 or (b3 & 3) == 2:
        return None
    rate = _MPEG_RATES[version][rate_index]
    if version == 3:
        kbps = _MPEG_BITRATES[(3, layer)][bitrate_index]
    else:
        kbps = _MPEG2_L3[bitrate_index] if layer in (1, 2) else [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256, 0][bitrate_index]
    if layer == 3:  # layer I
        return (12 * kbps * 1000 // rate + padding) * 4, rate, 384
    spf = 1152 if (layer == 2 or version == 3) else 576
    return spf // 8 * kbps * 1000 // rate + padding, rate, spf


def looks_like_mpeg(head: bytes, pos: int) -> bool:
    """Two consecutive valid MPEG frame headers (one alone is too easy to hit by chance)."""
    first = mpeg_frame(head, pos)
    if first is None:
        return False
    nxt = pos + first[0]
    if nxt + 4 > len(head):
        return first[0] > 0 and nxt <= len(head) + 4  # a one-frame file: accept what we can see
    return mpeg_frame(head, nxt) is not None


def sniff_file(f: BinaryIO, size: int) -> tuple[Sniffed | None, bytes]:
    """The container of an open file, and the first :data:`HEAD_BYTES` of its audio (after any ID3v2 tags)."""
    offset = leading_id3v2_size(f, size)
    f.seek(offset)
    body = f.read(HEAD_BYTES)
    f.seek(0)
    return sniff_audio(body, offset), body


def sniff(head: bytes) -> Sniffed | None:
    """The container of a file starting with ``head`` (at least 64 KiB when the file has it)."""
    offset = id3v2_size(head)
    return sniff_audio(head[offset:], offset)


def sniff_audio(body: bytes, offset: int) -> Sniffed | None:
    """The container of audio starting with ``body``, found ``offset`` bytes into the file (after its tags)."""
    if body[:4] == b"fLaC":
        return Sniffed("flac", offset, "flac")
    if body[:4] in (b"RIFF", b"RIFX") and body[8:12] == b"WAVE" or body[:4] == b"RF64":
        return Sniffed("wav", offset)
    if body[:4] == b"FORM" and body[8:12] in (b"AIFF", b"AIFC"):
        return Sniffed("aiff", offset)
    if body[:4] == b"riff" and body[4:8] == bytes.fromhex("2e91cf11"):  # Sony Wave64: GUID 66666972-912e-11cf-...
        return Sniffed("w64", offset)
    if body[:4] == b"caff":
        return Sniffed("caf", offset)
    if body[:4] == b"OggS":
        packet = body[28:36]
        codec = "vorbis" if packet[:7] == b"\x01vorbis" else "opus" if packet[:8] == b"OpusHead" else "flac" if body[29:33] == b"FLAC" else None
        return Sniffed("ogg", offset, codec)
    if body[4:8] == b"ftyp":
        return Sniffed("mp4", offset)
    if body[:4] == b"wvpk":
        return Sniffed("wavpack", offset, "wavpack")
    if body[:4] == b"MAC ":
        return Sniffed("ape", offset, "ape")
    if len(body) >= 2 and body[0] == 0xFF and (body[1] & 0xF6) == 0xF0:
        return Sniffed("aac", offset, "aac")  # ADTS
    if looks_like_mpeg(body, 0):
        return Sniffed("mp3", offset, "mp3")
    if offset:  # an ID3 tag, then MPEG frames after some junk/padding
        if mpeg_first_frame(body, 4096) is not None:
            return Sniffed("mp3", offset, "mp3")
    return None


def mpeg_first_frame(body: bytes, limit: int = 8192) -> int | None:
    """Where the first of two consecutive valid MPEG frame headers starts in ``body`` (searched in
    its first ``limit`` bytes: junk or padding some taggers leave after an ID3v2 tag), or None."""
    return next((pos for pos in range(0, min(len(body), limit)) if looks_like_mpeg(body, pos)), None)


def caf_format(body: bytes) -> str | None:
    """The format id of a CAF file's ``desc`` chunk (``lpcm``, ``alac``, ``aac ``...), None when
    ``body`` does not start with one."""
    if len(body) < 32 or body[:4] != b"caff" or body[8:12] != b"desc":
        return None
    return body[28:32].decode("latin-1")


# -- declared durations ---------------------------------------------------------------
def flac_metadata_end(head: bytes) -> int | None:
    """Where a FLAC stream's metadata blocks end (its first frame starts), when they fit in ``head``."""
    pos = 4
    while pos + 4 <= len(head):
        last = head[pos] & 0x80
        pos += 4 + int.from_bytes(head[pos + 1:pos + 4], "big")
        if last:
            return pos
    return None


def flac_declared_frames(head: bytes, offset: int) -> int | None:
    """Total samples per channel from STREAMINFO (None when the encoder left it 0 = unknown)."""
    info = head[offset + 8: offset + 8 + 34]
    if len(info) < 18:
        return None
    total = ((info[13] & 0x0F) << 32) | struct.unpack(">I", info[14:18])[0]
    return total or None


def wav_declared_frames(head: bytes, offset: int) -> int | None:
    """data-chunk bytes / block align, from the RIFF header (None for streamed or RF64 files)."""
    body = head[offset:]
    if body[:4] != b"RIFF":
        return None
    pos, block_align = 12, None
    while pos + 8 <= len(body):
        chunk, size = body[pos:pos + 4], struct.unpack("<I", body[pos + 4:pos + 8])[0]
        if chunk == b"fmt " and pos + 22 <= len(body):
            block_align = struct.unpack("<H", body[pos + 20:pos + 22])[0]
        if chunk == b"data":
            if not block_align or size in (0, 0xFFFFFFFF):
                return None
            return size // block_align
        pos += 8 + size + (size & 1)
    return None


def aiff_declared_frames(head: bytes, offset: int) -> int | None:
    """numSampleFrames of the COMM chunk."""
    body = head[offset:]
    pos = 12
    while pos + 8 <= len(body):
        chunk, size = body[pos:pos + 4], struct.unpack(">I", body[pos + 4:pos + 8])[0]
        if chunk == b"COMM" and pos + 14 <= len(body):
            return struct.unpack(">I", body[pos + 10:pos + 14])[0] or None
        pos += 8 + size + (size & 1)
    return None


def mp3_declared_seconds(head: bytes, offset: int) -> float | None:
    """Frames count of a Xing/Info or VBRI header times samples per frame (None when absent)."""
    body = head[offset:]
    pos = mpeg_first_frame(body)
    if pos is None:
        return None
    _, rate, spf = mpeg_frame(body, pos)
    frame = body[pos:pos + 200]
    for tag in (b"Xing", b"Info"):
        at = frame.find(tag)
        if at >= 0 and at + 12 <= len(frame):
            flags = struct.unpack(">I", frame[at + 4:at + 8])[0]
            if flags & 1:
                return struct.unpack(">I", frame[at + 8:at + 12])[0] * spf / rate
    at = frame.find(b"VBRI")
    if at >= 0 and at + 18 <= len(frame):
        return struct.unpack(">I", frame[at + 14:at + 18])[0] * spf / rate
    return None


def audio_end(f: BinaryIO, start: int, end: int) -> int:
    """Where the audio of a file ends: before the ID3v1 (``TAG``, 128 bytes), APEv2 (``APETAGEX``
    footer, header included when its flags say so) and Lyrics3v2 tags in front of ``end``, in any
    order and of any size. Only the tags' footers are read: the tags are skipped by seeking, so a
    many-MiB APEv2 cover costs three small reads. ``start`` is where the audio begins (no tag is
    taken from before it)."""
    while end > start:
        if end - start >= 128:
            f.seek(end - 128)
            if f.read(3) == b"TAG":
                end -= 128
                continue
        if end - start >= 32:
            f.seek(end - 32)
            footer = f.read(32)
            if len(footer) == 32 and footer[:8] == b"APETAGEX":
                size = struct.unpack("<I", footer[12:16])[0]  # items + footer, header excluded
                flags = struct.unpack("<I", footer[20:24])[0]  # bit 31: a header precedes the items
                total = size + (32 if flags & 0x80000000 else 0)
                if 0 < total <= end - start:
                    end -= total
                    continue
        if end - start >= 15:
            f.seek(end - 15)
            lyrics = f.read(15)
            if lyrics[6:] == b"LYRICS200" and lyrics[:6].isdigit():
                total = int(lyrics[:6]) + 15
                if 15 < total <= end - start:
                    end -= total
                    continue
        break
    return end


def trailing_tags_start(tail: bytes) -> int:
    """Where ID3v1, APEv2 and Lyrics3v2 tags at the end of ``tail`` begin (``len(tail)`` when there
    are none); tags that do not fit in ``tail`` are left. :func:`audio_end` over bytes in memory."""
    return audio_end(io.BytesIO(tail), 0, len(tail))


def ogg_ends_cleanly(tail: bytes) -> bool:
    """True when the last Ogg page (before any trailing tags) is complete and carries the end-of-stream flag."""
    tail = tail[:trailing_tags_start(tail)]
    at = tail.rfind(b"OggS")
    if at < 0 or at + 27 > len(tail):
        return False
    segments = tail[at + 26]
    if at + 27 + segments > len(tail):
        return False
    body = sum(tail[at + 27: at + 27 + segments])
    complete = at + 27 + segments + body == len(tail)
    return complete and bool(tail[at + 5] & 0x04)


def ogg_tail_state(tail: bytes) -> bool | None:
    """The end of an Ogg stream as its last 64 KiB show it: True a complete end-of-stream page at
    the very end, False a last page that runs past the end of the file or ends it without the
    end-of-stream flag (the stream was cut), None bytes after the last complete page, or no page
    at all (what is there is not Ogg: damage, not a cut)."""
    tail = tail[:trailing_tags_start(tail)]
    at = tail.rfind(b"OggS")
    if at < 0:
        return None
    if at + 27 > len(tail) or at + 27 + tail[at + 26] > len(tail):
        return False
    segments = tail[at + 26]
    end = at + 27 + segments + sum(tail[at + 27:at + 27 + segments])
    if end > len(tail):
        return False
    return bool(tail[at + 5] & 0x04) if end == len(tail) else None


def ogg_last_granule(tail: bytes) -> int | None:
    """The granule position of the last Ogg page when ``tail`` ends with a complete end-of-stream
    page (Vorbis, FLAC: samples per channel; Opus: 48 kHz samples, pre-skip included)."""
    if not ogg_ends_cleanly(tail):
        return None
    tail = tail[:trailing_tags_start(tail)]
    at = tail.rfind(b"OggS")
    granule = struct.unpack("<q", tail[at + 6:at + 14])[0]
    return granule if granule >= 0 else None


def vorbis_channels(head: bytes) -> int | None:
    """The channel count in an Ogg Vorbis stream's identification header (in the first page of ``head``)."""
    at = head[:300].find(b"\x01vorbis")
    return head[at + 11] if at >= 0 and at + 12 <= len(head) else None


def opus_pre_skip(head: bytes) -> int | None:
    """The pre-skip of an Ogg Opus stream's ``OpusHead`` (in the first page of ``head``)."""
    at = head[:300].find(b"OpusHead")
    return struct.unpack("<H", head[at + 10:at + 12])[0] if at >= 0 and at + 12 <= len(head) else None


# -- cut or damaged: the container's declared byte length --------------------------------
EXTENT_WHOLE = "whole"  # the structure's declared end lies inside the file: it was not cut
EXTENT_UNKNOWN = "unknown"  # no declared byte length (FLAC, ADTS, W64, APE before 3.98), or unreadable structure


def byte_extent(container: str, length: int, ogg_tail: bool | None, read_at) -> str | int:
    """Whether the audio's ``length`` bytes reach the end the container's own structure declares
    (``docs/fingerprint-spec.md``, "Outcomes": truncated vs corrupt): the declared byte count
    (an int, more than ``length``) when the file was cut, else :data:`EXTENT_WHOLE` or
    :data:`EXTENT_UNKNOWN`. ``read_at(pos, n)`` reads at ``pos`` of the audio span. RIFF/FORM
    sizes (WAV, AIFF), CAF chunk sizes, MP4 top-level box sizes, WavPack block sizes, the MP3
    Xing/Info/VBRI byte count, the byte counts of APE's descriptor (3.98 and later); Ogg: ``ogg_tail``
    (:func:`ogg_tail_state`). The Rust engine's
    ``sniff::byte_extent`` is the same function."""

    def judge(declared: int):
        return declared if declared > length else EXTENT_WHOLE

    def walk(pos: int, hdr: int, size_of):
        for _ in range(1_000_000):
            if pos >= length:
                return EXTENT_WHOLE if pos == length else pos
            h = read_at(pos, hdr)
            if len(h) < hdr:
                return pos + hdr
            size = size_of(h)
            if size is None:
                return EXTENT_UNKNOWN
            if size == -1:  # to the end of the file
                return EXTENT_WHOLE
            pos += size
        return EXTENT_UNKNOWN

    if container in ("wav", "aiff"):
        h = read_at(0, 8)
        if len(h) < 8 or h[:4] == b"RF64":
            return EXTENT_UNKNOWN
        size = struct.unpack(">I" if h[:4] in (b"FORM", b"RIFX") else "<I", h[4:8])[0]
        return EXTENT_UNKNOWN if size in (0, 0xFFFFFFFF) else judge(8 + size)
    if container == "caf":
        def caf(h):
            size = struct.unpack(">q", h[4:12])[0]
            if size == -1 and h[:4] == b"data":
                return -1
            return 12 + size if size >= 0 else None
        return walk(8, 12, caf)
    if container == "mp4":
        def box(h):
            size = struct.unpack(">I", h[:4])[0]
            if size == 0:
                return -1
            return size if size >= 8 else None  # 1: a 64-bit size (files over 4 GiB): not judged
        return walk(0, 8, box)
    if container == "wavpack":
        return walk(0, 8, lambda h: struct.unpack("<I", h[4:8])[0] + 8 if h[:4] == b"wvpk" else None)
    if container == "ape":  # APE_DESCRIPTOR: "MAC ", version, padding, then seven byte counts
        d = read_at(0, 36)
        if len(d) < 36 or d[:4] != b"MAC " or struct.unpack("<H", d[4:6])[0] < 3980:
            return EXTENT_UNKNOWN  # older files have no descriptor
        descriptor, header, seek_table, wav_header, frames_low, frames_high, wav_tail = struct.unpack("<7I", d[8:36])
        return judge(descriptor + header + seek_table + wav_header + (frames_high << 32 | frames_low) + wav_tail)
    if container == "mp3":  # the byte count of a Xing/Info (flag 2) or VBRI header counts from the first frame
        head = read_at(0, 4096 + 200)
        first = next((p for p in range(min(len(head), 4096)) if looks_like_mpeg(head, p)), None)
        if first is None:
            return EXTENT_UNKNOWN
        frame = head[first:first + 200]
        for tag in (b"Xing", b"Info"):
            at = frame.find(tag)
            if at >= 0:
                flags = struct.unpack(">I", frame[at + 4:at + 8])[0] if at + 8 <= len(frame) else 0
                pos = at + 8 + (4 if flags & 1 else 0)
                if flags & 2 and pos + 4 <= len(frame):
                    return judge(first + struct.unpack(">I", frame[pos:pos + 4])[0])
                return EXTENT_UNKNOWN
        at = frame.find(b"VBRI")
        if at >= 0 and at + 14 <= len(frame):
            return judge(first + struct.unpack(">I", frame[at + 10:at + 14])[0])
        return EXTENT_UNKNOWN
    if container == "ogg":
        return {True: EXTENT_WHOLE, False: length + 1, None: EXTENT_UNKNOWN}[ogg_tail]
    return EXTENT_UNKNOWN
