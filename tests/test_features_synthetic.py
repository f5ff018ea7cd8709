"""Every one of the 25 dimensions on synthetic signals whose answer is known.

Signals are generated in memory (tests/audio.py) and fed to
trackprint.pyengine.features.fingerprint_of, the same accumulator analyze_file uses.
Every fingerprint is also checked to be finite and inside its range.
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from trackprint.pyengine.features import fingerprint_of
from trackprint.pyengine.features.frames import SILENCE_MEAN_SQUARE, frame_params
from tests.audio import (
    SR,
    assert_valid,
    click_count,
    click_track,
    melody,
    multichannel,
    music_like,
    pink_noise,
    segments,
    sine,
    square,
    stereo,
    white_noise,
)
from trackprint.errors import AnalysisError, ErrorCode
from trackprint.fingerprint import DIMENSIONS

BANDS = ("sub_bass_pct", "bass_pct", "low_mid_pct", "mid_pct", "upper_mid_pct", "presence_pct", "air_pct")


def fp_of(x: np.ndarray, sr: int = SR) -> dict[str, float]:
    fp = fingerprint_of(x, sr)
    assert_valid(fp)
    return fp


# -- spectral balance -----------------------------------------------------------------
@pytest.mark.parametrize(
    "freq, band",
    [(40, "sub_bass_pct"), (120, "bass_pct"), (350, "low_mid_pct"), (1000, "mid_pct"),
     (3000, "upper_mid_pct"), (5000, "presence_pct"), (10000, "air_pct")],
)
def test_a_tone_lands_in_its_band(freq, band):
    fp = fp_of(stereo(sine(freq, 2.0)))
    assert fp[band] >= 95.0, {b: fp[b] for b in BANDS}
    assert sum(fp[b] for b in BANDS) == pytest.approx(100.0, abs=1e-6)
    assert fp["spectral_centroid"] == pytest.approx(freq, rel=0.1)


def test_bass_mid_ratio_ends():
    assert fp_of(sine(120, 2.0))["bass_mid_ratio"] == pytest.approx(1.0, abs=1e-3)
    assert fp_of(sine(40, 2.0))["bass_mid_ratio"] == pytest.approx(1.0, abs=1e-3)
    assert fp_of(sine(1000, 2.0))["bass_mid_ratio"] == pytest.approx(0.0, abs=1e-3)
    both = fp_of(sine(120, 2.0, db=-12) + sine(1000, 2.0, db=-12))["bass_mid_ratio"]
    assert 0.4 < both < 0.6


def test_spectral_centroid_and_rolloff_of_1khz():
    fp = fp_of(sine(1000, 3.0))
    assert fp["spectral_centroid"] == pytest.approx(1000.0, rel=0.03)
    assert fp["spectral_rolloff"] == pytest.approx(1000.0, rel=0.05)


# -- stereo -----------------------------------------------------------------------------
def test_identical_channels_are_mono():
    fp = fp_of(stereo(music_like(3.0, channels=1)[:, 0]))
    assert fp["stereo_width"] == pytest.approx(0.0, abs=1e-6)
    assert fp["phase_correlation"] == pytest.approx(1.0, abs=1e-6)


def test_inverted_polarity():
    x = sine(440, 2.0)
    fp = fp_of(stereo(x, -x))
    assert fp["stereo_width"] == pytest.approx(1.0, abs=1e-6)
    assert fp["phase_correlation"] == pytest.approx(-1.0, abs=1e-6)


def test_independent_noises_are_wide_and_uncorrelated():
    fp = fp_of(stereo(white_noise(3.0, seed=1), white_noise(3.0, seed=2)))
    assert fp["stereo_width"] == pytest.approx(0.5, abs=0.02)
    assert fp["phase_correlation"] == pytest.approx(0.0, abs=0.02)


def test_one_silent_channel():
    x = sine(440, 2.0)
    fp = fp_of(stereo(x, np.zeros_like(x)))
    assert fp["stereo_width"] == pytest.approx(0.5, abs=1e-6)
    assert fp["phase_correlation"] == pytest.approx(0.0, abs=1e-6)


def test_mono_input_counts_as_identical_channels():
    fp = fp_of(sine(440, 2.0))
    assert fp["stereo_width"] == 0.0 and fp["phase_correlation"] == 1.0


# -- tempo and rhythm -------------------------------------------------------------------
@pytest.mark.parametrize("bpm", [60, 90, 120, 140])
def test_click_track_tempo(bpm):
    duration = 12.0
    fp = fp_of(click_track(bpm, duration))
    assert fp["tempo_bpm"] == pytest.approx(bpm, abs=1.0)
    assert fp["rhythm_stability"] > 0.75
    assert fp["transient_density"] == pytest.approx(click_count(bpm, duration) / duration, abs=0.15)


def test_the_tempo_is_the_estimate_most_estimators_agree_with():
    """Spec 4.11 (version 4): the comb's estimate unless more of the period paths agree on another."""
    from trackprint.pyengine.features.rhythm import agreed_tempo
    assert agreed_tempo(100.0, [151.0, 149.5, 100.5]) == 100.0  # two against two: the comb's
    assert agreed_tempo(100.0, [151.0, 149.5, 80.0]) == 151.0  # two paths agree, the comb stands alone
    assert agreed_tempo(100.0, [150.0, 160.0, 80.0]) == 100.0  # nobody agrees: the comb's
    assert agreed_tempo(120.0, [0.0, 0.0, 0.0]) == 120.0  # a path without windows supports nothing
    assert agreed_tempo(100.0, [104.5, 104.5, 0.0]) == 104.5  # 4.5% from the comb: not the same tempo


