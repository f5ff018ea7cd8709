"""The Python engine's pure computation: numpy in, numbers out.

One module per family of ``docs/fingerprint-spec.md`` section 4, and in it
one public function per dimension, named as the spec names the dimension
(docstring: formula, units, range, spec section), in the manner of librosa's
feature modules. Each takes the whole-track sums or arrays the accumulator
keeps and returns the number:

=================================  ==================  =================================================
spec family (sections)             module              dimension functions
=================================  ==================  =================================================
bands / balance (4.1-4.7, 4.10)    ``bands``           ``sub_bass_pct``, ``bass_pct``, ``low_mid_pct``,
                                                       ``mid_pct``, ``upper_mid_pct``, ``presence_pct``,
                                                       ``air_pct``, ``bass_mid_ratio``
loudness (4.8, 4.21, 4.22)         ``loudness``        ``lufs``, ``dynamic_range_variation``,
                                                       ``loudness_variation_std``
levels / dynamics (4.9, 4.14,      ``dynamics``        ``crest_db``, ``silence_ratio``,
4.23)                                                  ``peak_consistency``
rhythm (4.11-4.13)                 ``rhythm``          ``tempo_bpm``, ``rhythm_stability``,
                                                       ``transient_density``
spectral shape (4.15-4.17)         ``spectral_shape``  ``spectral_centroid``, ``spectral_rolloff``,
                                                       ``spectral_flatness``
harmonicity (4.18-4.20)            ``harmonicity``     ``harmonic_ratio``, ``pitch_stability``,
                                                       ``chroma_energy``
stereo (4.24, 4.25)                ``stereo``          ``stereo_width``, ``phase_correlation``
=================================  ==================  =================================================

The signals they read (spec section 3) come from ``frames`` (geometry, bin
frequencies, silence threshold, log floor) and ``accumulator``, which streams
a track through every family block by block, so memory does not grow with
track length, keeps the running sums, and builds the result by name, one
function call per dimension. The normative text is
``docs/fingerprint-spec.md``; this package is its executable form and the
reference the Rust engine is checked against.
"""

from trackprint.pyengine.features.accumulator import FingerprintAccumulator, fingerprint_of
from trackprint.pyengine.features.frames import FrameParams, frame_params

__all__ = ["FingerprintAccumulator", "fingerprint_of", "FrameParams", "frame_params"]
