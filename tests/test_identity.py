"""content_id: retagging keeps the id, any audio change changes it (tags written by hand, no mutagen)."""

from __future__ import annotations

import struct

import numpy as np
import soundfile as sf

from tests.audio import id3v1_tag, id3v2_tag
from trackprint.pyengine.identity import content_id


def _signal(n=44100, seed=1):
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal((n, 2))).astype(np.float32)


def _write(path, data, fmt, subtype=None):
    sf.write(str(path), data, 44100, format=fmt, subtype=subtype)
    return path


def _id3v2(text: str) -> bytes:
    return id3v2_tag(text, padding=64)


_id3v1 = id3v1_tag


def _vorbis_comment(tags: dict[str, str]) -> bytes:
    vendor = b"handwritten"
    out = struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(tags))
    for k, v in tags.items():
        entry = f"{k}={v}".encode()
        out += struct.pack("<I", len(entry)) + entry
    return out


def _flac_retag(data: bytes, tags: dict[str, str], padding: int = 0) -> bytes:
    """Rewrite a FLAC file's metadata: keep STREAMINFO/SEEKTABLE, replace VORBIS_COMMENT, add PADDING."""
    assert data[:4] == b"fLaC"
    pos, blocks = 4, []
    while True:
        h = data[pos]
        length = int.from_bytes(data[pos + 1:pos + 4], "big")
        blocks.append((h & 0x7F, data[pos + 4:pos + 4 + length]))
        pos += 4 + length
        if h & 0x80:
            break
    frames = data[pos:]
    kept = [(t, b) for t, b in blocks if t not in (1, 4)]
    kept.append((4, _vorbis_comment(tags)))
    if padding:
        kept.append((1, b"\0" * padding))
    out = b"fLaC"
    for i, (t, body) in enumerate(kept):
        last = 0x80 if i == len(kept) - 1 else 0
        out += bytes([t | last]) + len(body).to_bytes(3, "big") + body
    return out + frames


def test_flac_retag_keeps_id_and_sample_change_changes_it(tmp_path):
    data = _signal()
    p = _write(tmp_path / "a.flac", data, "FLAC", "PCM_16")
    original = content_id(str(p))
    assert original.startswith("flac-")
    raw = p.read_bytes()
    q = tmp_path / "b.flac"
    q.write_bytes(_flac_retag(raw, {"TITLE": "One", "ARTIST": "Someone"}, padding=4096))
    assert content_id(str(q)) == original
    q.write_bytes(_flac_retag(raw, {"TITLE": "Two, much longer title" * 10}))
    assert content_id(str(q)) == original
    q.write_bytes(_id3v2("bad idea but common") + _flac_retag(raw, {"A": "b"}) + _id3v1("x"))
    assert content_id(str(q)) == original
    data2 = data.copy()
    data2[1000, 0] += 0.01
    r = _write(tmp_path / "c.flac", data2, "FLAC", "PCM_16")
    assert content_id(str(r)) != original


def test_mp3_like_id3_tags_stripped(tmp_path):
    payload = bytes(range(256)) * 200  # the "audio" bytes; the generic path does not parse frames
    p = tmp_path / "a.mp3"
    p.write_bytes(_id3v2("first") + payload)
    base = content_id(str(p))
    p.write_bytes(_id3v2("a different and longer title") + payload + _id3v1("t"))
    assert content_id(str(p)) == base
    p.write_bytes(payload)
    assert content_id(str(p)) == base
    changed = bytearray(payload)
    changed[5000] ^= 1
    p.write_bytes(_id3v2("first") + bytes(changed))
    assert content_id(str(p)) != base


def test_wav_only_fmt_and_data(tmp_path):
    data = _signal(22050)
    p = _write(tmp_path / "a.wav", data, "WAV", "PCM_16")
    base = content_id(str(p))
    raw = bytearray(p.read_bytes())
    # append a LIST/INFO chunk (what taggers do) and fix the RIFF size
    info = b"INFO" + b"INAM" + struct.pack("<I", 6) + b"Title\0"
    chunk = b"LIST" + struct.pack("<I", len(info)) + info
    raw += chunk
    raw[4:8] = struct.pack("<I", len(raw) - 8)
    q = tmp_path / "b.wav"
    q.write_bytes(bytes(raw))
    assert content_id(str(q)) == base
    data[10, 1] = 0.5
    assert content_id(str(_write(tmp_path / "c.wav", data, "WAV", "PCM_16"))) != base


