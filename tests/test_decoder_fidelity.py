"""Decoder fidelity: the Rust engine's decoded samples against the reference decoder's (FFmpeg).

For every codec the Rust engine decodes, a real-music-like signal
(:func:`tests.audio.music_like`: a chord, a bass line, shaped noise, a beat) is
encoded with the ffmpeg command line (installed from Debian with apt-get when
missing, as root), decoded by ``trackprint-server --decode`` (the engine's
own decoders, nothing else) and by ``ffmpeg -f f32le``, aligned by
cross-correlation (a lag is found, not assumed: encoder delay and padding
are where decoders usually disagree) and compared.

What is required, and why:

* lossless codecs (FLAC 16/24-bit, Ogg FLAC, WAV, RF64, AIFF, W64, ALAC in MP4 and CAF,
  WavPack) and AAC: LC, HE-AAC v1 (SBR) and v2 (SBR + parametric stereo), in
  MP4 and ADTS (decoded by FFmpeg's libavcodec in both): **bit-exact**, same
  length, lag 0;
* lossy codecs decoded by another implementation than FFmpeg's (MP3 by
  libmpg123, Vorbis by symphonia, Opus by libopus): lag 0, the same length (so pre-skip,
  priming and end trimming agree to the sample) and an SNR of at least
  **96 dB**, i.e. every difference sits below the quantisation noise of
  16-bit audio. Conformant decoders differ only by float rounding in their
  transforms (ISO/IEC 11172-4 "full accuracy" allows an error around
  -100 dBFS RMS); measured here: MP3 122 dB, Vorbis 138 dB, Opus 138 dB
  (against FFmpeg's libopus wrapper with float output: FFmpeg's own Opus
  decoder is 2 samples late and ~20 dB off libopus on SILK). A
  decoder bug (a wrong window, a missed tool, a misplaced pre-skip) costs tens
  of dB, so the margin catches real faults without flaking on rounding.

Monkey's Audio (APE) has no encoder in Debian, FFmpeg or PyPI: its files are
committed golden files (``tests/golden/music_ape*.ape``, made by
``scripts/make_golden.py`` with the Monkey's Audio SDK's encoder from
:data:`tests.audio.APE_SOURCES`); the test regenerates each one's source and
requires the decoded samples to be that source, bit for bit, and FFmpeg's.

Then both engines analyse every file and must agree within the spec's parity
tolerances (``tests/golden/tolerance.json``) on every dimension.

HE-AAC files cannot come from the ffmpeg command line (Debian's ffmpeg, like
PyAV's wheel, has no HE-AAC encoder): :func:`tests.audio.write_heaac` encodes
them with the test-only FDK AAC encoder ``trackprint-test-heaac-encode``
(tests/tools/heaac-encode, built and installed into the venv by
``scripts/setup.sh test``) as ADTS, and remuxes that to M4A with ``ffmpeg -c copy
-bsf:a aac_adtstoasc`` (implicit SBR/PS signalling, as most HE-AAC in the wild).
Each file is checked to be what it claims (ffprobe's profile "HE-AAC" or
"HE-AACv2", so the test can never silently decode LC), its core rate (the ADTS
header's) half the 44.1 kHz both decoders output, and ``trackprint analyze
--engine auto`` must run it on the Rust engine with no fallback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.audio import GOLDEN, APE_SOURCES, adts_core_rate, aac_profile, ape_source, music_like, ogg_crc, write_heaac
from tests.fixtures_rust import rust_server_binary
from tests.procs import run_cli

LOSSY_MIN_SNR_DB = 96.0
DURATION_S = 8.0


def _ensure_ffmpeg() -> str:
    found = shutil.which("ffmpeg")
    if found:
        return found
    if os.geteuid() != 0:
        pytest.fail("ffmpeg is not installed and the tests are not root: apt-get install ffmpeg")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "ffmpeg"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    return shutil.which("ffmpeg") or pytest.fail("apt-get installed ffmpeg but it is not on PATH")


# name -> (source rate, channels, ffmpeg encoding arguments, exact)
CASES: dict[str, tuple[int, int, list[str], bool]] = {
    "flac16.flac": (44_100, 2, ["-c:a", "flac", "-sample_fmt", "s16"], True),
    "flac24.flac": (96_000, 2, ["-c:a", "flac", "-sample_fmt", "s32"], True),
    "oggflac.oga": (44_100, 2, ["-c:a", "flac", "-f", "ogg"], True),
    "pcm16.wav": (44_100, 2, ["-c:a", "pcm_s16le"], True),
    "pcm24.aiff": (48_000, 2, ["-c:a", "pcm_s24be"], True),
    "pcm16.w64": (44_100, 2, ["-c:a", "pcm_s16le", "-f", "w64"], True),
    "pcm24_rf64.wav": (44_100, 2, ["-c:a", "pcm_s24le", "-rf64", "always"], True),
    "alac.m4a": (44_100, 2, ["-c:a", "alac"], True),
    "alac.caf": (44_100, 2, ["-c:a", "alac"], True),
    "wavpack.wv": (44_100, 2, ["-c:a", "wavpack"], True),
    "aac.m4a": (44_100, 2, ["-c:a", "aac", "-b:a", "192k"], True),
    "adts.aac": (44_100, 2, ["-c:a", "aac", "-b:a", "160k", "-f", "adts"], True),
    "aac_mono.m4a": (22_050, 1, ["-c:a", "aac", "-b:a", "64k"], True),
    "mp3.mp3": (44_100, 2, ["-c:a", "libmp3lame", "-b:a", "192k"], False),
    "vorbis.ogg": (44_100, 2, ["-c:a", "libvorbis", "-q:a", "5"], False),
    # 5.1 at libvorbis's default (bit-rate managed) setup: symphonia 0.6 decoded three channels of it wrong
    "vorbis_51.ogg": (48_000, 6, ["-c:a", "libvorbis"], False),
    "opus.opus": (48_000, 2, ["-c:a", "libopus", "-b:a", "128k"], False),
    "opus_from44k.opus": (44_100, 2, ["-c:a", "libopus", "-b:a", "96k"], False),
    "opus_mono.opus": (48_000, 1, ["-c:a", "libopus", "-b:a", "64k"], False),
    "opus_51.opus": (48_000, 6, ["-c:a", "libopus", "-b:a", "256k", "-mapping_family", "1"], False),
    # a speech-rate encoder input: the OpusHead says 16 kHz, every decoder here outputs 48 kHz
    "opus_from16k.opus": (16_000, 2, ["-c:a", "libopus", "-b:a", "48k"], False),
}
# HE-AAC (tests/tools/heaac-encode): name -> (output rate, channels, write_heaac profile, bit rate, ffprobe profile).
# Bit rates as HE-AAC is used: v1 for 48-64 kbit/s stereo, v2 (parametric stereo) at 32 kbit/s and below.
HEAAC_CASES: dict[str, tuple[int, int, str, int, str]] = {
    "heaac.aac": (44_100, 2, "he", 64_000, "HE-AAC"),
    "heaac.m4a": (44_100, 2, "he", 64_000, "HE-AAC"),
    "heaac_v2.aac": (44_100, 2, "he2", 32_000, "HE-AACv2"),
    "heaac_v2.m4a": (44_100, 2, "he2", 32_000, "HE-AACv2"),
}
ALL_NAMES = [*CASES, *HEAAC_CASES, "opus_gain.opus", "opus_granule_ahead.opus"]
GAIN_Q78 = -6 * 256  # the output gain written into the gain case's OpusHead: -6 dB
# One mid-stream page's granule position runs this many samples ahead of the packets it ends, and the next
# page's catches up: what FFmpeg's Ogg muxer wrote (from timestamps) on real music transcoded from Vorbis.
GRANULE_AHEAD = 488


def _ogg_pages(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of every Ogg page of ``data``."""
    pages, pos = [], 0
    while pos < len(data):
        assert data[pos:pos + 4] == b"OggS"
        segments = data[pos + 26]
        length = 27 + segments + sum(data[pos + 27:pos + 27 + segments])
        pages.append((pos, length))
        pos += length
    return pages


