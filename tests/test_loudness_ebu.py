"""lufs is EBU R128 integrated loudness: EBU Tech 3341 cases 1-5, agreement with
libebur128 (pyebur128) on music-like signals, and Tech 3342 loudness range.

Levels in the EBU cases are the peak level of a 1 kHz sine in each channel of
a stereo signal (a -23 dBFS sine on both channels reads -23.0 LUFS).
"""

from __future__ import annotations

import numpy as np
import pyebur128
import pytest

from trackprint.pyengine.features import fingerprint_of
from tests.audio import assert_valid, music_like, segments, white_noise

RATES = (48_000, 44_100)

# EBU Tech 3341 (2016), table 1, cases 1-5: (peak dBFS, seconds) segments -> expected LUFS, +-0.1 LU
TECH_3341 = {
    "case1": ([(-23.0, 20.0)], -23.0),
    "case2": ([(-33.0, 20.0)], -33.0),
    "case3": ([(-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0)], -23.0),
    "case4": ([(-72.0, 10.0), (-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0), (-72.0, 10.0)], -23.0),
    "case5": ([(-26.0, 20.0), (-20.0, 20.1), (-26.0, 20.0)], -23.0),
}

# EBU Tech 3342 (2016), table 1, cases 1-4: expected LRA +-1 LU
TECH_3342 = {
    "case1": ([(-20.0, 20.0), (-30.0, 20.0)], 10.0),
    "case2": ([(-20.0, 20.0), (-15.0, 20.0)], 5.0),
    "case3": ([(-40.0, 20.0), (-20.0, 20.0)], 20.0),
    "case4": ([(-50.0, 20.0), (-35.0, 20.0), (-20.0, 20.0), (-35.0, 20.0), (-50.0, 20.0)], 15.0),
}


def libebur128(x: np.ndarray, sr: int) -> tuple[float, float]:
    """(integrated loudness, loudness range) of (n, channels) samples by libebur128."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    state = pyebur128.R128State(x.shape[1], sr, pyebur128.MeasurementMode.MODE_I | pyebur128.MeasurementMode.MODE_LRA)
    state.add_frames(x.ravel(), len(x))
    return pyebur128.get_loudness_global(state), pyebur128.get_loudness_range(state)


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("case", sorted(TECH_3341))
def test_tech_3341_integrated_loudness(case, sr):
    parts, expected = TECH_3341[case]
    fp = fingerprint_of(segments(parts, sr=sr), sr)
    assert_valid(fp)
    assert fp["lufs"] == pytest.approx(expected, abs=0.1), case


@pytest.mark.parametrize("case", sorted(TECH_3342))
def test_tech_3342_loudness_range(case):
    sr = 48_000
    parts, expected = TECH_3342[case]
    x = segments(parts, sr=sr)
    fp = fingerprint_of(x, sr)
    assert_valid(fp)
    _, reference = libebur128(x, sr)
    assert fp["dynamic_range_variation"] == pytest.approx(expected, abs=1.0), case
    assert fp["dynamic_range_variation"] == pytest.approx(reference, abs=0.2), case


def _varying_noise(duration_s: float, sr: int, seed: int) -> np.ndarray:
    """Stereo band-limited noise with a loudness envelope spanning ~25 dB and a silent gap."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * sr)
    noise = np.stack([white_noise(duration_s, sr, db=-18, seed=seed), white_noise(duration_s, sr, db=-18, seed=seed + 1)], 1)
    spectrum = np.fft.rfft(noise, axis=0)
    f = np.fft.rfftfreq(n, 1 / sr)[:, None]
    spectrum *= (f / 200.0) / (1.0 + (f / 200.0) ** 2) * 2  # band-pass around 200 Hz
    noise = np.fft.irfft(spectrum, n, axis=0)
    t = np.arange(n) / sr
    envelope = 10 ** ((-12.0 * (1 + np.sin(2 * np.pi * t / 7.3 + rng.uniform(0, 6)))) / 20.0)
    envelope[(t > duration_s * 0.4) & (t < duration_s * 0.5)] = 0.0
    return (noise * envelope[:, None]).astype(np.float32)


def _tones_and_clicks(duration_s: float, sr: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(duration_s * sr)
    t = np.arange(n) / sr
    left = 0.3 * np.sin(2 * np.pi * 80 * t) + 0.1 * np.sin(2 * np.pi * 5000 * t)
    right = 0.2 * np.sin(2 * np.pi * 600 * t + 1.0)
    x = np.stack([left, right], 1)
    for start in rng.integers(0, n - 2000, size=int(duration_s * 3)):
        x[start:start + 2000] += rng.standard_normal((2000, 2)) * np.exp(-np.arange(2000) / 300)[:, None] * 0.5
    return np.clip(x, -1, 1).astype(np.float32)


SIGNALS = {
    "music_like": lambda sr: music_like(25.0, sr, seed=3),
    "varying_noise": lambda sr: _varying_noise(30.0, sr, seed=4),
    "tones_and_clicks": lambda sr: _tones_and_clicks(20.0, sr, seed=5),
}


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_agrees_with_libebur128(name, sr):
    x = SIGNALS[name](sr)
    fp = fingerprint_of(x, sr)
    assert_valid(fp)
    integrated, lra = libebur128(x, sr)
    assert fp["lufs"] == pytest.approx(integrated, abs=0.1)
    assert fp["dynamic_range_variation"] == pytest.approx(lra, abs=0.2)


def test_lufs_of_a_mono_sine_at_a_known_level():
    # mono is measured as one front channel: a -20 dBFS 1 kHz sine has mean square 0.005 -> -23.0 + 0.0 - 3.01
    sr = 48_000
    fp = fingerprint_of(segments([(-20.0, 10.0)], sr=sr, channels=1), sr)
    assert fp["lufs"] == pytest.approx(-20.0 - 3.01, abs=0.1)
    stereo = fingerprint_of(segments([(-20.0, 10.0)], sr=sr, channels=2), sr)
    assert stereo["lufs"] == pytest.approx(-20.0, abs=0.1)
