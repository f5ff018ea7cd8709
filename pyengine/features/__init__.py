"""The Python engine's pure computation: numpy in, numbers out.

Each module holds the features of one family, one function per feature, with
the formula, units and reference in its docstring; ``accumulator`` streams a
track through them block by block so memory does not grow with track length.
The normative text is ``docs/fingerprint-spec.md``; this package is its
executable form and the reference the Rust engine is checked against.
"""

from trackprint.pyengine.features.accumulator import FingerprintAccumulator, fingerprint_of
from trackprint.pyengine.features.frames import FrameParams, frame_params

__all__ = ["FingerprintAccumulator", "fingerprint_of", "FrameParams", "frame_params"]
