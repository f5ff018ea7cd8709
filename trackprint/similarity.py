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


# -- the same distance on a large cached matrix ---------------------------------------------------------
#
# ``trackprint similar`` and ``playlist`` keep the library's z-scores as a float32 (n, 25) matrix with each
# row's squared norm (trackprint/search.py caches it). The distance of every row to one point c is then one
# matrix-vector product: mean_d (z - c)^2 = (|z|^2 - 2 z.c + |c|^2) / D, a few milliseconds for 500,000
# rows. The nearest candidates found that way are re-scored exactly in float64, so the reported distances
# equal :func:`nearest`'s.
#
# Several seeds: a track's distance to a set of seeds S is the root mean square of its distances to each:
#
#     d(x, S) = sqrt( mean_s d(x, s)^2 ) = sqrt( d(x, c)^2 + spread^2 ),  c = mean_s z_s,
#     spread^2 = mean_s d(s, c)^2
#
# so ranking by the distance to the seeds' centroid ranks by the distance to the set, in one pass.

def squared_norms(z: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", z, z, dtype=np.float32)


def fast_distances(z: np.ndarray, norms: np.ndarray, point: np.ndarray, *, blas: bool = True) -> np.ndarray:
    """Approximate (float32) distances of every row of ``z`` to ``point``, for ranking only. ``blas=False``:
    numpy's own loop for the product, for a slice of tens of thousands of rows: OpenBLAS's threads cost
    more than the work there on a busy machine (22 ms against 4 ms for 58,000 rows on 2 shared cores)."""
    c = np.asarray(point, dtype=np.float32)
    product = z @ c if blas else np.einsum("ij,j->i", z, c)
    d2 = (norms - 2.0 * product + float(c @ c)) / z.shape[1]
    np.maximum(d2, 0.0, out=d2)
    return d2


def nearest_rows(z: np.ndarray, norms: np.ndarray, seeds: np.ndarray, k: int,
                 excluded: np.ndarray | None = None) -> list[tuple[int, float]]:
    """The ``k`` rows of ``z`` nearest to the set ``seeds`` (an (s, 25) array of z-vectors), with their exact
    distances d(x, S) (see above), nearest first; ``excluded`` (a boolean mask) rows are never returned."""
    seeds = np.atleast_2d(np.asarray(seeds, dtype=np.float64))
    centroid = seeds.mean(axis=0)
    spread2 = float(np.mean((seeds - centroid) ** 2))
    d2 = fast_distances(z, norms, centroid)
    if excluded is not None:
        d2[excluded] = np.inf
    n_finite = int(np.isfinite(d2).sum())
    k = min(k, n_finite)
    if k <= 0:
        return []
    wanted = min(n_finite, k + 16)  # a margin for float32 rounding, then exact float64 re-scoring
    candidates = np.argpartition(d2, wanted - 1)[:wanted] if wanted < len(d2) else np.arange(len(d2))
    candidates = candidates[np.isfinite(d2[candidates])]
    exact = np.mean((z[candidates].astype(np.float64) - centroid) ** 2, axis=1) + spread2
    order = np.lexsort((candidates, exact))[:k]
    return [(int(candidates[i]), float(np.sqrt(exact[i]))) for i in order]
