"""The 25 fingerprint dimensions: names, order, version and validation.

The normative definitions are in ``docs/fingerprint-spec.md``; the executable
form is the package ``pyengine/features`` (and ``rust-server/src/features``). Bump :data:`FINGERPRINT_VERSION` whenever any
value for any input could change (a formula, a constant, a frame size, a
decoder choice that changes samples): old rows then show up as stale.
"""

from __future__ import annotations

import math
from typing import Mapping

FINGERPRINT_VERSION = 4  # 2: tempo by metrical comb, spectral shape over 20 Hz-12 kHz; 3: tempo on the complex-domain
#   envelope; 4: tempo agreed among the comb and three period paths (docs/fingerprint-spec.md section 9)

# Versions whose rows the persister accepts (older ones are stored and shown as stale).
KNOWN_VERSIONS = frozenset({1, 2, 3, 4})

DIMENSIONS: tuple[str, ...] = (
    # spectral balance: percent of 20 Hz..20 kHz power per band
    "sub_bass_pct", "bass_pct", "low_mid_pct", "mid_pct", "upper_mid_pct", "presence_pct", "air_pct",
    # loudness
    "lufs", "crest_db", "bass_mid_ratio",
    # tempo and rhythm
    "tempo_bpm", "rhythm_stability", "transient_density", "silence_ratio",
    # spectral shape
    "spectral_centroid", "spectral_rolloff", "spectral_flatness",
    # harmonicity
    "harmonic_ratio", "pitch_stability", "chroma_energy",
    # dynamics
    "dynamic_range_variation", "loudness_variation_std", "peak_consistency",
    # stereo image
    "stereo_width", "phase_correlation",
)
assert len(DIMENSIONS) == 25

# Closed ranges every value must lie in (the spec's "range" column). Values
# outside are a bug in an engine, and the persister rejects them.
RANGES: dict[str, tuple[float, float]] = {
    **{name: (0.0, 100.0) for name in DIMENSIONS[:7]},
    "lufs": (-70.0, 40.0),  # float files may exceed full scale
    "crest_db": (0.0, 200.0),
    "bass_mid_ratio": (0.0, 1.0),
    "tempo_bpm": (0.0, 240.0),
    "rhythm_stability": (0.0, 1.0),
    "transient_density": (0.0, 50.0),
    "silence_ratio": (0.0, 1.0),
    "spectral_centroid": (0.0, 192000.0),  # Nyquist of the highest supported rate
    "spectral_rolloff": (0.0, 192000.0),
    "spectral_flatness": (0.0, 1.0),
    "harmonic_ratio": (0.0, 1.0),
    "pitch_stability": (0.0, 1.0),
    "chroma_energy": (0.0, 1.0),
    "dynamic_range_variation": (0.0, 100.0),
    "loudness_variation_std": (0.0, 100.0),
    "peak_consistency": (0.0, 1.0),
    "stereo_width": (0.0, 1.0),
    "phase_correlation": (-1.0, 1.0),
}

# Engine parity tolerance (absolute) per dimension: how far the Rust engine may
# be from the Python engine on the same decoded samples. See the spec.
PARITY_TOLERANCE: dict[str, float] = {
    **{name: 1.0 for name in DIMENSIONS[:7]},  # percent points
    "lufs": 0.1,
    "crest_db": 0.1,
    "bass_mid_ratio": 0.01,
    "tempo_bpm": 1.0,
    "rhythm_stability": 0.01,
    "transient_density": 0.1,
    "silence_ratio": 0.01,
    "spectral_centroid": 20.0,
    "spectral_rolloff": 50.0,
    "spectral_flatness": 0.01,
    "harmonic_ratio": 0.01,
    "pitch_stability": 0.01,
    "chroma_energy": 0.01,
    "dynamic_range_variation": 0.2,
    "loudness_variation_std": 0.1,
    "peak_consistency": 0.01,
    "stereo_width": 0.01,
    "phase_correlation": 0.01,
}


def validate(values: Mapping[str, float]) -> list[str]:
    """Return every problem with a fingerprint (empty list when valid).

    Checks: exactly the 25 names, each a finite float inside its range.
    """
    problems: list[str] = []
    missing = [n for n in DIMENSIONS if n not in values]
    extra = [n for n in values if n not in RANGES]
    if missing:
        problems.append(f"missing dimensions: {', '.join(missing)}")
    if extra:
        problems.append(f"unknown dimensions: {', '.join(sorted(extra))}")
    for name in DIMENSIONS:
        if name not in values:
            continue
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{name} is not a number: {value!r}")
            continue
        if not math.isfinite(value):
            problems.append(f"{name} is not finite: {value!r}")
            continue
        low, high = RANGES[name]
        if not low <= value <= high:
            problems.append(f"{name}={value} outside [{low}, {high}]")
    return problems