def test_a_period_path_reads_the_lag_its_windows_observe():
    """Spec 4.11: a path fed windows that all point at one lag reads that lag's tempo, and one
    window pointing elsewhere does not pull it away (the transitions keep it)."""
    from trackprint.pyengine.features.rhythm import TEMPO_HOP, PeriodPath
    fps = frame_params(44_100).onset_rate
    path = PeriodPath(fps)
    lag_index = 42  # lag 43 frames: 60 fps / 43 = 120.2 BPM
    for w in range(20):
        observation = np.full(TEMPO_HOP, 1e-6)
        observation[lag_index if w != 10 else 70] = 1.0
        path.add(observation / observation.sum())
    assert path.bpm() == pytest.approx(60.0 * fps / (lag_index + 1), rel=1e-9)
    assert PeriodPath(fps).bpm() == 0.0


def test_the_high_frequency_content_flux_reads_rises_only():
    from trackprint.pyengine.features.rhythm import hfc_flux
    h, last = hfc_flux(np.array([[1.0, 1.0, 1.0], [0.0, 2.0, 2.0], [5.0, 0.0, 0.0]]), None)
    assert h.tolist() == [0.0, 3.0, 0.0] and last == 0.0  # H = 3, 6, 0: the first frame and a fall read 0
    h, _ = hfc_flux(np.array([[0.0, 4.0, 0.0]]), last)
    assert h.tolist() == [4.0]  # carried across calls


def test_steady_tone_and_noise_have_no_tempo():
    for x in (sine(1000, 6.0), white_noise(6.0)):
        fp = fp_of(x)
        assert fp["tempo_bpm"] == 0.0 and fp["rhythm_stability"] == 0.0
        assert fp["transient_density"] < 0.5


def test_irregular_clicks_are_less_stable_than_a_metronome():
    rng = np.random.default_rng(7)
    x = np.zeros(int(12 * SR), dtype=np.float32)
    burst = click_track(60, 0.2, offset_s=0.0)[: int(0.02 * SR)]
    for start in np.sort(rng.uniform(0, 11.5, 24)):
        i = int(start * SR)
        x[i:i + len(burst)] += burst
    irregular = fp_of(x)
    metronome = fp_of(click_track(120, 12.0))
    assert irregular["rhythm_stability"] < metronome["rhythm_stability"] - 0.3


# -- silence ----------------------------------------------------------------------------
def test_digital_silence_is_defined():
    fp = fp_of(np.zeros((3 * SR, 2), dtype=np.float32))
    assert fp["silence_ratio"] == 1.0
    assert fp["lufs"] == -70.0
    assert all(fp[b] == 0.0 for b in BANDS)
    assert fp["tempo_bpm"] == 0.0 and fp["transient_density"] == 0.0
    assert fp["crest_db"] == 0.0 and fp["peak_consistency"] == 0.0


def test_half_silence():
    fp = fp_of(np.concatenate([sine(1000, 3.0), np.zeros(3 * SR, dtype=np.float32)]))
    assert fp["silence_ratio"] == pytest.approx(0.5, abs=0.02)
    # silent frames do not dilute the spectral answers
    assert fp["mid_pct"] > 99 and fp["spectral_centroid"] == pytest.approx(1000, rel=0.05)


def test_never_silent():
    assert fp_of(white_noise(2.0))["silence_ratio"] == 0.0


