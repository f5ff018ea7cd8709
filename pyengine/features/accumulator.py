"""Streams a track through every feature in one pass, in bounded memory.

Feed float32 blocks shaped (samples, channels) with :meth:`add`; call
:meth:`finish` for the 25 numbers. Per block it keeps only carries (filter
states, partial frames); per track it keeps small summaries: one float per
100 ms sub-block (3 arrays) and one per onset frame (~86/s), a few MB for a
two-hour track. Everything else is summed as it goes.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.signal

from trackprint.pyengine.features import bands, dynamics, harmonicity, loudness, rhythm, spectral_shape, stereo
from trackprint.pyengine.features.frames import LOG_POWER_FLOOR, SILENCE_MEAN_SQUARE, bin_frequencies, frame_params
from trackprint.errors import AnalysisError, ErrorCode
from trackprint.fingerprint import DIMENSIONS


def _periodic_hann(n: int) -> np.ndarray:
    return scipy.signal.get_window("hann", n, fftbins=True).astype(np.float32)


class _Framer:
    """Cuts a stream into frames of ``size`` every ``hop`` samples, keeping the remainder."""

    def __init__(self, size: int, hop: int):
        self.size, self.hop = size, hop
        self.carry = np.zeros(0, dtype=np.float32)
        self.frames_emitted = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        buf = np.concatenate([self.carry, samples]) if len(self.carry) else samples
        if len(buf) < self.size:
            self.carry = np.array(buf, dtype=np.float32)
            return np.zeros((0, self.size), dtype=np.float32)
        count = (len(buf) - self.size) // self.hop + 1
        frames = np.lib.stride_tricks.sliding_window_view(buf, self.size)[:: self.hop][:count]
        self.carry = np.array(buf[count * self.hop:], dtype=np.float32)
        self.frames_emitted += count
        return frames

    def tail(self) -> np.ndarray:
        """The zero-padded last frame, if samples remain that no frame covered."""
        uncovered = len(self.carry) - (self.size - self.hop) if self.frames_emitted else len(self.carry)
        if uncovered <= 0:
            return np.zeros((0, self.size), dtype=np.float32)
        frame = np.zeros((1, self.size), dtype=np.float32)
        frame[0, : len(self.carry)] = self.carry
        return frame


class FingerprintAccumulator:
    """One track's running analysis state. Not thread-safe; one per track."""

    def __init__(self, sample_rate: int, channels: int):
        if channels < 1:
            raise AnalysisError(ErrorCode.CORRUPT, f"stream declares {channels} channels", stage="analyse")
        self.sample_rate = sample_rate
        self.channels = channels
        self.params = p = frame_params(sample_rate)
        self.samples = 0

        # loudness and levels per 100 ms sub-block
        self._sos32 = loudness.k_weighting_sos(sample_rate).astype(np.float32)
        self._zi = np.zeros((self._sos32.shape[0], channels, 2), dtype=np.float32)
        self._weights = loudness.channel_weights(channels)
        self._carry_raw = np.zeros((0, channels), dtype=np.float32)
        self._carry_weighted = np.zeros((channels, 0), dtype=np.float32)
        self._sub_energy: list[np.ndarray] = []
        self._sub_mean_square: list[np.ndarray] = []
        self._sub_peak: list[np.ndarray] = []

        # stereo sums
        self._ll = self._rr = self._lr = 0.0

        # spectral frames
        self._spec = _Framer(p.spectral_frame, p.spectral_hop)
        self._spec_window = _periodic_hann(p.spectral_frame)
        self._freqs = bin_frequencies(sample_rate, p.spectral_frame)
        self._bands = bands.band_index(self._freqs)
        self._audible = self._bands >= 0
        self._shape = spectral_shape.shape_bins(self._freqs)
        self._chroma = harmonicity.chroma_matrix(self._freqs)
        self._band_energy = np.zeros(7)  # bands: E_b
        self._active_frames = 0  # T
        self._centroid_sum = self._rolloff_sum = self._flatness_sum = 0.0  # spectral_shape: per-frame sums
        self._chroma_sum = 0.0  # harmonicity: sum of chroma_concentration
        self._tonal_power = self._audible_power = 0.0  # harmonicity: harmonic_ratio
        self._previous_pitch = -1  # harmonicity: pitch_stability pairs
        self._pitch_pairs = self._pitch_same = 0

        # onset envelope
        self._decimation_carry = np.zeros(0, dtype=np.float32)
        self._onset = _Framer(p.onset_frame, p.onset_hop)
        self._onset_window = _periodic_hann(p.onset_frame)
        self._previous_log_spectrum: np.ndarray | None = None
        self._previous_spectra = np.zeros((0, p.onset_frame // 2 + 1), dtype=np.complex128)  # the tempo envelope's
        self._onsets: list[np.ndarray] = []  # transient_density's onset count reads the whole envelope
        self._previous_hfc: float | None = None  # the tempo's high-frequency-content envelope
        self._tempo = rhythm.TempoTracker(p.onset_rate)  # tempo: ~0.4 KB per 1.5 s

    # -- streaming -----------------------------------------------------------------
    def add(self, block: np.ndarray) -> None:
        """Consume float32 samples shaped (n, channels), full scale +-1."""
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"expected (n, {self.channels}) samples, got {block.shape}")
        if len(block) == 0:
            return
        block = np.ascontiguousarray(block, dtype=np.float32)
        self.samples += len(block)
        self._add_levels(block)
        self._add_stereo(block)
        if self.channels == 1:
            mono = block[:, 0]
        elif self.channels == 2:
            mono = (block[:, 0] + block[:, 1]) * np.float32(0.5)
        else:
            mono = block.sum(axis=1) * np.float32(1.0 / self.channels)
        self._add_spectral_frames(self._spec.push(mono))
        self._add_onset_samples(mono)

    def _add_levels(self, block: np.ndarray) -> None:
        # float32 filtering is ample for K-weighting (error << 0.001 LU) and twice as fast
        weighted, self._zi = scipy.signal.sosfilt(self._sos32, block.T, axis=1, zi=self._zi)
        raw = np.concatenate([self._carry_raw, block]) if len(self._carry_raw) else block
        if self._carry_weighted.shape[1]:
            weighted = np.concatenate([self._carry_weighted, weighted], axis=1)
        size = self.params.sub_block
        count = len(raw) // size
        used = count * size
        if count:
            w = weighted[:, :used].reshape(self.channels, count, size)
            per_channel = np.einsum("cjs,cjs->cj", w, w, dtype=np.float64) / size
            self._sub_energy.append(self._weights @ per_channel)
            r = raw[:used].reshape(count, size * self.channels)
            self._sub_mean_square.append(np.einsum("js,js->j", r, r, dtype=np.float64) / (size * self.channels))
            peaks = np.maximum(r.max(axis=1), -r.min(axis=1)).astype(np.float64)
            if not np.all(np.isfinite(peaks)):  # NaN/inf in a float file: the data, not the engine, is broken
                raise AnalysisError(ErrorCode.CORRUPT, "the stream contains NaN or infinite samples", stage="decode")
            self._sub_peak.append(peaks)
        self._carry_raw = np.array(raw[used:])
        self._carry_weighted = np.array(weighted[:, used:])

    def _add_stereo(self, block: np.ndarray) -> None:
        left = np.ascontiguousarray(block[:, 0])
        right = np.ascontiguousarray(block[:, 1]) if self.channels > 1 else left
        self._ll += float(np.dot(left, left))
        self._rr += float(np.dot(right, right))
        self._lr += float(np.dot(left, right))

    def _add_spectral_frames(self, frames: np.ndarray) -> None:
        if len(frames) == 0:
            return
        active = np.einsum("ts,ts->t", frames, frames, dtype=np.float64) / frames.shape[1] >= SILENCE_MEAN_SQUARE
        if not np.all(active):
            self._add_active_spectra(frames[active], runs=active)
        else:
            self._add_active_spectra(frames, runs=None)

    def _add_active_spectra(self, frames: np.ndarray, runs: np.ndarray | None) -> None:
        """Spectral statistics of the non-silent frames; ``runs`` marks which batch frames they were."""
        if len(frames) == 0:
            return
        transform = scipy.fft.rfft(frames * self._spec_window, axis=1)
        power = np.empty(transform.shape, dtype=np.float32)
        np.multiply(transform.real, transform.real, out=power)
        power += transform.imag * transform.imag
        per_bin = power.sum(axis=0, dtype=np.float64)
        self._band_energy += np.bincount(self._bands[self._audible], weights=per_bin[self._audible], minlength=7)[:7]
        self._audible_power += float(per_bin[self._audible].sum())

        chroma = power @ self._chroma
        self._count_pitch_repeats(harmonicity.dominant_pitch_class(chroma), runs)

        magnitude = np.sqrt(power)
        log_power = np.log(np.maximum(power, LOG_POWER_FLOOR))
        self._active_frames += len(power)
        band = self._shape
        self._centroid_sum += float(spectral_shape.frame_centroid(magnitude[:, band], self._freqs[band]).sum())
        self._rolloff_sum += float(spectral_shape.frame_rolloff(magnitude[:, band], self._freqs[band]).sum())
        self._flatness_sum += float(spectral_shape.frame_flatness(log_power[:, band], magnitude[:, band]).sum())
        self._chroma_sum += float(harmonicity.chroma_concentration(chroma).sum())
        tonal = harmonicity.tonal_mask(log_power)
        tonal &= self._audible
        self._tonal_power += float(np.sum(power, where=tonal, dtype=np.float64))

    def _count_pitch_repeats(self, classes: np.ndarray, runs: np.ndarray | None) -> None:
        """pitch_stability counts pairs of consecutive frames, both non-silent with chroma power (-1: none)."""
        if runs is not None:  # re-insert the silent frames as breaks in the sequence
            full = np.full(len(runs), -1, dtype=np.int64)
            full[runs] = classes
            classes = full
        sequence = np.concatenate(([self._previous_pitch], classes))
        valid = (sequence[:-1] >= 0) & (sequence[1:] >= 0)
        self._pitch_pairs += int(np.count_nonzero(valid))
        self._pitch_same += int(np.count_nonzero(valid & (sequence[:-1] == sequence[1:])))
        self._previous_pitch = int(sequence[-1])

    def _add_onset_samples(self, mono: np.ndarray) -> None:
        d = self.params.onset_decimation
        buf = np.concatenate([self._decimation_carry, mono]) if len(self._decimation_carry) else mono
        usable = len(buf) // d * d
        decimated = buf[:usable].reshape(-1, d).mean(axis=1, dtype=np.float32) if d > 1 else buf[:usable]
        self._decimation_carry = np.array(buf[usable:], dtype=np.float32)
        frames = self._onset.push(np.asarray(decimated, dtype=np.float32))
        if len(frames) == 0:
            return
        transform = scipy.fft.rfft(frames * self._onset_window, axis=1)
        power = transform.real ** 2 + transform.imag ** 2
        log_spectra = rhythm.log_power(power)
        flux = rhythm.spectral_flux(log_spectra, self._previous_log_spectrum)
        self._onsets.append(flux)
        self._previous_log_spectrum = log_spectra[-1]
        complex_flux, self._previous_spectra = rhythm.complex_domain_flux(transform, self._previous_spectra)
        hfc, self._previous_hfc = rhythm.hfc_flux(power, self._previous_hfc)
        self._tempo.add(complex_flux, flux, hfc)

    # -- result --------------------------------------------------------------------
    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate

    def finish(self) -> dict[str, float]:
        """The 25 numbers (see docs/fingerprint-spec.md). Raises ``too_short`` under 100 ms."""
        if self.samples < self.params.sub_block:
            raise AnalysisError(
                ErrorCode.TOO_SHORT,
                f"{self.duration_s * 1000:.1f} ms of audio; the minimum is 100 ms",
                stage="analyse",
            )
        self._add_spectral_frames(self._spec.tail())
        energy = np.concatenate(self._sub_energy)
        mean_square = np.concatenate(self._sub_mean_square)
        peak = np.concatenate(self._sub_peak)
        onsets = np.concatenate(self._onsets) if self._onsets else np.zeros(0)
        beat = self._tempo.result()
        band_energy = self._band_energy
        active = self._active_frames

        # one function per dimension, named as docs/fingerprint-spec.md section 4 names it
        values = {
            "sub_bass_pct": bands.sub_bass_pct(band_energy),
            "bass_pct": bands.bass_pct(band_energy),
            "low_mid_pct": bands.low_mid_pct(band_energy),
            "mid_pct": bands.mid_pct(band_energy),
            "upper_mid_pct": bands.upper_mid_pct(band_energy),
            "presence_pct": bands.presence_pct(band_energy),
            "air_pct": bands.air_pct(band_energy),
            "lufs": loudness.lufs(energy),
            "crest_db": dynamics.crest_db(mean_square, peak),
            "bass_mid_ratio": bands.bass_mid_ratio(band_energy),
            "tempo_bpm": rhythm.tempo_bpm(beat),
            "rhythm_stability": rhythm.rhythm_stability(beat),
            "transient_density": rhythm.transient_density(onsets, self.duration_s),
            "silence_ratio": dynamics.silence_ratio(mean_square),
            "spectral_centroid": spectral_shape.spectral_centroid(self._centroid_sum, active),
            "spectral_rolloff": spectral_shape.spectral_rolloff(self._rolloff_sum, active),
            "spectral_flatness": spectral_shape.spectral_flatness(self._flatness_sum, active),
            "harmonic_ratio": harmonicity.harmonic_ratio(self._tonal_power, self._audible_power),
            "pitch_stability": harmonicity.pitch_stability(self._pitch_same, self._pitch_pairs),
            "chroma_energy": harmonicity.chroma_energy(self._chroma_sum, active),
            "dynamic_range_variation": loudness.dynamic_range_variation(energy),
            "loudness_variation_std": loudness.loudness_variation_std(energy),
            "peak_consistency": dynamics.peak_consistency(mean_square, peak),
            "stereo_width": stereo.stereo_width(self._ll, self._rr, self._lr),
            "phase_correlation": stereo.phase_correlation(self._ll, self._rr, self._lr),
        }
        result = {name: float(values[name]) for name in DIMENSIONS}
        bad = [name for name, v in result.items() if not np.isfinite(v)]
        if bad:  # a bug, never data: refuse to emit it
            raise AnalysisError(ErrorCode.INTERNAL, f"non-finite values for {', '.join(bad)}", stage="analyse")
        return result


def fingerprint_of(samples: np.ndarray, sample_rate: int, block: int = 1 << 16) -> dict[str, float]:
    """Fingerprint of an in-memory signal shaped (n,) or (n, channels); used by tests and tools."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[:, None]
    acc = FingerprintAccumulator(sample_rate, samples.shape[1])
    for start in range(0, len(samples), block):
        acc.add(samples[start:start + block])
    return acc.finish()
