"""Test signals and test audio files, shared by every test file (deterministic).

Signal generators (in memory, numpy only) return float32 samples shaped (n,)
for mono or (n, channels), full scale +-1.0. ``db`` levels are the *peak*
level of a sine in dBFS unless the docstring says otherwise.

File writers: :func:`write_audio` (one file, the format from its extension),
:func:`write_tones` / :func:`write_tone_library` (a folder of short, distinct
tones: a music library for the services), :func:`write_m4a`, :func:`write_heaac`
(HE-AAC v1/v2 as ADTS or M4A, through the test-only FDK AAC encoder), and the tag
makers :func:`id3v2_tag` / :func:`id3v1_tag`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

SR = 44_100


def db_to_amp(db: float) -> float:
    return 10.0 ** (db / 20.0)


def seconds(duration_s: float, sr: int = SR) -> int:
    return int(round(duration_s * sr))


def sine(freq: float, duration_s: float, sr: int = SR, db: float = -6.0, phase: float = 0.0) -> np.ndarray:
    """A sine of ``freq`` Hz with peak level ``db`` dBFS, mono."""
    t = np.arange(seconds(duration_s, sr)) / sr
    return (db_to_amp(db) * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def square(freq: float, duration_s: float, sr: int = SR, db: float = -6.0) -> np.ndarray:
    """A +-A square wave (A = ``db`` dBFS), mono; a frequency dividing ``sr`` keeps it exact."""
    t = np.arange(seconds(duration_s, sr))
    period = sr / freq
    return (db_to_amp(db) * np.where((t % period) < period / 2, 1.0, -1.0)).astype(np.float32)


def white_noise(duration_s: float, sr: int = SR, db: float = -20.0, seed: int = 0) -> np.ndarray:
    """Gaussian white noise whose RMS is ``db`` dBFS, mono."""
    rng = np.random.default_rng(seed)
    return (db_to_amp(db) * rng.standard_normal(seconds(duration_s, sr))).astype(np.float32)


def pink_noise(duration_s: float, sr: int = SR, db: float = -20.0, seed: int = 0) -> np.ndarray:
    """1/f (pink) noise by spectral shaping of white noise, RMS ``db`` dBFS, mono."""
    rng = np.random.default_rng(seed)
    n = seconds(duration_s, sr)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    f[0] = f[1]
    x = np.fft.irfft(spectrum / np.sqrt(f), n)
    x /= np.sqrt(np.mean(x ** 2))
    return (db_to_amp(db) * x).astype(np.float32)


def click_track(bpm: float, duration_s: float, sr: int = SR, db: float = -6.0, click_ms: float = 10.0,
                offset_s: float = 0.05) -> np.ndarray:
    """Short decaying 2 kHz bursts every 60/bpm s (a metronome), mono."""
    n = seconds(duration_s, sr)
    out = np.zeros(n, dtype=np.float64)
    length = seconds(click_ms / 1000.0, sr)
    t = np.arange(length) / sr
    click = np.sin(2 * np.pi * 2000 * t) * np.exp(-t / (click_ms / 4000.0))
    period = 60.0 / bpm
    for k in range(int(duration_s / period) + 1):
        start = seconds(offset_s + k * period, sr)
        if start + length > n:
            break
        out[start:start + length] += click
    return (db_to_amp(db) * out).astype(np.float32)


def click_count(bpm: float, duration_s: float, offset_s: float = 0.05, click_ms: float = 10.0) -> int:
    period = 60.0 / bpm
    return sum(1 for k in range(int(duration_s / period) + 1) if offset_s + k * period + click_ms / 1000 <= duration_s)


def stereo(left: np.ndarray, right: np.ndarray | None = None) -> np.ndarray:
    """(n, 2) from one or two mono signals (``right`` defaults to ``left``)."""
    right = left if right is None else right
    return np.stack([left, right], axis=1).astype(np.float32)


def multichannel(mono: np.ndarray, channels: int, active: list[int] | None = None) -> np.ndarray:
    """(n, channels) with ``mono`` on the ``active`` channels (default: all) and silence elsewhere."""
    out = np.zeros((len(mono), channels), dtype=np.float32)
    for c in range(channels) if active is None else active:
        out[:, c] = mono
    return out


def segments(parts: list[tuple[float, float]], freq: float = 1000.0, sr: int = SR, channels: int = 2) -> np.ndarray:
    """Consecutive sine segments [(peak dBFS, seconds), ...], phase-continuous, on every channel."""
    levels = np.concatenate([np.full(seconds(d, sr), db_to_amp(db)) for db, d in parts])
    t = np.arange(len(levels)) / sr
    x = (levels * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return x if channels == 1 else np.repeat(x[:, None], channels, axis=1)


def melody(notes_hz: list[float], note_s: float, duration_s: float, sr: int = SR, db: float = -6.0) -> np.ndarray:
    """Notes cycling through ``notes_hz``, each held ``note_s`` seconds, mono."""
    n = seconds(duration_s, sr)
    idx = (np.arange(n) / sr // note_s).astype(int) % len(notes_hz)
    freq = np.asarray(notes_hz)[idx]
    phase = 2 * np.pi * np.cumsum(freq) / sr
    return (db_to_amp(db) * np.sin(phase)).astype(np.float32)


GOLDEN = Path(__file__).parent / "golden"  # the golden files and vectors (scripts/make_golden.py)

# The golden APE files (scripts/make_golden.py): name -> (duration s, rate, seed, channels, WAV subtype)
# of the music_like signal Monkey's Audio encoded; tests regenerate it to check lossless decoding.
APE_SOURCES: dict[str, tuple[float, int, int, int, str]] = {
    "music_ape.ape": (3.0, SR, 11, 2, "PCM_16"),
    "music_ape_24bit_mono.ape": (1.5, 48_000, 12, 1, "PCM_24"),
}


def ape_source(name: str) -> tuple[np.ndarray, int, str]:
    """(samples, rate, WAV subtype) of the signal a golden APE file was encoded from."""
    duration_s, rate, seed, channels, subtype = APE_SOURCES[name]
    return music_like(duration_s, rate, seed=seed, channels=channels), rate, subtype


def music_like(duration_s: float, sr: int = SR, seed: int = 1, channels: int = 2, bpm: float = 110.0) -> np.ndarray:
    """Something with the statistics of music: a chord, a bass line, band-limited noise
    with a slowly varying envelope and a beat of clicks; the channels differ a little.
    Returns (n, channels)."""
    rng = np.random.default_rng(seed)
    n = seconds(duration_s, sr)
    t = np.arange(n) / sr
    chord = sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in
                zip((0.12, 0.08, 0.07), (261.63, 329.63, 392.0), rng.uniform(0, 2 * np.pi, 3)))
    bass = 0.15 * np.sin(2 * np.pi * np.where((t % 2.0) < 1.0, 55.0, 73.42) * t)
    noise = rng.standard_normal(n)
    spectrum = np.fft.rfft(noise)
    f = np.fft.rfftfreq(n, 1 / sr)
    spectrum *= 1.0 / (1.0 + (f / 3000.0) ** 2)  # gentle low-pass
    noise = np.fft.irfft(spectrum, n)
    noise *= 0.05 / np.sqrt(np.mean(noise ** 2))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * t / (duration_s / 1.7 + 1.0)) * np.sin(2 * np.pi * 0.13 * t)
    clicks = click_track(bpm, duration_s, sr, db=-12.0).astype(np.float64)
    mono = envelope * (chord + bass + noise) + clicks
    out = np.empty((n, channels), dtype=np.float32)
    for c in range(channels):
        decor = 0.02 * rng.standard_normal(n)
        out[:, c] = mono * (1.0 - 0.1 * c) + decor
    return out


def to_mono(x: np.ndarray) -> np.ndarray:
    return x if x.ndim == 1 else x.mean(axis=1)


def rms_db(x: np.ndarray) -> float:
    return 10 * math.log10(float(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def assert_valid(fp) -> None:
    """Every fingerprint a test sees: the 25 names, each finite and inside trackprint.fingerprint.RANGES."""
    from trackprint.fingerprint import validate

    assert validate(fp) == [], validate(fp)


def write_m4a(path, x: np.ndarray, sr: int, codec: str = "aac") -> None:
    """Write (n, channels) float samples as an MP4/M4A file with PyAV's ``aac`` or ``alac`` encoder."""
    import av

    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    layout = {1: "mono", 2: "stereo"}[x.shape[1]]
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=sr)
        stream.layout = layout
        fmt = stream.codec_context.codec.audio_formats[0].name  # aac: fltp, alac: s32p
        scale = {"fltp": None, "s16p": (32767.0, np.int16), "s32p": (2147483647.0, np.int32)}[fmt]
        for start in range(0, len(x), 4096):
            planar = np.ascontiguousarray(x[start:start + 4096].T)
            if scale is not None:
                planar = np.ascontiguousarray(np.clip(planar * scale[0], -scale[0] - 1, scale[0]).astype(scale[1]))
            frame = av.AudioFrame.from_ndarray(planar, format=fmt, layout=layout)
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


