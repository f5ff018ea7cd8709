"""Stereo: spec 4.24 ``stereo_width``, 4.25 ``phase_correlation``.

Stereo image from the first two channels (front left and right).

Inputs are whole-track sums over samples: LL = sum L^2, RR = sum R^2,
LR = sum L*R (float64). Mono input is treated as L = R.
"""

from __future__ import annotations

import math


def stereo_width(ll: float, rr: float, lr: float) -> float:
    """``stereo_width`` (Spec 4.24): side energy share S^2 / (M^2 + S^2), M = (L+R)/2, S = (L-R)/2.

    = clamp((LL + RR - 2 LR) / (2 (LL + RR)), 0, 1). Ratio, 0..1; higher is
    wider: 0 = mono (L = R), 0.5 = uncorrelated channels (or one channel
    silent), 1 = out of phase (R = -L). 0 for silence.
    """
    total = ll + rr
    if total <= 0.0:
        return 0.0
    return min(1.0, max(0.0, (total - 2.0 * lr) / (2.0 * total)))


def phase_correlation(ll: float, rr: float, lr: float) -> float:
    """``phase_correlation`` (Spec 4.25): correlation LR / sqrt(LL RR) at lag 0, without mean removal.

    clamp(LR / sqrt(LL RR), -1, 1). Correlation, -1..+1: +1 = identical
    channels (mono), 0 = unrelated (or exactly one channel silent),
    -1 = polarity-inverted. Both channels silent count as identical (+1).
    """
    if ll <= 0.0 and rr <= 0.0:
        return 1.0
    if ll <= 0.0 or rr <= 0.0:
        return 0.0
    return min(1.0, max(-1.0, lr / math.sqrt(ll * rr)))
