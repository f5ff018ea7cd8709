"""Audio-content identity: a hash of the audio payload only.

``content_id(path)`` is stable across retagging (any metadata change) and
changes with any change of the audio bytes. The analyzer uses it as the key
of the ``fingerprints_by_content`` KV bucket, so a moved or retagged file
reuses its fingerprint instead of being analysed again.

What is hashed, per container (the format name is hashed first and is the
id's prefix, so ids of different formats never collide):

- FLAC: an optional leading ID3v2 tag is skipped; of the metadata blocks only
  STREAMINFO (sample rate, channels, bits, total samples, audio MD5) is
  hashed; VORBIS_COMMENT, PICTURE, PADDING, SEEKTABLE, APPLICATION and
  CUESHEET are skipped; then, when STREAMINFO carries the MD5 of the decoded
  audio, the frames' length and their first and last 64 KiB (a re-encode
  changes the MD5, a cut changes the length and the tail), else every byte of
  the frames (trailing ID3v1/APEv2 stripped).
- WAV/RF64 and AIFF/AIFC: the ``fmt ``/``COMM`` chunk and the ``data``/
  ``SSND`` chunk payloads; LIST/INFO/id3/other chunks are skipped.

Every format: ID3v2 tags in front (stacked, of any size: skipped by seeking
from header to header) and ID3v1, APEv2 and Lyrics3v2 tags behind the audio
are never hashed, so adding, growing or removing them keeps the id.
- MP4/M4A: the payload of every top-level ``mdat`` atom (moov/udta tags are
  skipped; ``stco`` offsets change on retag, so the sample tables are not
  hashed).
- Ogg (Vorbis, Opus, FLAC, Speex...): packets are reassembled from the page
  segments (so page sequence numbers, CRCs and page boundaries, which change
  on retag, do not count); the comment packet of each logical stream
  (packet 1 for Vorbis/Opus/Speex/others, VORBIS_COMMENT/PICTURE/PADDING
  metadata packets for Ogg FLAC) is skipped. Limit: a muxer that rewrites
  the audio packets themselves (e.g. re-encodes) changes the id, as it should.
- Anything else (MP3, AAC, WavPack, APE...): the whole file minus ID3v2
  tags at the start and ID3v1 (``TAG``, 128 bytes), Lyrics3v2 and APEv2 tags
  at the end.

The format is recognised by content with :mod:`trackprint.pyengine.sniff`, the
sniffer decoding uses (never by the file name; unrecognised content is
``raw``), so a renamed file keeps its id. Files are read in 1 MiB chunks:
memory stays bounded whatever the file size.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from typing import BinaryIO, Callable

from trackprint.pyengine.sniff import leading_id3v2_size, sniff_file

CHUNK = 1 << 20
DIGEST_SIZE = 20


class IdentityTimeout(TimeoutError):
    """Hashing did not finish before the deadline (a huge or pathological file)."""


class _DeadlineReader:
    """The file, with every read checking the deadline: no structure, however odd, can hold a worker."""

    def __init__(self, f: BinaryIO, deadline: float | None):
        self._f, self._deadline = f, deadline

    def read(self, n: int = -1) -> bytes:
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise IdentityTimeout("the content id was not computed before the deadline")
        return self._f.read(n)

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._f.seek(pos, whence)

    def tell(self) -> int:
        return self._f.tell()


class _Hasher:
    def __init__(self, fmt: str):
        self.fmt = fmt
        self.h = hashlib.blake2b(digest_size=DIGEST_SIZE, person=b"trackprint-cid1")
        self.h.update(fmt.encode() + b"\0")

    def update(self, data: bytes) -> None:
        self.h.update(data)

    def hash_range(self, f: BinaryIO, start: int, end: int) -> None:
        f.seek(start)
        left = end - start
        while left > 0:
            data = f.read(min(CHUNK, left))
            if not data:
                raise EOFError("file shorter than its structure says")
            self.h.update(data)
            left -= len(data)

    def result(self) -> str:
        return f"{self.fmt}-{self.h.hexdigest()}"


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise EOFError
    return data


def _strip_trailing_tags(f: BinaryIO, start: int, end: int) -> int:
    """New end after ID3v1, Lyrics3v2 and APEv2 tags at the end of the file (in any order)."""
    changed = True
    while changed and end > start:
        changed = False
        if end - start >= 128:
            f.seek(end - 128)
            if f.read(3) == b"TAG":
                end -= 128
                changed = True
                continue
        if end - start >= 32:
            f.seek(end - 32)
            footer = f.read(32)
            if footer[:8] == b"APETAGEX":
                size = struct.unpack("<I", footer[12:16])[0]  # footer + items, header excluded
                flags = struct.unpack("<I", footer[20:24])[0]  # bit 31: a header precedes the items
                total = size + (32 if flags & 0x80000000 else 0)
                if 0 < total <= end - start:
                    end -= total
                    changed = True
                    continue
        if end - start >= 15:
            f.seek(end - 15)
            tail = f.read(15)
            if tail[6:] == b"LYRICS200":
                try:
                    total = int(tail[:6]) + 15
                except ValueError:
                    total = 0
                if 0 < total <= end - start:
                    end -= total
                    changed = True
    return end


FLAC_EDGE = 1 << 16


def _flac(f: BinaryIO, size: int) -> str:
    h = _Hasher("flac")
    md5 = b""
    pos = leading_id3v2_size(f, size)
    end = _strip_trailing_tags(f, pos, size)
    f.seek(pos)
    if _read_exact(f, 4) != b"fLaC":
        raise ValueError("not a FLAC stream")
    pos += 4
    while True:
        f.seek(pos)
        header = _read_exact(f, 4)
        last = header[0] & 0x80
        btype = header[0] & 0x7F
        length = int.from_bytes(header[1:4], "big")
        if btype == 0:  # STREAMINFO: stream parameters and the MD5 of the decoded audio
            h.update(header[:1])
            h.hash_range(f, pos + 4, pos + 4 + length)
            f.seek(pos + 4 + 18)
            md5 = f.read(16)
        pos += 4 + length
        if last or pos >= end:
            break
    start = min(pos, end)
    if len(md5) == 16 and any(md5) and end - start > 2 * FLAC_EDGE:
        # The encoder stored the MD5 of the decoded audio: that, the frames' length and their first and
        # last 64 KiB identify the audio without reading it all (a cut or re-encoded file differs).
        h.update(b"md5-frames" + (end - start).to_bytes(8, "big"))
        h.hash_range(f, start, start + FLAC_EDGE)
        h.hash_range(f, end - FLAC_EDGE, end)
    else:
        h.hash_range(f, start, end)
    return h.result()


def _riff(f: BinaryIO, size: int) -> str:
    start = leading_id3v2_size(f, size)
    size = _strip_trailing_tags(f, start, size)
    f.seek(start)
    head = f.read(12)
    h = _Hasher("wav")
    big_endian = head[:4] in (b"FORM", b"RIFX")
    if big_endian:
        h = _Hasher("aiff")
    keep = {b"fmt ", b"data", b"COMM", b"SSND"}
    pos = start + 12
    while pos + 8 <= size:
        f.seek(pos)
        chunk_head = f.read(8)
        if len(chunk_head) < 8:
            break
        cid = chunk_head[:4]
        if not all(32 <= b < 127 for b in cid):
            break  # not a chunk id (zeros of a preallocated download, garbage): the structure ends here
        csize = struct.unpack(">I" if big_endian else "<I", chunk_head[4:])[0]
        if head[:4] == b"RF64" and cid == b"data" and csize == 0xFFFFFFFF:
            csize = size - pos - 8
        body_end = min(pos + 8 + csize, size)
        if cid in keep:
            h.update(cid)
            h.hash_range(f, pos + 8, body_end)
        pos = pos + 8 + csize + (csize & 1)
    return h.result()


def _mp4(f: BinaryIO, size: int) -> str:
    h = _Hasher("mp4")
    start = pos = leading_id3v2_size(f, size)
    size = _strip_trailing_tags(f, start, size)
    found = False
    while pos + 8 <= size:
        f.seek(pos)
        atom = f.read(8)
        asize = struct.unpack(">I", atom[:4])[0]
        atype = atom[4:8]
        header = 8
        if asize == 1:
            asize = struct.unpack(">Q", _read_exact(f, 8))[0]
            header = 16
        elif asize == 0:
            asize = size - pos
        if asize < header:
            raise ValueError("broken MP4 atom")
        if atype == b"mdat":
            found = True
            h.hash_range(f, pos + header, min(pos + asize, size))
        pos += asize
    if not found:
        raise ValueError("no mdat atom")
    return h.result()


def _ogg(f: BinaryIO, size: int) -> str:
    h = _Hasher("ogg")
    streams: dict[int, dict] = {}  # serial -> {"index", "skip", "codec", "len"}
    pos = leading_id3v2_size(f, size)
    size = _strip_trailing_tags(f, pos, size)
    while pos + 27 <= size:
        f.seek(pos)
        page = f.read(27)
        if page[:4] != b"OggS":
            raise ValueError(f"lost Ogg page sync at byte {pos}")
        serial = struct.unpack("<I", page[14:18])[0]
        nsegs = page[26]
        table = _read_exact(f, nsegs)
        state = streams.setdefault(serial, {"index": 0, "skip": None, "codec": None, "len": 0})
        for seg_len in table:
            data = _read_exact(f, seg_len) if seg_len else b""
            if state["skip"] is None:  # first segment of a packet: decide
                idx = state["index"]
                if idx == 0:
                    if data.startswith(b"\x7fFLAC"):
                        state["codec"] = "flac"
                    state["skip"] = False
                elif state["codec"] == "flac":
                    state["skip"] = bool(data) and (data[0] & 0x7F) in (1, 4, 6)
                else:
                    state["skip"] = idx == 1
            if not state["skip"]:
                h.update(data)
                state["len"] += seg_len
            if seg_len < 255:  # end of packet
                if not state["skip"]:
                    h.update(b"\xff" + state["len"].to_bytes(8, "little"))
                state["index"] += 1
                state["skip"] = None
                state["len"] = 0
        pos = f.tell()
    return h.result()


def _generic(f: BinaryIO, size: int, fmt: str) -> str:
    h = _Hasher(fmt)
    start = leading_id3v2_size(f, size)
    end = _strip_trailing_tags(f, start, size)
    h.hash_range(f, start, end)
    return h.result()


def detect_format(f: BinaryIO, size: int) -> str:
    """The container by content (the one sniffer decoding uses too); ``raw`` when it is not recognised."""
    found, _ = sniff_file(f, size)
    return found.container if found is not None else "raw"


def container_of(cid: str) -> str:
    """The container a content id was found in (its ``<format>`` prefix; ``flac_broken`` and the like
    for a file whose structure did not parse)."""
    return cid.split("-", 1)[0]


def content_id(path: str, deadline: float | None = None) -> str:
    """The audio-content id of ``path`` (``<format>-<40 hex>``).

    Raises ``OSError`` when the file cannot be read, :class:`IdentityTimeout`
    when ``deadline`` (a ``time.monotonic()`` value) passes first. A file
    whose structure does not parse falls back to the generic (whole-file minus
    tags) hash, so a broken file still has a stable id.
    """
    with open(path, "rb") as raw:
        f = _DeadlineReader(raw, deadline)
        size = os.fstat(raw.fileno()).st_size
        fmt = detect_format(f, size)
        parser: Callable[[BinaryIO, int], str] | None = {
            "flac": _flac,
            "ogg": _ogg,
            "mp4": _mp4,
        }.get(fmt)
        try:
            if parser is not None:
                return parser(f, size)
            if fmt in ("wav", "aiff"):
                return _riff(f, size)
        except (ValueError, EOFError, struct.error):
            return _generic(f, size, fmt + "_broken")
        return _generic(f, size, fmt)