HEAAC_ENCODER = "trackprint-test-heaac-encode"
# write_heaac's profiles -> (FDK AAC profile argument, the profile ffprobe must then report)
HEAAC_PROFILES = {"he": ("he", "HE-AAC"), "he2": ("he2", "HE-AACv2"), "lc": ("lc", "LC")}
# ADTS sampling_frequency_index -> Hz (ISO/IEC 14496-3, 1.6.3.4)
ADTS_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350]


def heaac_encoder() -> str:
    """The test-only HE-AAC encoder (tests/tools/heaac-encode), installed next to the venv's python by
    ``scripts/setup.sh test``; a missing one fails the test (as a missing server does), saying how to build it."""
    import shutil
    import sys

    found = Path(sys.executable).parent / HEAAC_ENCODER
    if found.is_file():
        return str(found)
    import pytest

    return shutil.which(HEAAC_ENCODER) or pytest.fail(
        f"{HEAAC_ENCODER} is not in {found.parent} nor on PATH: run `make setup` (scripts/setup.sh test builds "
        "tests/tools/heaac-encode with cargo)")


def write_heaac(path, x: np.ndarray, sr: int, profile: str = "he", bitrate: int | None = None) -> Path:
    """Write samples (n,) or (n, channels) as HE-AAC (``profile`` "he": v1, SBR; "he2": v2, SBR + parametric
    stereo, stereo only; "lc": AAC-LC) with the FDK AAC encoder: ADTS for ``.aac``, MP4 for ``.m4a`` (the
    ADTS stream remuxed by the ffmpeg CLI, ``-c copy -bsf:a aac_adtstoasc``). ffprobe must then report the
    profile asked for, so a caller can never get LC where it asked for HE-AAC. Returns the path."""
    import subprocess

    path = Path(path)
    x = np.asarray(x, dtype=np.float32)
    x = x[:, None] if x.ndim == 1 else x
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2").tobytes()
    adts = path if path.suffix.lower() == ".aac" else path.with_name(path.name + ".adts.aac")
    cmd = [heaac_encoder(), "--rate", str(sr), "--channels", str(x.shape[1]), "--profile", HEAAC_PROFILES[profile][0],
           *(["--bitrate", str(bitrate)] if bitrate else []), str(adts)]
    proc = subprocess.run(cmd, input=pcm, capture_output=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stderr.decode(errors='replace')}"
    if adts != path:
        proc = subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(adts), "-c", "copy", "-bsf:a", "aac_adtstoasc",
                               str(path)], capture_output=True, text=True)
        adts.unlink()
        assert proc.returncode == 0, f"ffmpeg could not remux {path.name} to MP4: {proc.stderr}"
    got = aac_profile(path)
    assert got == HEAAC_PROFILES[profile][1], f"{path.name}: ffprobe reports profile {got!r}, not {HEAAC_PROFILES[profile][1]}"
    return path


