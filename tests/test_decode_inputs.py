"""Real files of every kind we meet, good and bad, through analyze_file and the CLI.

Each input must give either a valid fingerprint or the right typed error code,
through the engine and through ``trackprint analyze --json``, and never a
traceback. Inputs are written once per session into a temporary directory.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from trackprint.pyengine.engine import analyze_file
from trackprint.pyengine.features import fingerprint_of
from tests.audio import (GOLDEN, SR, assert_valid, id3v1_tag, id3v2_tag, multichannel, music_like, ogg_crc, sine, stereo,
                         write_audio)
from tests.fixtures_rust import rust_server_binary
from tests.procs import run_cli
from trackprint.errors import AnalysisError

DURATION_S = 3.0


@dataclass(frozen=True)
class Case:
    """``code`` is the expected error code, or None for a fingerprint (then ``codec``/``container``)."""

    name: str
    code: str | None
    codec: str | None = None
    container: str | None = None


CASES = [
    Case("empty.flac", "empty_file"),
    Case("x.flac", "not_a_file"),  # a directory
    Case("notes.flac", "unsupported_format"),  # a text file
    Case("random.flac", "unsupported_format"),
    Case("missing.flac", "not_found"),
    Case("really_mp3.flac", None, "mp3", "mp3"),
    Case("really_flac.mp3", None, "flac", "flac"),
    Case("truncated.flac", "truncated"),  # cut at 50 % of its bytes
    Case("truncated.wav", "truncated"),
    Case("header_only.wav", "truncated"),  # a header declaring 3 s, then nothing
    Case("no_frames.wav", "too_short"),  # a valid header declaring 0 frames
    Case("truncated.ogg", "truncated"),  # Vorbis
    Case("truncated.opus", "truncated"),
    Case("truncated.mp3", "truncated"),  # Xing header declares more frames
    Case("garbled.flac", "corrupt"),  # 300 bytes scrambled mid-file, full length
    Case("nan.wav", "corrupt"),  # a float WAV with NaN and inf samples
    Case("tagged.flac", None, "flac", "flac"),  # ID3v2 in front of fLaC
    Case("Björk – 東京.flac", None, "flac", "flac"),
    Case("rate_8k.flac", None, "flac", "flac"),
    Case("rate_192k.flac", None, "flac", "flac"),
    Case("mono.flac", None, "flac", "flac"),
    Case("six.flac", None, "flac", "flac"),
    Case("six.wav", None, "pcm_s16", "wav"),
    Case("pcm16.wav", None, "pcm_s16", "wav"),
    Case("pcm24.wav", None, "pcm_s24", "wav"),
    Case("pcm32.wav", None, "pcm_s32", "wav"),
    Case("float.wav", None, "pcm_f32", "wav"),
    Case("pcm16.flac", None, "flac", "flac"),
    Case("pcm24.flac", None, "flac", "flac"),
    Case("aac.m4a", None, "aac", "mp4"),
    Case("alac.m4a", None, "alac", "mp4"),
    Case("vorbis.ogg", None, "vorbis", "ogg"),
    Case("opus.opus", None, "opus", "ogg"),
    Case("mp3.mp3", None, "mp3", "mp3"),
    # what libsndfile refuses goes to FFmpeg (PyAV), chosen by the sniffed container and codec
    Case("alac.caf", None, "alac", "caf"),
    Case("oggflac.oga", None, "flac", "ogg"),
    Case("wavpack.wv", None, "wavpack", "wavpack"),
    Case("adts.aac", None, "aac", "aac"),
    Case("ape.ape", None, "ape", "ape"),  # Monkey's Audio: the committed golden file (no encoder here)
    # tags skipped by seeking, in front of every decoder, and cut off behind the audio
    Case("stacked_id3.mp3", None, "mp3", "mp3"),  # two ID3v2 tags, then the frames
    Case("id3_junk.mp3", None, "mp3", "mp3"),  # an ID3v2 tag, zero bytes, then the frames
    Case("id3_2mib.m4a", None, "aac", "mp4"),
    Case("id3_2mib.wv", None, "wavpack", "wavpack"),
    Case("tagged.ape", None, "ape", "ape"),  # a 2 MiB ID3v2 in front, a 1 MiB APEv2 and ID3v1 behind
    Case("tagged.caf", None, "alac", "caf"),  # ID3v2 in front, APEv2 and ID3v1 behind
    Case("big_apev2.flac", None, "flac", "flac"),  # a 1 MiB APEv2 tag behind the audio
    Case("only_tags.mp3", "unsupported_format"),  # ID3v2, APEv2, ID3v1 and no audio
    Case("truncated.oga", "truncated"),  # Ogg FLAC cut in half
    Case("truncated_24bit.flac", "truncated"),  # libFLAC seeks back to resync after the cut
    # Damaged or cut files of every codec. The rule (docs/fingerprint-spec.md, "Outcomes"): a file
    # that ends before the end its own structure declares is truncated; damage the decoder detects
    # (a checksum, a lost sync, a rejected packet, a whole file missing audio) in a file that is not
    # cut is corrupt; damage a format cannot detect (PCM samples, MP3 frames without CRC) is sound.
    Case("scrambled.opus", "corrupt"),  # 300 bytes scrambled a third into the file: Ogg page CRC
    Case("scrambled.ogg", "corrupt"),  # Vorbis: pages skipped, short of the last page's granule
    Case("scrambled_aac.m4a", "corrupt"),
    Case("scrambled_alac.m4a", "corrupt"),
    Case("scrambled.wv", "corrupt"),  # WavPack's block checksum
    Case("scrambled.ape", "corrupt"),  # APE's frame CRC
    Case("scrambled.mp3", None, "mp3", "mp3"),  # no CRC in the frames: the damage is undetectable
    Case("scrambled.aiff", None, "pcm_s16", "aiff"),  # PCM: the damage is sound
    Case("truncated.aiff", "truncated"),  # each cut in half
    Case("truncated_moov_end.m4a", "truncated"),  # moov after mdat: the cut took the index
    Case("truncated_faststart.m4a", "truncated"),  # moov first: mdat ends early
    Case("truncated.wv", "truncated"),
    Case("truncated.ape", "truncated"),
    Case("truncated.caf", "truncated"),  # ALAC: the packet table after the data is gone
    Case("no_frames.flac", "too_short"),  # a zero-length audio stream: headers, STREAMINFO 0 samples
    Case("no_frames.opus", "truncated"),  # headers and no end-of-stream page: cut after its headers
    Case("header_garbage.flac", "corrupt"),  # a valid header, then random bytes to the full length
    Case("header_garbage.mp3", "corrupt"),  # the Xing frame, then random bytes up to its byte count
    Case("junk_after.mp3", None, "mp3", "mp3"),  # 3 KB of random bytes after the last frame: the audio is whole
    Case("junk_inside.mp3", "corrupt"),  # 5 KB of random bytes between two frames, past the decoders' resync
    Case("header_garbage.ogg", "corrupt"),  # Vorbis header pages, then random bytes
    Case("pcm16.aiff", None, "pcm_s16", "aiff"),
]
LOSSY = {"aac.m4a", "vorbis.ogg", "opus.opus", "mp3.mp3", "really_mp3.flac", "adts.aac", "stacked_id3.mp3",
         "id3_junk.mp3", "id3_2mib.m4a"}
FFMPEG_ENCODED = {  # name -> ffmpeg encoding arguments
    "alac.caf": ["-c:a", "alac"],
    "oggflac.oga": ["-c:a", "flac", "-f", "ogg"],
    "wavpack.wv": ["-c:a", "wavpack"],
    "adts.aac": ["-c:a", "aac", "-b:a", "160k", "-f", "adts"],
    "pcm16.aiff": ["-c:a", "pcm_s16be"],
    "aac_faststart.m4a": ["-c:a", "aac", "-b:a", "160k", "-movflags", "+faststart"],
    "aac_moov_end.m4a": ["-c:a", "aac", "-b:a", "160k"],
}


def _scrambled(data: bytes) -> bytes:
    """300 bytes a third into ``data`` XORed with 0x55: the file keeps its length."""
    third = len(data) // 3
    return data[:third] + bytes(b ^ 0x55 for b in data[third:third + 300]) + data[third + 300:]


def _big_id3v2(total: int) -> bytes:
    size = total - 10
    return b"ID3\x04\x00\x00" + bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F]) + b"\0" * size


def _apev2(payload_bytes: int) -> bytes:
    """An APEv2 tag (header, one binary item, footer)."""
    items = struct.pack("<II", payload_bytes, 2) + b"Cover Art (Front)\0" + b"x" * payload_bytes
    size = len(items) + 32
    return (b"APETAGEX" + struct.pack("<IIII", 2000, size, 1, 0xA0000000) + b"\0" * 8 + items
            + b"APETAGEX" + struct.pack("<IIII", 2000, size, 1, 0x80000000) + b"\0" * 8)


def _signal(sr: int = SR) -> np.ndarray:
    return music_like(DURATION_S, sr, seed=21)


@pytest.fixture(scope="session")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    x = _signal()
    (d / "empty.flac").write_bytes(b"")
    (d / "x.flac").mkdir()
    (d / "notes.flac").write_text("these are not the bytes you are looking for\n" * 50)
    (d / "random.flac").write_bytes(np.random.default_rng(0).bytes(20_000))

    for subtype, name in (("PCM_16", "pcm16"), ("PCM_24", "pcm24"), ("PCM_32", "pcm32"), ("FLOAT", "float")):
        write_audio(d / f"{name}.wav", x, SR, subtype=subtype)
    for subtype, name in (("PCM_16", "pcm16"), ("PCM_24", "pcm24")):
        write_audio(d / f"{name}.flac", x, SR, subtype=subtype)
    write_audio(d / "mp3.mp3", x, SR)
    write_audio(d / "vorbis.ogg", x, SR)
    write_audio(d / "opus.opus", _signal(48_000), 48_000)
    write_audio(d / "aac.m4a", x, SR)
    write_audio(d / "alac.m4a", x, SR, subtype="alac")
    write_audio(d / "rate_8k.flac", _signal(8_000), 8_000)
    write_audio(d / "rate_192k.flac", _signal(192_000), 192_000, subtype="PCM_24")
    write_audio(d / "mono.flac", x[:, 0], SR)
    six = multichannel(x[:, 0], 6)
    write_audio(d / "six.flac", six, SR)
    write_audio(d / "six.wav", six, SR)
    broken = x.copy()
    broken[SR, 0], broken[2 * SR, 1] = np.nan, np.inf
    write_audio(d / "nan.wav", broken, SR, subtype="FLOAT")
    write_audio(d / "no_frames.wav", np.zeros((0, 2), dtype=np.float32), SR)

    flac = (d / "pcm16.flac").read_bytes()
    (d / "really_flac.mp3").write_bytes(flac)
    (d / "really_mp3.flac").write_bytes((d / "mp3.mp3").read_bytes())
    (d / "tagged.flac").write_bytes(id3v2_tag("Tagged") + flac)
    (d / "Björk – 東京.flac").write_bytes(flac)
    (d / "truncated.flac").write_bytes(flac[: len(flac) // 2])
    third = len(flac) // 3
    (d / "garbled.flac").write_bytes(_scrambled(flac))
    wav = (d / "pcm16.wav").read_bytes()
    (d / "truncated.wav").write_bytes(wav[: len(wav) // 2])
    (d / "header_only.wav").write_bytes(wav[:44])
    for name in ("vorbis.ogg", "opus.opus", "mp3.mp3"):
        data = (d / name).read_bytes()
        (d / f"truncated{Path(name).suffix}").write_bytes(data[: len(data) // 2])

    from tests.test_decoder_fidelity import _ensure_ffmpeg

    ffmpeg = _ensure_ffmpeg()
    for name, args in FFMPEG_ENCODED.items():
        proc = subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(d / "pcm24.wav"), *args, str(d / name)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"ffmpeg could not encode {name}: {proc.stderr}"
    mp3 = (d / "mp3.mp3").read_bytes()
    frames = mp3[_id3_size(mp3):]
    (d / "stacked_id3.mp3").write_bytes(id3v2_tag("one") + id3v2_tag("two", padding=5000) + frames)
    (d / "id3_junk.mp3").write_bytes(id3v2_tag("one") + b"\0" * 700 + frames)
    (d / "id3_2mib.m4a").write_bytes(_big_id3v2(2 << 20) + (d / "aac.m4a").read_bytes())
    (d / "id3_2mib.wv").write_bytes(_big_id3v2(2 << 20) + (d / "wavpack.wv").read_bytes())
    ape = (GOLDEN / "music_ape.ape").read_bytes()
    (d / "ape.ape").write_bytes(ape)
    (d / "tagged.ape").write_bytes(_big_id3v2(2 << 20) + ape + _apev2(1 << 20) + id3v1_tag("t"))
    (d / "scrambled.ape").write_bytes(_scrambled(ape))
    (d / "truncated.ape").write_bytes(ape[: len(ape) // 2])
    (d / "tagged.caf").write_bytes(id3v2_tag("t") + (d / "alac.caf").read_bytes() + _apev2(5000) + id3v1_tag("t"))
    (d / "big_apev2.flac").write_bytes(flac + _apev2(1 << 20))
    (d / "only_tags.mp3").write_bytes(id3v2_tag("t") + _apev2(5000) + id3v1_tag("t"))
    oga = (d / "oggflac.oga").read_bytes()
    (d / "truncated.oga").write_bytes(oga[: len(oga) // 2])
    write_audio(d / "pcm24_96k.flac", _signal(96_000), 96_000, subtype="PCM_24")
    flac24 = (d / "pcm24_96k.flac").read_bytes()
    (d / "truncated_24bit.flac").write_bytes(flac24[: len(flac24) // 2])
    for source, name in (("opus.opus", "scrambled.opus"), ("vorbis.ogg", "scrambled.ogg"), ("mp3.mp3", "scrambled.mp3"),
                         ("aac_moov_end.m4a", "scrambled_aac.m4a"), ("alac.m4a", "scrambled_alac.m4a"),
                         ("wavpack.wv", "scrambled.wv"), ("pcm16.aiff", "scrambled.aiff")):
        (d / name).write_bytes(_scrambled((d / source).read_bytes()))
    for source, name in (("pcm16.aiff", "truncated.aiff"), ("aac_moov_end.m4a", "truncated_moov_end.m4a"),
                         ("aac_faststart.m4a", "truncated_faststart.m4a"), ("wavpack.wv", "truncated.wv"),
                         ("alac.caf", "truncated.caf")):
        data = (d / source).read_bytes()
        (d / name).write_bytes(data[: len(data) // 2])
    for fmt, codec, rate, name in (("flac", "flac", 44100, "no_frames.flac"), ("opus", "libopus", 48000, "no_frames.opus")):
        proc = subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "s16le", "-ar", str(rate), "-ac", "2", "-i", "/dev/null",
                               "-c:a", codec, "-f", fmt if fmt != "opus" else "ogg", str(d / name)], capture_output=True, text=True)
        assert proc.returncode == 0, f"ffmpeg could not write {name}: {proc.stderr}"
    rng = np.random.default_rng(7)
    meta_end = 4
    while True:  # the FLAC metadata blocks, then random bytes to the original length
        last, size = flac[meta_end] & 0x80, int.from_bytes(flac[meta_end + 1:meta_end + 4], "big")
        meta_end += 4 + size
        if last:
            break
    (d / "header_garbage.flac").write_bytes(flac[:meta_end] + rng.bytes(len(flac) - meta_end))
    frames_at = _id3_size(mp3)
    (d / "header_garbage.mp3").write_bytes(mp3[:frames_at + 2000] + rng.bytes(len(mp3) - frames_at - 2000))
    (d / "junk_after.mp3").write_bytes(mp3 + rng.bytes(3000))
    middle = mp3.index(b"\xff\xfb", len(mp3) // 2)  # a frame's sync word: the junk goes between two frames
    (d / "junk_inside.mp3").write_bytes(mp3[:middle] + rng.bytes(5000) + mp3[middle:])
    ogg = (d / "vorbis.ogg").read_bytes()
    (d / "header_garbage.ogg").write_bytes(ogg[:4000] + rng.bytes(len(ogg) - 4000))
    return d


def _id3_size(data: bytes) -> int:
    from trackprint.pyengine.sniff import id3v2_size

    return id3v2_size(data)


@pytest.fixture(scope="session")
def cli_run(inputs):
    """One ``trackprint analyze --json`` run over every case, in CASES order."""
    paths = [str(inputs / c.name) for c in CASES]
    return run_cli("analyze", "--engine", "python", "--json", *paths, timeout=300)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_engine_outcome(inputs, case):
    path = str(inputs / case.name)
    if case.code is not None:
        with pytest.raises(AnalysisError) as info:
            analyze_file(path)
        assert info.value.code.value == case.code, str(info.value)
        assert info.value.path == path and case.code in str(info.value)
        return
    out = analyze_file(path)
    assert_valid(out.fingerprint.as_dict())
    assert out.decode.codec == case.codec and out.decode.container == case.container
    assert out.decode.decoded_duration_s == pytest.approx(DURATION_S, abs=0.1)
    fp = out.fingerprint.as_dict()
    assert fp["lufs"] > -40 and fp["silence_ratio"] == 0.0
    assert fp["low_mid_pct"] > 20  # the chord of music_like
    if case.name != "mono.flac" and not case.name.startswith("six"):
        assert 0.0 < fp["stereo_width"] < 0.2


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cli_outcome(inputs, cli_run, case):
    assert "Traceback" not in cli_run.stderr, cli_run.stderr
    assert cli_run.returncode == 1  # some cases fail
    results = [json.loads(line) for line in cli_run.stdout.splitlines()]
    assert [r["path"] for r in results] == [str(inputs / c.name) for c in CASES]
    result = results[CASES.index(case)]
    if case.code is not None:
        assert result["ok"] is False
        assert result["error"]["code"] == case.code
        assert case.name in result["error"]["message"]
    else:
        assert result["ok"] is True, result
        assert_valid(result["fingerprint"])
        assert result["decode"]["codec"] == case.codec


def _fp(path: Path) -> dict[str, float]:
    out = analyze_file(str(path))
    assert_valid(out.fingerprint.as_dict())
    return out.fingerprint.as_dict()


def test_id3_tag_does_not_change_the_fingerprint(inputs):
    assert _fp(inputs / "tagged.flac") == _fp(inputs / "pcm16.flac")


def test_unicode_name_is_reported_verbatim(inputs, cli_run):
    results = [json.loads(line) for line in cli_run.stdout.splitlines()]
    unicode_result = next(r for r in results if r["path"].endswith("Björk – 東京.flac"))
    assert unicode_result["ok"] and unicode_result["fingerprint"] == _fp(inputs / "pcm16.flac")


def test_bit_depths_agree(inputs):
    reference = fingerprint_of(_signal(), SR)
    names = ["pcm16.wav", "pcm24.wav", "pcm32.wav", "float.wav", "pcm16.flac", "pcm24.flac"]
    for name in names:
        fp = _fp(inputs / name)
        assert fp["lufs"] == pytest.approx(reference["lufs"], abs=0.05), name
        assert fp["crest_db"] == pytest.approx(reference["crest_db"], abs=0.05), name
        assert fp["spectral_centroid"] == pytest.approx(reference["spectral_centroid"], rel=0.01), name


def test_lossy_codecs_stay_close_to_the_source(inputs):
    reference = fingerprint_of(_signal(), SR)
    for name in sorted(LOSSY):
        fp = _fp(inputs / name)
        assert fp["lufs"] == pytest.approx(reference["lufs"], abs=0.5), name
        for band in ("sub_bass_pct", "bass_pct", "low_mid_pct", "mid_pct"):
            assert fp[band] == pytest.approx(reference[band], abs=3.0), (name, band)
        assert fp["phase_correlation"] == pytest.approx(reference["phase_correlation"], abs=0.05), name


def test_rates_and_channels_keep_the_answers(inputs):
    reference = fingerprint_of(_signal(), SR)
    for name in ("rate_8k.flac", "rate_192k.flac", "alac.m4a"):
        fp = _fp(inputs / name)
        assert fp["lufs"] == pytest.approx(reference["lufs"], abs=0.3), name
        assert fp["low_mid_pct"] == pytest.approx(reference["low_mid_pct"], abs=3.0), name
    mono = _fp(inputs / "mono.flac")
    assert mono["stereo_width"] == 0.0 and mono["phase_correlation"] == 1.0
    # the left channel alone, measured as one channel: 3 dB below a stereo pair of it
    left = fingerprint_of(stereo(_signal()[:, 0]), SR)
    assert mono["lufs"] == pytest.approx(left["lufs"] - 3.01, abs=0.05)
    for name in ("six.flac", "six.wav"):
        six = _fp(inputs / name)
        assert six["lufs"] == pytest.approx(mono["lufs"] + 10 * np.log10(3 + 2 * 1.41), abs=0.1), name
        assert six["spectral_centroid"] == pytest.approx(mono["spectral_centroid"], rel=0.01)


def test_wav_with_a_tone_matches_memory(tmp_path):
    """A full-scale-correct decode: 16-bit samples divided by 32768, never by 2**31."""
    x = stereo(sine(1000, 2.0, db=-20.0))
    write_audio(tmp_path / "tone.flac", x, SR)
    fp = _fp(tmp_path / "tone.flac")
    assert fp["lufs"] == pytest.approx(-20.0, abs=0.1)
    assert fp["mid_pct"] > 99


def test_unreadable_file_is_typed(tmp_path):
    path = tmp_path / "secret.flac"
    write_audio(path, stereo(sine(1000, 1.0)), SR)
    os.chmod(path, 0)
    try:
        if os.access(path, os.R_OK):  # running as root: permissions do not apply
            assert_valid(analyze_file(str(path)).fingerprint.as_dict())
        else:
            with pytest.raises(AnalysisError) as info:
                analyze_file(str(path))
            assert info.value.code.value == "io_error"
    finally:
        os.chmod(path, 0o644)


def test_rust_engine_gives_the_same_outcome(inputs, cli_run):
    """Every case, good or bad, gets the same outcome from the Rust engine: the same error code, or a
    fingerprint of the same codec and container (the values are compared within the parity
    tolerances in tests/test_tag_skipping.py and tests/test_decoder_fidelity.py)."""
    rust_server_binary()
    paths = [str(inputs / c.name) for c in CASES]
    proc = run_cli("analyze", "--engine", "rust", "--json", *paths, timeout=600)
    rust = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    python = [json.loads(line) for line in cli_run.stdout.splitlines()]
    assert [r["path"] for r in rust] == paths
    differ = []
    for case, r, p in zip(CASES, rust, python):
        outcome = [(x["error"]["code"] if not x["ok"] else (x["decode"]["codec"], x["decode"]["container"])) for x in (r, p)]
        if outcome[0] != outcome[1] or (r["ok"] and r["engine"] != "rust"):
            differ.append(f"{case.name}: rust {outcome[0]} ({r.get('error', {}).get('message', r['engine'])}), python {outcome[1]}")
    assert not differ, "\n".join(differ)


@pytest.mark.parametrize("name", ["pcm16.flac", "aac.m4a", "id3_2mib.wv"])
def test_a_read_past_the_deadline_is_a_timeout(inputs, name, capfd):
    """Every read the decoders make goes through decode._AudioSpan, which checks the deadline: a
    passed one is ``timeout``, never an exception raised inside libsndfile's or FFmpeg's C code."""
    import time

    from trackprint.pyengine import decode

    path = inputs / name
    with open(path, "rb") as handle:
        with pytest.raises(AnalysisError) as info:
            stream = decode.open_stream(handle, str(path), path.stat().st_size, lambda sr: sr,
                                        deadline=time.monotonic() - 1)
            for _ in stream.blocks:
                pass
    assert info.value.code.value == "timeout"
    assert "Traceback" not in capfd.readouterr().err


def _with_last_granule_moved(data: bytes, extra_samples: int) -> bytes:
    """The Ogg file with its last page's granule position ``extra_samples`` further (its CRC recomputed): the
    stream then decodes that much short of what its last page marks."""
    start = data.rindex(b"OggS")
    page = bytearray(data[start:])
    granule = struct.unpack_from("<q", page, 6)[0]
    struct.pack_into("<q", page, 6, granule + extra_samples)
    struct.pack_into("<I", page, 22, 0)
    struct.pack_into("<I", page, 22, ogg_crc(bytes(page)))
    return data[:start] + bytes(page)


@pytest.mark.parametrize("seconds, short_s, code", [(120.0, 0.3, None), (3.0, 0.3, "corrupt")])
def test_an_ogg_stream_a_little_short_of_its_last_granule_is_whole_in_both_engines(tmp_path, seconds, short_s, code):
    """A long stream decoding a fraction of a second short of its last page's granule (symphonia's Vorbis
    decoder did, 0.32 s of 378 s, on a real file FFmpeg decodes in full) is fingerprinted by both engines:
    at most 0.5 % of the length (at least 0.25 s) may be missing. The same shortfall in a 3-s stream is
    damage both call corrupt."""
    rust_server_binary()
    sr = 22050
    wav = write_audio(tmp_path / "plain.wav", music_like(seconds, sr, seed=8), sr)
    plain = tmp_path / "plain.ogg"  # FFmpeg's libvorbis: libsndfile's Vorbis writer crashes on long writes
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), "-c:a", "libvorbis", str(plain)],
                   check=True)
    path = tmp_path / "short.ogg"
    path.write_bytes(_with_last_granule_moved(plain.read_bytes(), int(short_s * sr)))
    outcomes = {}
    for engine in ("python", "rust"):
        proc = run_cli("analyze", "--engine", engine, "--json", str(path), timeout=300)
        result = json.loads(proc.stdout.splitlines()[0])
        outcomes[engine] = None if result["ok"] else result["error"]["code"]
    assert outcomes == {"python": code, "rust": code}