# -- spectral shape ---------------------------------------------------------------------
def test_flatness_white_pink_tone():
    white = fp_of(white_noise(4.0))["spectral_flatness"]
    pink = fp_of(pink_noise(4.0))["spectral_flatness"]
    tone = fp_of(sine(1000, 4.0))["spectral_flatness"]
    assert white > 0.8
    assert tone < 0.02
    assert tone < pink < white


def test_harmonic_ratio_noise_vs_tone():
    assert fp_of(white_noise(4.0))["harmonic_ratio"] < 0.1
    assert fp_of(sine(1000, 4.0))["harmonic_ratio"] > 0.98
    mixed = fp_of(sine(1000, 4.0, db=-20) + white_noise(4.0, db=-20))["harmonic_ratio"]
    assert 0.1 < mixed < 0.98


def test_chroma_energy_note_chord_noise():
    note = fp_of(sine(440, 4.0))["chroma_energy"]
    chord = fp_of(sine(261.63, 4.0) + sine(329.63, 4.0) + sine(392.0, 4.0))["chroma_energy"]
    noise = fp_of(white_noise(4.0))["chroma_energy"]
    assert note > 0.95
    assert 0.15 < chord < note - 0.4
    assert noise < 0.15


def test_pitch_stability_held_note_vs_melody():
    held = fp_of(sine(440, 6.0))["pitch_stability"]
    tune = fp_of(melody([261.63, 392.0], 0.5, 6.0))["pitch_stability"]
    assert held == 1.0
    assert tune < 0.8


# -- levels and dynamics ----------------------------------------------------------------
def test_crest_of_sine_and_square():
    assert fp_of(sine(1000, 2.0))["crest_db"] == pytest.approx(3.01, abs=0.05)
    assert fp_of(square(441, 2.0))["crest_db"] == pytest.approx(0.0, abs=0.05)
    assert fp_of(white_noise(2.0))["crest_db"] > 10.0


def test_peak_consistency_steady_vs_decaying():
    assert fp_of(sine(1000, 6.0))["peak_consistency"] == pytest.approx(1.0, abs=1e-3)
    n = 10 * SR
    decaying = sine(1000, 10.0) * np.exp(-np.arange(n) / SR / 2.0).astype(np.float32)
    assert fp_of(decaying)["peak_consistency"] < 0.5


def test_loudness_variation_steady_vs_alternating():
    steady = fp_of(segments([(-10.0, 20.0)], channels=1))
    assert steady["loudness_variation_std"] == pytest.approx(0.0, abs=0.05)
    assert steady["dynamic_range_variation"] == pytest.approx(0.0, abs=0.05)

    # -10/-30 dBFS: the -30 dB blocks fall under the -10 LU relative gate of lufs,
    # so loudness_variation_std sees only the loud blocks and the transitions,
    # while the loudness range (-20 LU gate) spans the full 20 dB.
    wide = fp_of(segments([(-10.0, 5.0), (-30.0, 5.0)] * 3, channels=1))
    assert wide["dynamic_range_variation"] == pytest.approx(20.0, abs=1.0)
    assert wide["loudness_variation_std"] > 0.5

    # -10/-18 dBFS: both levels pass every gate: std ~ half the 8 dB step
    narrow = fp_of(segments([(-10.0, 5.0), (-18.0, 5.0)] * 3, channels=1))
    assert narrow["loudness_variation_std"] == pytest.approx(4.0, abs=0.6)
    assert narrow["dynamic_range_variation"] == pytest.approx(8.0, abs=1.0)


def test_lufs_of_a_stereo_sine():
    fp = fp_of(stereo(sine(1000, 5.0, db=-20.0)))
    assert fp["lufs"] == pytest.approx(-20.0, abs=0.1)


# -- durations, channels, rates ---------------------------------------------------------
def test_short_clip_is_defined():
    fp = fp_of(stereo(sine(1000, 0.3)))
    assert fp["mid_pct"] > 95 and fp["lufs"] == pytest.approx(-6.0, abs=0.2)
    assert fp["tempo_bpm"] == 0.0


def test_five_ms_is_too_short():
    with pytest.raises(AnalysisError) as info:
        fingerprint_of(stereo(sine(1000, 0.005)), SR)
    assert info.value.code is ErrorCode.TOO_SHORT


def test_six_channels_tone_on_first_channel_only():
    x = multichannel(sine(1000, 2.0, db=-20.0), 6, active=[0])
    fp = fp_of(x)
    assert fp["mid_pct"] > 99
    # one front channel at -20 dBFS peak: half the energy of the same sine on L and R
    assert fp["lufs"] == pytest.approx(-23.01, abs=0.1)
    # channels 0 and 1 are the stereo pair: R silent
    assert fp["stereo_width"] == pytest.approx(0.5, abs=1e-6)