def test_ogg_comment_packet_ignored(tmp_path):
    data = _signal(22050)
    p = _write(tmp_path / "a.ogg", data, "OGG", "VORBIS")
    base = content_id(str(p))
    assert base.startswith("ogg-")
    with sf.SoundFile(str(tmp_path / "b.ogg"), "w", 44100, 2, format="OGG", subtype="VORBIS") as f:
        f.title = "A title that makes the comment packet longer"
        f.write(data)
    # libvorbis encodes deterministically: same audio packets, different comment packet
    assert content_id(str(tmp_path / "b.ogg")) == base


def test_formats_never_collide(tmp_path):
    """The format is read from the content (the decoder's own sniffer) and prefixes the id."""
    data = _signal(4410)
    wav = content_id(str(_write(tmp_path / "x.wav", data, "WAV", "PCM_16")))
    aiff = content_id(str(_write(tmp_path / "x.aiff", data, "AIFF", "PCM_16")))
    assert wav.startswith("wav-") and aiff.startswith("aiff-") and wav != aiff


def test_the_id_does_not_depend_on_the_file_name(tmp_path):
    """Same bytes, same id: the extension never decides the format (a renamed file keeps its fingerprint)."""
    flac = _write(tmp_path / "x.flac", _signal(4410), "FLAC", "PCM_16")
    renamed = tmp_path / "x.mp3"
    renamed.write_bytes(flac.read_bytes())
    assert content_id(str(renamed)) == content_id(str(flac))
    junk = b"\x00" * 1000
    (tmp_path / "a.mp3").write_bytes(junk)
    (tmp_path / "a.aac").write_bytes(junk)
    assert content_id(str(tmp_path / "a.mp3")) == content_id(str(tmp_path / "a.aac"))


def test_flac_with_audio_md5_is_identified_without_reading_every_frame(tmp_path):
    """A large FLAC is keyed by its STREAMINFO MD5, frame length and edges: retag keeps the id, a cut changes it."""
    original = _write(tmp_path / "long.flac", _signal(n=44100 * 20), "FLAC", "PCM_16")
    data = original.read_bytes()
    assert any(data[8 + 18:8 + 34]), "libFLAC stores the MD5 of the decoded audio"
    retagged = tmp_path / "retagged.flac"
    retagged.write_bytes(_flac_retag(data, {"TITLE": "x" * 300}, padding=512))
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[:-5000])
    other = _write(tmp_path / "other.flac", _signal(n=44100 * 20, seed=2), "FLAC", "PCM_16")
    assert content_id(str(retagged)) == content_id(str(original))
    assert content_id(str(cut)) != content_id(str(original))
    assert content_id(str(other)) != content_id(str(original))


def test_a_tag_larger_than_the_sniffing_window_is_skipped(tmp_path):
    """A FLAC behind a 3 MiB ID3v2 tag (embedded cover art) is still FLAC: decoded, and keyed by its audio."""
    from tests.audio import id3v2_tag
    from trackprint.pyengine.engine import analyze_file

    plain = _write(tmp_path / "plain.flac", _signal(44100), "FLAC", "PCM_16")
    tagged = tmp_path / "tagged.flac"
    tagged.write_bytes(id3v2_tag("cover art", padding=3 << 20) + plain.read_bytes())
    assert content_id(str(tagged)) == content_id(str(plain))
    out = analyze_file(str(tagged))
    assert out.decode.container == "flac"
    assert out.fingerprint == analyze_file(str(plain)).fingerprint


def test_a_wav_header_followed_by_gigabytes_of_zeros_is_hashed_at_once(tmp_path):
    """A preallocated partial download: a RIFF header, then zeros. The chunk walk stops at the first
    non-chunk instead of stepping through the zeros 8 bytes at a time."""
    import time

    path = tmp_path / "partial.wav"
    header = _write(tmp_path / "h.wav", _signal(441), "WAV", "PCM_16").read_bytes()[:44]
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(44 + (2 << 30))  # sparse: 2 GiB of zeros without using the disk
    first = content_id(str(path), deadline=time.monotonic() + 120)  # it used to take many minutes
    assert first.startswith("wav-") and first == content_id(str(path))


def test_hashing_stops_at_the_deadline(tmp_path):
    import pytest

    from trackprint.pyengine.identity import IdentityTimeout

    path = tmp_path / "big.mp3"
    with open(path, "wb") as f:
        f.truncate(64 << 20)
    with pytest.raises(IdentityTimeout):
        content_id(str(path), deadline=0.0)  # long past