def aac_profile(path) -> str:
    """The AAC profile ffprobe reports for the first audio stream ("LC", "HE-AAC", "HE-AACv2")."""
    import subprocess

    proc = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=profile",
                           "-of", "default=nw=1:nk=1", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def adts_core_rate(data: bytes) -> int:
    """The sampling rate an ADTS stream's first header declares: for HE-AAC the AAC core's, half the output rate."""
    assert data[0] == 0xFF and data[1] & 0xF6 == 0xF0, "not an ADTS header"
    return ADTS_RATES[(data[2] >> 2) & 0x0F]


def id3v2_tag(title: str = "A title", padding: int = 1024) -> bytes:
    """An ID3v2.4 tag with one TIT2 frame and ``padding`` zero bytes (what taggers put in front of files)."""
    text = b"\x03" + title.encode("utf-8")
    frame = b"TIT2" + len(text).to_bytes(4, "big") + b"\x00\x00" + text  # v2.4 sizes are synchsafe; small here
    body = frame + b"\x00" * padding
    size = len(body)
    synchsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x04\x00\x00" + synchsafe + body


def id3v1_tag(title: str) -> bytes:
    """A 128-byte ID3v1 tag (what taggers append to MP3 files)."""
    return b"TAG" + title.encode().ljust(30, b"\0") + b"\0" * 95