def _with_output_gain(opus: bytes, gain_q78: int) -> bytes:
    """The same Ogg Opus file with OpusHead's output gain set (the first page's CRC redone)."""
    assert opus[28:36] == b"OpusHead"
    _, end = _ogg_pages(opus)[0]
    page = bytearray(opus[:end])
    page[28 + 16:28 + 18] = gain_q78.to_bytes(2, "little", signed=True)
    page[22:26] = b"\0\0\0\0"
    page[22:26] = ogg_crc(bytes(page)).to_bytes(4, "little")
    return bytes(page) + opus[end:]


def _with_granule_ahead(opus: bytes, ahead: int) -> bytes:
    """The same Ogg Opus file with the middle page's granule position ``ahead`` samples too far (CRC redone)."""
    out = bytearray(opus)
    pages = _ogg_pages(opus)
    assert len(pages) >= 5
    pos, length = pages[len(pages) // 2]
    granule = int.from_bytes(out[pos + 6:pos + 14], "little", signed=True)
    out[pos + 6:pos + 14] = (granule + ahead).to_bytes(8, "little", signed=True)
    out[pos + 22:pos + 26] = b"\0\0\0\0"
    out[pos + 22:pos + 26] = ogg_crc(bytes(out[pos:pos + length])).to_bytes(4, "little")
    return bytes(out)


@pytest.fixture(scope="module")
def encoded(tmp_path_factory) -> Path:
    ffmpeg = _ensure_ffmpeg()
    d = tmp_path_factory.mktemp("fidelity")
    sources: dict[tuple[int, int], Path] = {}
    for name, (rate, channels, args, _) in CASES.items():
        source = sources.get((rate, channels))
        if source is None:
            x = music_like(DURATION_S, rate, seed=3, channels=channels)
            source = d / f"source_{rate}_{channels}.wav"
            soundfile.write(source, x, rate, subtype="PCM_24")
            sources[(rate, channels)] = source
        proc = subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(source), *args, str(d / name)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"ffmpeg could not encode {name}: {proc.stderr}"
    for name, (rate, channels, profile, bitrate, _) in HEAAC_CASES.items():
        write_heaac(d / name, music_like(DURATION_S, rate, seed=3, channels=channels), rate, profile, bitrate)
    (d / "opus_gain.opus").write_bytes(_with_output_gain((d / "opus.opus").read_bytes(), GAIN_Q78))
    (d / "opus_granule_ahead.opus").write_bytes(_with_granule_ahead((d / "opus.opus").read_bytes(), GRANULE_AHEAD))
    return d


def _channels(name: str) -> int:
    return CASES[name][1] if name in CASES else HEAAC_CASES[name][1] if name in HEAAC_CASES else 2


def decode_ffmpeg(path: Path, channels: int) -> np.ndarray:
    # Opus through FFmpeg's libopus wrapper: its own Opus decoder is not libopus's equal on SILK (speech-rate
    # encodes: ~20 dB apart, a resampler delay of 2 samples), and libopus is the reference decoder
    decoder = ["-request_sample_fmt", "flt", "-c:a", "libopus"] if path.suffix == ".opus" else []
    proc = subprocess.run(["ffmpeg", "-v", "error", *decoder, "-i", str(path), "-f", "f32le", "-"], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return np.frombuffer(proc.stdout, np.float32).reshape(-1, channels)


def decode_rust(path: Path) -> tuple[np.ndarray, dict]:
    proc = subprocess.run([rust_server_binary(), "--decode", str(path)], capture_output=True)
    facts = json.loads(proc.stderr.decode().strip().splitlines()[-1])
    assert proc.returncode == 0 and facts["ok"], facts
    channels = facts["decode"]["channels"]
    return np.frombuffer(proc.stdout, np.float32).reshape(-1, channels), facts["decode"]


def best_lag(ref: np.ndarray, x: np.ndarray, max_lag: int = 8192) -> int:
    """The shift of ``x`` against ``ref`` (samples) that maximises their cross-correlation."""
    a, b = ref.mean(axis=1).astype(np.float64), x.mean(axis=1).astype(np.float64)
    n = min(len(a), len(b), 1 << 19)
    cc = np.fft.irfft(np.fft.rfft(a[:n], 2 * n) * np.conj(np.fft.rfft(b[:n], 2 * n)), 2 * n)
    window = np.r_[cc[:max_lag + 1], cc[-max_lag:]]
    lag = int(np.argmax(window))
    return lag if lag <= max_lag else lag - len(window)


def snr_db(ref: np.ndarray, x: np.ndarray, lag: int) -> float:
    r, y = (ref[lag:], x) if lag >= 0 else (ref, x[-lag:])
    m = min(len(r), len(y))
    r, y = r[:m].astype(np.float64), y[:m].astype(np.float64)
    err = float(np.sum((r - y) ** 2))
    return float("inf") if err == 0 else 10 * np.log10(float(np.sum(r ** 2)) / err)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_rust_decoders_match_ffmpeg(encoded, name):
    path = encoded / name
    ours, facts = decode_rust(path)
    ref = decode_ffmpeg(path, ours.shape[1])
    assert ours.shape[1] == _channels(name)
    lag = best_lag(ref, ours)
    snr = snr_db(ref, ours, lag)
    exact = name in HEAAC_CASES or CASES.get(name, (0, 0, [], False))[3]
    print(f"{name}: codec {facts['codec']}, {facts['sample_rate']} Hz, lag {lag}, SNR {snr:.1f} dB, "
          f"{len(ours)} vs {len(ref)} frames")
    assert lag == 0, f"{name}: the Rust decoder is {lag} samples off FFmpeg (delay or padding handled differently)"
    assert len(ours) == len(ref), f"{name}: {len(ours)} frames decoded, FFmpeg decodes {len(ref)}"
    if exact:
        assert np.array_equal(ours, ref), f"{name}: not bit-exact (SNR {snr:.1f} dB)"
    else:
        assert snr >= LOSSY_MIN_SNR_DB, f"{name}: SNR {snr:.1f} dB against FFmpeg, below {LOSSY_MIN_SNR_DB} dB"


def test_opus_output_gain_is_applied(encoded):
    plain, _ = decode_rust(encoded / "opus.opus")
    gained, _ = decode_rust(encoded / "opus_gain.opus")
    ratio_db = 20 * np.log10(np.sqrt(np.mean(gained.astype(np.float64) ** 2) / np.mean(plain.astype(np.float64) ** 2)))
    assert abs(ratio_db - GAIN_Q78 / 256) < 0.01


@pytest.mark.parametrize("name", ["opus_from44k.opus", "opus_from16k.opus"])
def test_opus_decodes_at_48k_with_pre_skip_and_end_trimmed(encoded, name):
    ours, facts = decode_rust(encoded / name)
    assert facts["sample_rate"] == 48_000 and facts["codec"] == "opus" and facts["container"] == "ogg"
    assert len(ours) == round(DURATION_S * 48_000)  # granule end trimming and pre-skip, to the sample


def test_an_opus_page_granule_running_ahead_still_decodes_whole_in_both_engines(encoded):
    """Mid-stream granule positions are not trusted (libsndfile called such a real file malformed): both engines
    decode every sample, the same as from the untouched file."""
    clean, _ = decode_rust(encoded / "opus.opus")
    ahead, _ = decode_rust(encoded / "opus_granule_ahead.opus")
    assert np.array_equal(clean, ahead)
    rust, python = _analyse("rust", [encoded / "opus_granule_ahead.opus"]), _analyse("python", [encoded / "opus_granule_ahead.opus"])
    for result in rust + python:
        assert result["ok"], result.get("error")
        assert abs(result["decode"]["decoded_duration_s"] - DURATION_S) < 1e-3, result["decode"]


def test_a_vbr_mp3_without_a_frame_count_decodes_to_its_last_frame_in_both_engines(tmp_path):
    """No Xing/Info/VBRI header (LAME's tag left out): the length is unknown until the last frame. Loud noise
    first makes the first frames the largest, so a length estimated from them falls short (libsndfile stopped
    at mpg123's estimate, a third of this file; symphonia, the Rust engine's MP3 decoder before libmpg123,
    trimmed every packet past its own, at 80 %)."""
    rng = np.random.default_rng(5)
    noise = (0.5 * rng.standard_normal((44_100, 2))).clip(-1, 1)
    x = np.concatenate([noise, 0.1 * music_like(9.0, 44_100, seed=3, channels=2)]).astype(np.float32)
    source, path = tmp_path / "source.wav", tmp_path / "vbr_notag.mp3"
    soundfile.write(source, x, 44_100, subtype="PCM_24")
    proc = subprocess.run([_ensure_ffmpeg(), "-v", "error", "-y", "-i", str(source), "-c:a", "libmp3lame", "-q:a", "5",
                           "-write_xing", "0", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    ours, facts = decode_rust(path)
    ref = decode_ffmpeg(path, 2)
    assert facts["declared_duration_s"] is None
    assert len(ours) == len(ref) and best_lag(ref, ours) == 0
    assert snr_db(ref, ours, 0) >= LOSSY_MIN_SNR_DB
    (python,) = _analyse("python", [path])
    assert python["ok"], python.get("error")
    assert abs(python["decode"]["decoded_duration_s"] - len(ref) / 44_100) < 1e-3, python["decode"]


def test_an_mp2_peaking_above_full_scale_is_not_clipped_by_either_engine(tmp_path):
    """MPEG layer II from FFmpeg has no Xing header, so the Python engine reads it with FFmpeg, whose default
    MP2 decoder is fixed-point and clips at full scale; the float one (and the Rust engine) does not. A source
    limited at 0.99, as mastered music is, overshoots 1.0 after coding; clipped, crest_db would drop."""
    x = music_like(6.0, 44_100, seed=3, channels=2)
    x = (0.99 * np.clip(4 * x / np.abs(x).max(), -1, 1)).astype(np.float32)
    source, path = tmp_path / "source.wav", tmp_path / "loud.mp2"
    soundfile.write(source, x, 44_100, subtype="PCM_24")
    proc = subprocess.run([_ensure_ffmpeg(), "-v", "error", "-y", "-i", str(source), "-c:a", "mp2", "-b:a", "192k",
                           str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    ours, _ = decode_rust(path)
    assert np.abs(ours).max() > 1.0  # the case this test is about
    tolerance = json.loads((GOLDEN / "tolerance.json").read_text())
    (rust,), (python,) = _analyse("rust", [path]), _analyse("python", [path])
    assert rust["ok"] and python["ok"], (rust.get("error"), python.get("error"))
    for dim in ("crest_db", "peak_consistency"):
        assert abs(rust["fingerprint"][dim] - python["fingerprint"][dim]) <= tolerance[dim], dim


def test_raw_adts_is_not_called_cut_on_a_bit_rate_estimate(tmp_path):
    """Raw ADTS has no length; FFmpeg estimates one from the first frames' bit rate. With a quiet start (small
    first frames) the estimate overshoots: a whole 40-s file read as 2.5 % longer than it decodes, and both
    engines called it `truncated` (nothing fingerprinted)."""
    x = music_like(40.0, 44_100, seed=3, channels=2)
    x[: 5 * 44_100] *= 0.01
    source, path = tmp_path / "source.wav", tmp_path / "quiet_start.aac"
    soundfile.write(source, x, 44_100, subtype="PCM_24")
    proc = subprocess.run([_ensure_ffmpeg(), "-v", "error", "-y", "-i", str(source), "-c:a", "aac", "-b:a", "128k",
                           "-f", "adts", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for engine in ("rust", "python"):
        (result,) = _analyse(engine, [path])
        assert result["ok"], (engine, result.get("error"))
        assert abs(result["decode"]["decoded_duration_s"] - 40.0) < 0.05, (engine, result["decode"])


def _ffmpeg_output_rate(path: Path) -> int:
    """The sample rate FFmpeg's decoder outputs (the WAV header it writes), not what the container declares."""
    proc = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-t", "0.1", "-f", "wav", "-"], capture_output=True)
    assert proc.returncode == 0 and proc.stdout[:4] == b"RIFF", proc.stderr.decode(errors="replace")
    return int.from_bytes(proc.stdout[24:28], "little")


@pytest.mark.parametrize("name", HEAAC_CASES)
def test_heaac_files_are_heaac_at_twice_the_core_rate(encoded, name):
    """The file is the HE-AAC it claims (not LC), and both decoders output SBR's doubled rate."""
    rate, channels, _, _, profile = HEAAC_CASES[name]
    assert aac_profile(encoded / name) == profile
    # The ADTS header's rate (the .m4a is the same deterministic encode, remuxed from ADTS).
    core = adts_core_rate((encoded / name).with_suffix(".aac").read_bytes())
    assert core * 2 == rate, f"{name}: AAC core at {core} Hz, expected half of {rate}"
    _, facts = decode_rust(encoded / name)
    assert facts["codec"] == "aac" and facts["channels"] == channels
    assert facts["sample_rate"] == _ffmpeg_output_rate(encoded / name) == rate


def test_heaac_runs_on_the_rust_engine_with_no_fallback(encoded):
    names = list(HEAAC_CASES)
    results = _analyse("auto", [encoded / n for n in names])
    assert [r["path"] for r in results] == [str(encoded / n) for n in names]
    for name, r in zip(names, results):
        assert r["ok"] and r["engine"] == "rust" and "fallback_reason" not in r, (name, r)
        assert r["decode"]["codec"] == "aac" and r["decode"]["sample_rate"] == HEAAC_CASES[name][0], (name, r["decode"])
        assert r["decode"]["container"] == ("aac" if name.endswith(".aac") else "mp4"), (name, r["decode"])


@pytest.mark.parametrize("name", APE_SOURCES)
def test_ape_decodes_bit_for_bit_to_the_source_it_was_encoded_from(tmp_path, name):
    samples, rate, subtype = ape_source(name)
    wav = tmp_path / "source.wav"
    soundfile.write(wav, samples, rate, subtype=subtype)  # the WAV Monkey's Audio encoded
    source, _ = soundfile.read(wav, dtype="int32", always_2d=True)  # left-aligned: exact as x / 2^31
    expected = (source.astype(np.float64) / 2.0 ** 31).astype(np.float32)
    ours, facts = decode_rust(GOLDEN / name)
    assert (facts["codec"], facts["container"]) == ("ape", "ape")
    assert (facts["sample_rate"], facts["channels"]) == (rate, samples.shape[1])
    assert facts["bits_per_sample"] == {"PCM_16": 16, "PCM_24": 24}[subtype]
    assert ours.shape == expected.shape and np.array_equal(ours, expected), f"{name}: not the source, bit for bit"
    assert np.array_equal(ours, decode_ffmpeg(GOLDEN / name, ours.shape[1])), f"{name}: not FFmpeg's samples"


def test_ape_runs_on_the_rust_engine_with_no_fallback():
    names = list(APE_SOURCES)
    results = _analyse("auto", [GOLDEN / n for n in names])
    assert [r["path"] for r in results] == [str(GOLDEN / n) for n in names]
    for name, r in zip(names, results):
        assert r["ok"] and r["engine"] == "rust" and "fallback_reason" not in r, (name, r)
        assert (r["decode"]["codec"], r["decode"]["container"]) == ("ape", "ape"), (name, r["decode"])


def _analyse(engine: str, paths: list[Path]) -> list[dict]:
    proc = run_cli("analyze", "--engine", engine, "--json", *map(str, paths), timeout=600)
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_python_and_rust_engines_agree_on_every_format(encoded):
    tolerance = json.loads((GOLDEN / "tolerance.json").read_text())
    names = ALL_NAMES  # ALAC in CAF and Ogg FLAC too: the Python engine's FFmpeg path
    paths = [encoded / n for n in names]
    rust, python = _analyse("rust", paths), _analyse("python", paths)
    problems = []
    for name, r, p in zip(names, rust, python):
        assert r["ok"] and r["engine"] == "rust", (name, r.get("error"))
        assert p["ok"], (name, p.get("error"))
        assert r["decode"]["sample_rate"] == p["decode"]["sample_rate"], name
        assert abs(r["decode"]["decoded_duration_s"] - p["decode"]["decoded_duration_s"]) < 0.05, name
        for dim, tol in tolerance.items():
            diff = abs(r["fingerprint"][dim] - p["fingerprint"][dim])
            if diff > tol:
                problems.append(f"{name} {dim}: rust {r['fingerprint'][dim]:.4f} python {p['fingerprint'][dim]:.4f}")
    assert not problems, "\n".join(problems)