def test_six_channels_same_tone_everywhere():
    x = multichannel(sine(1000, 2.0, db=-20.0), 6)
    fp = fp_of(x)
    assert fp["mid_pct"] > 99
    # L, R, C at 1.0 and Ls, Rs at 1.41, LFE not measured: 10 log10(3 + 2 * 1.41) - 3.01 above one channel
    expected = -20.0 - 3.01 + 10 * np.log10(3 + 2 * 1.41)
    assert fp["lufs"] == pytest.approx(expected, abs=0.1)
    assert fp["stereo_width"] == 0.0 and fp["phase_correlation"] == 1.0
    assert fp["crest_db"] == pytest.approx(3.01, abs=0.05)


@pytest.mark.parametrize("sr", [8_000, 22_050, 48_000, 96_000, 192_000])
def test_rates_give_the_same_answers(sr):
    reference = fp_of(stereo(sine(1000, 2.0) + sine(120, 2.0, db=-12)), SR)
    fp = fp_of(stereo(sine(1000, 2.0, sr=sr) + sine(120, 2.0, sr=sr, db=-12)), sr)
    for band in BANDS:
        assert fp[band] == pytest.approx(reference[band], abs=1.0), band
    assert fp["spectral_centroid"] == pytest.approx(reference["spectral_centroid"], rel=0.03)
    assert fp["bass_mid_ratio"] == pytest.approx(reference["bass_mid_ratio"], abs=0.01)
    assert fp["lufs"] == pytest.approx(reference["lufs"], abs=0.1)
    assert fp["crest_db"] == pytest.approx(reference["crest_db"], abs=0.1)


def test_streaming_block_size_does_not_change_the_answer():
    x = music_like(8.0, seed=2)
    whole = fingerprint_of(x, SR, block=len(x))
    odd = fingerprint_of(x, SR, block=12_345)
    for name in DIMENSIONS:
        assert odd[name] == pytest.approx(whole[name], rel=1e-4, abs=1e-4), name


# -- agreement with librosa -------------------------------------------------------------
def test_centroid_rolloff_flatness_agree_with_librosa():
    x = music_like(12.0, seed=11)
    x[int(5 * SR):int(6.5 * SR)] = 0.0  # a silent stretch: those frames are skipped
    fp = fp_of(x)

    n_fft = frame_params(SR).spectral_frame
    assert n_fft == 8192
    mono = (x[:, 0] + x[:, 1]) * np.float32(0.5)
    padded = np.zeros(-(-len(mono) // n_fft) * n_fft, dtype=np.float32)  # the zero-padded last frame
    padded[: len(mono)] = mono
    frames = padded.reshape(-1, n_fft)
    active = np.mean(frames.astype(np.float64) ** 2, axis=1) >= SILENCE_MEAN_SQUARE
    assert 0 < active.sum() < len(active)

    S = np.abs(librosa.stft(padded, n_fft=n_fft, hop_length=n_fft, center=False, window="hann"))
    assert S.shape[1] == len(frames)
    # version 2: the shape band, 20 Hz <= f < 12 kHz, only
    freqs = librosa.fft_frequencies(sr=SR, n_fft=n_fft)
    band = (freqs >= 20.0) & (freqs < 12_000.0)
    S, freqs = S[band], freqs[band]
    centroid = librosa.feature.spectral_centroid(S=S, sr=SR, freq=freqs)[0][active].mean()
    rolloff = librosa.feature.spectral_rolloff(S=S, sr=SR, freq=freqs, roll_percent=0.85)[0][active].mean()
    flatness = librosa.feature.spectral_flatness(S=S, power=1.0)[0][active].mean()

    assert fp["spectral_centroid"] == pytest.approx(centroid, rel=0.01)
    assert fp["spectral_rolloff"] == pytest.approx(rolloff, rel=0.01)
    assert fp["spectral_flatness"] == pytest.approx(flatness, rel=0.01)


def test_music_like_signal_is_in_range_and_mid_scale():
    fp = fp_of(music_like(10.0, seed=5))
    assert -30 < fp["lufs"] < -5
    assert 0.0 < fp["spectral_flatness"] < 0.9
    assert 0.0 < fp["chroma_energy"] < 0.9
    assert 0.0 < fp["stereo_width"] < 0.2 and 0.8 < fp["phase_correlation"] < 1.0