def noisy_tone(freq: float, duration_s: float, sr: int = SR, amplitude: float = 0.3, noise: float = 0.02,
               seed: int | np.random.Generator = 0) -> np.ndarray:
    """A sine of peak ``amplitude`` plus Gaussian noise of RMS ``noise``, mono; ``seed`` may be a
    Generator (then it is drawn from, so a series of tones gets different noise)."""
    rng = np.random.default_rng(seed)
    n = seconds(duration_s, sr)
    t = np.arange(n) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(n)).astype(np.float32)


# extension -> (soundfile format, default subtype); .m4a goes through PyAV (write_m4a)
_SOUNDFILE_FORMATS = {
    ".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".ogg": ("OGG", "VORBIS"), ".opus": ("OGG", "OPUS"),
}


def write_audio(path, x: np.ndarray, sr: int = SR, subtype: str | None = None) -> Path:
    """Write samples (n,) or (n, channels) to ``path`` in the format its extension names: .wav and
    .flac (16-bit PCM unless ``subtype``, e.g. "PCM_24", "FLOAT"), .mp3, .ogg (Vorbis), .opus
    (48 kHz), .m4a (AAC, or ALAC with ``subtype="alac"``). Returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".m4a":
        write_m4a(path, x, sr, subtype or "aac")
        return path
    import soundfile as sf

    fmt, default_subtype = _SOUNDFILE_FORMATS[suffix]
    sf.write(str(path), x, sr, format=fmt, subtype=subtype or default_subtype)
    return path


def write_tones(folder, names: list[str], sr: int, base_hz: float, step_hz: float, seed: int, *,
                duration_s: float = 1.0, amplitude: float = 0.2, noise: float = 0.01, channels: int = 1,
                subtype: str | None = None) -> list[Path]:
    """One file per name in ``folder`` (created if missing; the format from each extension): file i a
    tone of ``base_hz + step_hz * i`` plus a little noise, so no two share a content id. With
    ``channels`` > 1, channel c is the same signal at ``1 - 0.2 c`` of the level."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, name in enumerate(names):
        x = noisy_tone(base_hz + step_hz * i, duration_s, sr, amplitude=amplitude, noise=noise, seed=rng)
        if channels > 1:
            x = np.stack([x * (1.0 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)
        paths.append(write_audio(folder / name, x, sr, subtype))
    return paths


def write_tone_library(folder, count: int, sr: int, base_hz: float, step_hz: float, seed: int,
                       name: str = "f{i:03d}.flac", **kwargs) -> list[Path]:
    """``count`` one-second mono files f000.flac.. (``name`` formats ``i``): :func:`write_tones`,
    for backfill tests."""
    return write_tones(folder, [name.format(i=i) for i in range(count)], sr, base_hz, step_hz, seed, **kwargs)


def ogg_crc(page: bytes) -> int:
    """Ogg's page CRC-32 (polynomial 0x04c11db7, not reflected, initial 0), for tests that edit a page."""
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc
