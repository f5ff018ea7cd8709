#!/usr/bin/env python3
"""Generate the engine-parity golden vectors in tests/golden/.

Writes small audio files (short signals; about 3 MB in all) covering every kind of
input the Python tests use plus one file per codec the Rust server decodes,
then ``golden.json``: for each file the Python engine's answer
(``trackprint.pyengine.engine.analyze_file``), and ``tolerance.json``: a copy of
``trackprint.fingerprint.PARITY_TOLERANCE`` so the Rust test needs no Python.

Deterministic (fixed seeds). Run from the repository root:

    .venv/bin/python scripts/make_golden.py [NAME ...]

With names, only those files are rewritten and their entries in ``golden.json``
replaced (the others are kept as they are).

Monkey's Audio (APE) has no encoder in Debian, FFmpeg or PyPI, so the APE
files are written by the Monkey's Audio SDK's console encoder, ``mac`` (on
PATH or named by ``$MAC_ENCODER``; the SDK, https://monkeysaudio.com, builds on
Linux with ``g++ -DPLATFORM_LINUX``), from a 16- or 24-bit WAV of
``tests.audio.music_like`` (:data:`APE_SOURCES`, which
``tests/test_decoder_fidelity.py`` regenerates to check the decoded samples
are the source's, bit for bit). Without ``mac`` the committed APE files are
kept and only analysed again. They were made by Monkey's Audio 8.20, mode
``-c2000`` (normal).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from trackprint.pyengine.engine import analyze_file  # noqa: E402
from audio import APE_SOURCES, ape_source, click_track, sine, white_noise  # noqa: E402
from trackprint.errors import AnalysisError  # noqa: E402
from trackprint.fingerprint import DIMENSIONS, PARITY_TOLERANCE  # noqa: E402

OUT = ROOT / "tests" / "golden"
SR = 44_100


def music_like(duration_s: float, sr: int, seed: int = 1) -> np.ndarray:
    """A stereo mix with bass, chords, clicks and a little noise (exercises every dimension)."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * sr)
    t = np.arange(n) / sr
    bass = 0.25 * np.sin(2 * np.pi * 55 * t)
    chord = sum(0.08 * np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0))
    env = np.exp(-((t * 2) % 1.0) * 6)  # 120 BPM pulses
    beats = 0.3 * env * np.sin(2 * np.pi * 1800 * t)
    noise = 0.02 * rng.standard_normal(n)
    left = bass + chord + beats + noise
    right = bass + 0.8 * chord + beats + 0.02 * rng.standard_normal(n)
    return np.stack([left, right], 1).astype(np.float32)


def write_m4a(path: Path, samples: np.ndarray, sr: int, codec: str) -> None:
    import av

    layout = "mono" if samples.ndim == 1 or samples.shape[1] == 1 else "stereo"
    data = samples.reshape(len(samples), -1)
    with av.open(str(path), "w", format="mp4") as container:
        if codec == "alac":
            stream = container.add_stream("alac", rate=sr, layout=layout)
            fmt = "s16p"
            planes = (np.clip(data, -1, 1) * 32767).astype(np.int16).T.copy()
        else:
            stream = container.add_stream("aac", rate=sr, layout=layout)
            stream.bit_rate = 128_000
            fmt = "fltp"
            planes = data.T.astype(np.float32).copy()
        frame_len = 4096
        for start in range(0, planes.shape[1], frame_len):
            chunk = np.ascontiguousarray(planes[:, start:start + frame_len])
            frame = av.AudioFrame.from_ndarray(chunk, format=fmt, layout=layout)
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def cases() -> dict[str, tuple]:
    """name -> (writer, samples, sr, extra) ; writer in sf subtypes or 'alac'/'aac'."""
    c: dict[str, tuple] = {}
    for name, f in [("sub_bass_50hz", 50), ("bass_150hz", 150), ("low_mid_350hz", 350), ("mid_1khz", 1000),
                    ("upper_mid_3khz", 3000), ("presence_5khz", 5000), ("air_10khz", 10000)]:
        c[f"tone_{name}.flac"] = ("FLAC", "PCM_16", sine(f, 2.0, SR, db=-6.0), SR)
    mix = music_like(3.0, SR)
    c["stereo_l_eq_r.flac"] = ("FLAC", "PCM_16", np.stack([mix[:, 0], mix[:, 0]], 1), SR)
    c["stereo_r_neg_l.flac"] = ("FLAC", "PCM_16", np.stack([mix[:, 0], -mix[:, 0]], 1), SR)
    c["white_noise.flac"] = ("FLAC", "PCM_16", white_noise(2.0, SR, db=-20.0), SR)
    c["click_120bpm.flac"] = ("FLAC", "PCM_16", click_track(120, 6.0, SR), SR)
    c["silence.flac"] = ("FLAC", "PCM_16", np.zeros(2 * SR, dtype=np.float32), SR)
    c["clip_0p3s.flac"] = ("FLAC", "PCM_16", sine(440, 0.3, SR), SR)
    six = np.stack([sine(f, 2.0, SR, db=-12.0) for f in (100, 300, 1000, 60, 3000, 6000)], 1)
    c["six_channels.flac"] = ("FLAC", "PCM_16", six, SR)
    hi = music_like(1.5, 96_000, seed=2)[:, :1]
    c["hires_96k_24bit.flac"] = ("FLAC", "PCM_24", hi, 96_000)
    c["narrow_8khz.flac"] = ("FLAC", "PCM_16", music_like(3.0, 8_000, seed=3), 8_000)
    c["music_flac24_44k.flac"] = ("FLAC", "PCM_24", music_like(2.0, SR, seed=4)[:, :1], SR)
    short = music_like(2.0, 22_050, seed=5)[:, :1]
    for sub in ("PCM_16", "PCM_24", "PCM_32", "FLOAT"):
        c[f"music_wav_{sub.lower()}.wav"] = ("WAV", sub, short, 22_050)
    c["music_aiff.aiff"] = ("AIFF", "PCM_16", short, 22_050)
    c["music_mp3.mp3"] = ("MP3", "MPEG_LAYER_III", music_like(3.0, SR, seed=6), SR)
    c["music_vorbis.ogg"] = ("OGG", "VORBIS", music_like(3.0, SR, seed=7), SR)
    c["music_alac.m4a"] = ("alac", None, music_like(2.0, SR, seed=8)[:, :1], SR)
    c["music_aac.m4a"] = ("aac", None, music_like(3.0, SR, seed=9), SR)
    c["rhythm_3_over_150bpm.flac"] = ("FLAC", "PCM_16", accented_pulse(14.0, 22_050), 22_050)
    for name in APE_SOURCES:
        c[name] = ("ape", None, None, None)
    return c


def accented_pulse(duration_s: float, sr: int) -> np.ndarray:
    """Mono clicks at 150 BPM, every third one louder (a 50-BPM bar), over a bass line that changes every
    two beats (75 BPM): long enough (14 s) for the tempo's period paths, with three periodicities for the
    comb and the paths to weigh."""
    n = int(duration_s * sr)
    t = np.arange(n) / sr
    beat = 0.4
    phase = t % beat
    index = np.floor(t / beat).astype(int)
    accent = np.where(index % 3 == 0, 1.0, 0.45)
    clicks = 0.5 * accent * np.exp(-phase * 40) * np.sin(2 * np.pi * 2500 * t)
    bass = 0.2 * np.sin(2 * np.pi * np.where((index // 2) % 2 == 0, 55.0, 73.4) * t)
    return (clicks + bass)[:, None].astype(np.float32)


def write_ape(path: Path) -> None:
    """Encode ``APE_SOURCES[path.name]`` with Monkey's Audio, or keep the committed file without it."""
    encoder = os.environ.get("MAC_ENCODER") or shutil.which("mac")
    if not encoder:
        if not path.exists():
            raise SystemExit(f"make_golden: {path.name} needs Monkey's Audio's encoder (mac on PATH or $MAC_ENCODER)")
        print(f"make_golden: no Monkey's Audio encoder, keeping the committed {path.name}")
        return
    samples, sr, subtype = ape_source(path.name)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "source.wav"
        sf.write(wav, samples, sr, subtype=subtype)
        done = subprocess.run([encoder, str(wav), str(path), "-c2000"], capture_output=True, text=True)
        if done.returncode != 0 or not path.exists():
            raise SystemExit(f"make_golden: {encoder} could not encode {path.name}: {done.stdout[-500:]}")


def main(names: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    all_cases = cases()
    unknown = sorted(set(names) - set(all_cases))
    if unknown:
        raise SystemExit(f"make_golden: no such golden file: {', '.join(unknown)}")
    golden: dict[str, dict] = json.loads((OUT / "golden.json").read_text())["files"] if names else {}
    for name, (fmt, subtype, samples, sr) in all_cases.items():
        if names and name not in names:
            continue
        path = OUT / name
        if fmt == "ape":
            write_ape(path)
        elif fmt in ("alac", "aac"):
            write_m4a(path, samples, sr, fmt)
        else:
            sf.write(path, samples, sr, format=fmt, subtype=subtype)
        try:
            out = analyze_file(str(path))
            golden[name] = {"ok": True, "fingerprint": out.fingerprint.as_dict(),
                            "decode": {"sample_rate": out.decode.sample_rate, "channels": out.decode.channels,
                                       "decoded_duration_s": out.decode.decoded_duration_s}}
        except AnalysisError as exc:
            golden[name] = {"ok": False, "code": exc.code.value}
    golden = {name: golden[name] for name in all_cases if name in golden}  # the cases' order
    (OUT / "golden.json").write_text(json.dumps(
        {"dimensions": list(DIMENSIONS), "files": golden}, indent=1, sort_keys=False) + "\n")
    (OUT / "tolerance.json").write_text(json.dumps(PARITY_TOLERANCE, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"make_golden: {len(golden)} files, {total / 1e6:.2f} MB in {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
