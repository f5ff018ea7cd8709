"""Nearest tracks by fingerprint: robust per-dimension scaling, then Euclidean distance.

Pure numpy. The 25 dimensions have different units (percent, LUFS, Hz, BPM,
0..1), so each is standardised against the library itself:

    z_d = clip((x_d - median_d) / s_d, -5, 5),   s_d = 1.4826 * MAD_d

(MAD = median absolute deviation, so s_d estimates the standard deviation
without being dragged by outliers; when MAD is 0, the interquartile range /
1.349, then the standard deviation, then 1 are used). The distance between
two tracks is the root mean square difference of their z-vectors:

    d(a, b) = sqrt( mean_d (z_a,d - z_b,d)^2 )

0 means identical fingerprints; 1 means they differ by about one typical
spread per dimension.
"""

from __future__ import annotations

import numpy as np

Z_CLIP = 5.0


def robust_scale(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(center, scale) per column: median and 1.4826 * MAD with fallbacks for constant columns."""
    x = np.asarray(matrix, dtype=np.float64)
    center = np.median(x, axis=0)
    scale = 1.4826 * np.median(np.abs(x - center), axis=0)
    q75, q25 = np.percentile(x, [75, 25], axis=0)
    iqr = (q75 - q25) / 1.349
    std = x.std(axis=0)
    for fallback in (iqr, std, np.ones_like(scale)):
        scale = np.where(scale > 0, scale, fallback)
    return center, scale


def standardise(matrix: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.clip((np.asarray(matrix, dtype=np.float64) - center) / scale, -Z_CLIP, Z_CLIP)


def nearest(library: np.ndarray, query: np.ndarray, k: int, exclude: int | None = None) -> list[tuple[int, float]]:
    """Indices of the ``k`` library rows nearest to ``query`` with their distances, nearest first."""
    center, scale = robust_scale(library)
    z = standardise(library, center, scale)
    q = standardise(query[None, :], center, scale)[0]
    distances = np.sqrt(np.mean((z - q) ** 2, axis=1))
    if exclude is not None:
        distances[exclude] = np.inf
    order = np.argsort(distances, kind="stable")[:k]
    return [(int(i), float(distances[i])) for i in order if np.isfinite(distances[i])]
