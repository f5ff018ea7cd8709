"""Frame geometry as a function of the sample rate, and what every spectral
family shares (spec section 3).

All durations are chosen at 44.1 kHz and scaled by the power of two nearest to
``sample_rate / 44100``, so that every analysis works on power-of-two FFT sizes
and a frame lasts about the same time at 8 kHz and at 192 kHz.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 384_000

SILENCE_MEAN_SQUARE = 1e-6  # -60 dBFS: below this a sub-block or frame is "silent"

SPECTRAL_FRAME_AT_44K = 8192  # ~186 ms, not overlapped: resolves 50 Hz from 60 Hz for the band split
ONSET_FRAME = 512  # at the decimated onset rate (~46 ms at 11 kHz)
ONSET_HOP = 128  # ~11.6 ms at 11 kHz
ONSET_DECIMATION_AT_44K = 4  # onset analysis runs at ~11 kHz

# Floor of the power before its logarithm, ln max(P, floor) (spec 4.17, 4.18): the square of
# librosa's amin 1e-10 as Python computes it (1.0000000000000001e-20, not the literal 1e-20).
LOG_POWER_FLOOR = 1e-10 ** 2


@dataclass(frozen=True)
class FrameParams:
    sample_rate: int
    sub_block: int  # samples in one 100 ms loudness sub-block (libebur128's rounding)
    spectral_frame: int
    spectral_hop: int
    onset_decimation: int
    onset_frame: int = ONSET_FRAME
    onset_hop: int = ONSET_HOP

    @property
    def onset_rate(self) -> float:
        """Onset-envelope frames per second."""
        return self.sample_rate / self.onset_decimation / self.onset_hop


def rate_scale(sample_rate: int) -> float:
    """The power of two nearest to ``sample_rate / 44100`` (in log2), e.g. 1 for 48 kHz, 2 for 96 kHz."""
    return 2.0 ** round(math.log2(sample_rate / 44_100))


def frame_params(sample_rate: int) -> FrameParams:
    scale = rate_scale(sample_rate)
    spectral = int(SPECTRAL_FRAME_AT_44K * scale)
    return FrameParams(
        sample_rate=sample_rate,
        sub_block=(sample_rate + 5) // 10,
        spectral_frame=spectral,
        spectral_hop=spectral,
        onset_decimation=max(1, int(ONSET_DECIMATION_AT_44K * scale)),
    )


def bin_frequencies(sample_rate: int, n_fft: int) -> np.ndarray:
    """Bin frequencies of a spectral frame (spec 3.3): f_k = k * sr / N Hz for k = 0..N/2."""
    return np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)


def mean_over_active_frames(total: float, active_frames: int) -> float:
    """Mean of a per-frame statistic over the T active spectral frames (spec 3.3): total / T; 0 when T = 0."""
    return total / active_frames if active_frames else 0.0
