"""Nearest tracks by fingerprint: the distance behind ``similar``, ``playlist``, the web page and beets.

Pure numpy. This docstring is the normative description of the distance.

The distance (:data:`DEFAULT`, ``"z-dedup-groups-mono"``)
----------------------------------------------------------

The 25 dimensions have different units (percent, LUFS, Hz, BPM, 0..1), so each kept dimension ``d`` is
standardised against the library itself:

    u_d(x) = clip((x - median_d) / s_d, -5, 5),   s_d = 1.4826 * MAD_d

(MAD = median absolute deviation, so s_d estimates the standard deviation without being dragged by
outliers; when MAD is 0, the interquartile range / 1.349, then the standard deviation, then 1; for
``tempo_bpm`` only the tracks that have a tempo count, for ``stereo_width`` only those that have a stereo
image).

Dimensions left out (:data:`REDUNDANT`): ``phase_correlation`` (equal to ``-stereo_width`` up to
r = -1.000 on real music), ``spectral_rolloff`` (r = 0.987 with ``spectral_centroid``), ``bass_mid_ratio``
(a function of the band shares): each counted a second time what another dimension already says.
``spectral_flatness`` is kept: version 1 dropped it (:data:`CODEC_SENSITIVE`: over all bins up to Nyquist
it read a codec's low-pass and noise floor, 0.5-1.6 robust spreads under MP3, AAC, Opus, Vorbis);
version 2 measures it over 20 Hz-12 kHz and it moves at most 0.08 spreads under any lossy codec.

Each feature group of :data:`GROUPS` (bands, level and dynamics, rhythm, spectral shape, harmonicity,
stereo) weighs the same in total: a kept dimension's weight ``w_d`` is 1 / (the number of kept
dimensions in its group). The distance of two tracks ``a``, ``b`` is the weighted root mean square of
the differences over the kept dimensions both have:

    d(a, b) = sqrt( sum_d m_d w_d (u_d(a) - u_d(b))^2 / sum_d m_d w_d )

where ``m_d`` is 1, except

- for ``tempo_bpm`` when either track has ``tempo_bpm`` 0: 0 means "no tempo found", not a very slow
  track, so that pair is compared on the other dimensions only;
- for the stereo columns (``stereo_width``) when either track has ``stereo_width`` 0: exactly 0 is a
  mono file (or identical channels), which carries no stereo image at all, not "the narrowest stereo";
  a mono copy of a stereo recording is the same music, so that pair is compared without the stereo group.

0 means identical kept values; ~1 means the tracks differ by about one typical spread per dimension.
Several seeds ``S``: a track's distance to the set is ``sqrt( mean_s d(x, s)^2 )``.

Why (the retrieval benchmark, ``trackprint eval-similarity``, docs/evaluation.md)
--------------------------------------------------------------------------------

Leave-one-out retrieval on 118 real tracks of five Debian game soundtracks (label = package; 8.2 h), mAP
with 95% bootstrap intervals, and codec identity (12 of the tracks re-encoded 9 ways: MP3 320/V5, AAC 128,
Opus 96, Vorbis q3, 48 kHz, mono, -6 dB, first 20 s cut; the variant's nearest original must be its own).
Fingerprint version 2, Rust engine: this distance mAP 0.537 [0.491, 0.584] (1-NN 0.712, 5-NN 0.780),
identity 106/107 = 99.1% (one variant the engine rejects as corrupt; the one miss a 20 s cut, own
original at rank 5). Against version 1 (version 1's numbers with version 1's distance, 0.512
[0.465, 0.561]) a paired gain of +0.026 [+0.012, +0.040]; baselines in the same run: 20 MFCC mean+std
0.481, bliss-audio 0.478, chance 0.259. Version 3 (only the tempo changed): 0.530 [0.484, 0.574], +0.018
[+0.004, +0.033] over version 1, identity 107/108; version 4 (the tempo again): 0.531 [0.485, 0.576], +0.032
[+0.020, +0.044] over version 1, identity 106/108 (every variant's score: ``docs/evaluation.md``; within
0.006 mAP of each other with group weights). What each choice does there (version 2):

- equal weight per feature group is the gain (+0.038 to +0.042 over ``"v1"`` on the same numbers for
  every z variant with it, intervals excluding 0; the same on version 1): version 1 let the 8 band columns
  carry a third of the distance;
- tempo 0 as missing: +0.006 [+0.003, +0.010] (5 of the 118 tracks have no tempo);
- mono as "no stereo image": no change to retrieval (no corpus track is mono) and codec identity from
  95.3% to 99.1%. Version 1's default missed 4 of 12 mono copies: ``stereo_width`` is the stereo group's
  only column once ``phase_correlation`` is out, carries a sixth of the distance and is the most useful
  dimension for retrieval here (-0.060 mAP without it), so a mono copy of a wide orchestral track ranked
  43rd and 82nd from its own original. Lowering the stereo group's weight instead (1/2) cost 0.019 mAP
  and still missed 4; moving ``stereo_width`` into the level group cost 0.044 mAP;
- ``spectral_flatness`` back: +0.001 [-0.001, +0.003] over leaving it out, not measurable either way;
  kept because the reason to drop it is gone and ``spectral_centroid`` no longer carries the spectral
  shape group alone (version 1's ablation: +0.022 mAP without centroid; now +0.001);
- the rank transform ties robust z (+0.005 [-0.007, +0.018] in favour of z, grouped and without the
  same columns); z is kept because it keeps how far apart values are (ranks put two separated clusters
  side by side when no track lies between them) and the meaning "~1 = one typical spread".

Eight variants beyond the twelve named ones were looked at on version 2 (flatness back; the stereo group
at half weight, z and rank; ``stereo_width`` in the level group; ``phase_correlation`` kept beside it;
mono as missing on the old default, on this one and on ``rank-dedup-groups``); two changes were adopted,
each for a reason that holds beyond this corpus. Version 2's numbers alone do not retrieve better than
version 1's: version 1's numbers with version 1's default (``"z-dedup-codec-groups"``) give 0.538, this
one on version 2 0.537 (+0.000 [-0.007, +0.006]); version 2's gains are tempo and codec robustness.

The variants measured are :data:`VARIANTS` (each a :class:`DistanceSpec`, selectable by name): version
1's distance (``"v1"``: the same z-scores over all 25 dimensions, equal weights, tempo 0 taken as a
value) and the rank (percentile) transform (``"rank..."``: ``u_d = sqrt(12) (F_d(x) - 1/2)`` with ``F_d``
the library's distribution function, kept as :data:`QUANTILES` quantiles per dimension and interpolated,
so it too stays O(n) in memory) among them. :func:`robust_scale` and :func:`standardise` are also the web
page's per-dimension z-scores and map.

The same distance on a large cached matrix
------------------------------------------

``trackprint similar`` and ``playlist`` keep the library's vectors ``v_d = sqrt(w_d) u_d`` (one row per
track, a missing tempo or stereo image stored as 0) as a float32 ``(n, D)`` matrix with each row's squared
norm and a "has it" flag per optional column (tempo, stereo) (trackprint/search.py caches them, with
the fitted model: medians and scales, and
the rank variants' quantile tables, :data:`QUANTILES` x 25 numbers: memory stays O(n)). With every dimension present, ``sum_d (v - c)^2 = |v|^2 - 2 v.c +
|c|^2``: the distance of every row to one point is one matrix-vector product. A missing optional value
only changes its own term and the denominator, which :func:`set_sq_distances` corrects row by row from
that column; several seeds are summed by their centroid (one product per group of seeds with the same
optional columns present: at most four). The nearest candidates found that way are re-scored exactly in float64
(:func:`exact_sq_distances`), so the reported distances are the definition's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trackprint.fingerprint import DIMENSIONS

Z_CLIP = 5.0
QUANTILES = 257  # points of each dimension's distribution function kept by the model
PROBS = np.linspace(0.0, 1.0, QUANTILES)
RANK_SCALE = float(np.sqrt(12.0))
TEMPO = DIMENSIONS.index("tempo_bpm")
STEREO = DIMENSIONS.index("stereo_width")

REDUNDANT = ("phase_correlation", "spectral_rolloff", "bass_mid_ratio")
CODEC_SENSITIVE = ("spectral_flatness",)

# feature groups, for the "equal weight per group" variants
GROUPS: dict[str, tuple[str, ...]] = {
    "bands": ("sub_bass_pct", "bass_pct", "low_mid_pct", "mid_pct", "upper_mid_pct", "presence_pct", "air_pct",
              "bass_mid_ratio"),
    "level and dynamics": ("lufs", "crest_db", "dynamic_range_variation", "loudness_variation_std",
                           "peak_consistency"),
    "rhythm": ("tempo_bpm", "rhythm_stability", "transient_density", "silence_ratio"),
    "spectral shape": ("spectral_centroid", "spectral_rolloff", "spectral_flatness"),
    "harmonicity": ("harmonic_ratio", "pitch_stability", "chroma_energy"),
    "stereo": ("stereo_width", "phase_correlation"),
}
assert sorted(sum(GROUPS.values(), ())) == sorted(DIMENSIONS)


@dataclass(frozen=True)
class DistanceSpec:
    """One way of measuring distance: the per-dimension transform, the dimensions left out, the weights."""

    name: str
    transform: str = "rank"  # "rank" (sqrt(12) * (percentile - 1/2)) or "robust_z" (clipped robust z-score)
    drop: tuple[str, ...] = ()
    group_weights: bool = False  # each group of GROUPS weighs the same in total
    missing_tempo: bool = True  # tempo_bpm 0 = no tempo: left out of that pair's mean
    missing_mono: bool = False  # stereo_width 0 (a mono file) = no stereo image: the stereo columns left out
    description: str = ""

    @property
    def columns(self) -> np.ndarray:
        return np.array([i for i, d in enumerate(DIMENSIONS) if d not in self.drop], dtype=int)

    def weights(self) -> np.ndarray:
        kept = [DIMENSIONS[i] for i in self.columns]
        if not self.group_weights:
            return np.ones(len(kept))
        sizes = {g: sum(1 for d in dims if d in kept) for g, dims in GROUPS.items()}
        group_of = {d: g for g, dims in GROUPS.items() for d in dims}
        return np.array([1.0 / sizes[group_of[d]] for d in kept])

    def optional(self) -> list[tuple[int, int]]:
        """(position among the kept columns, the raw column whose value 0 means "missing") of each column
        that may be missing: tempo_bpm (its own 0), and with ``missing_mono`` the stereo columns
        (stereo_width 0)."""
        out = []
        for j, col in enumerate(self.columns):
            if self.missing_tempo and col == TEMPO:
                out.append((j, TEMPO))
            elif self.missing_mono and DIMENSIONS[col] in GROUPS["stereo"]:
                out.append((j, STEREO))
        return out


_DEDUP = REDUNDANT
_DEDUP_CODEC = REDUNDANT + CODEC_SENSITIVE
VARIANTS: dict[str, DistanceSpec] = {s.name: s for s in [
    DistanceSpec("v1", "robust_z", missing_tempo=False,
                 description="version 1: robust z clipped at +-5, all 25, RMS; tempo 0 taken as a value"),
    DistanceSpec("v1-tempo-missing", "robust_z", description="v1 with tempo 0 left out of the pair's mean"),
    DistanceSpec("z-groups", "robust_z", group_weights=True, description="robust z, equal weight per group"),
    DistanceSpec("z-dedup-codec", "robust_z", drop=_DEDUP_CODEC,
                 description="robust z without the redundant and codec-sensitive columns"),
    DistanceSpec("z-dedup-groups", "robust_z", drop=_DEDUP, group_weights=True,
                 description="robust z without the redundant columns, equal weight per group"),
    DistanceSpec("z-dedup-codec-groups", "robust_z", drop=_DEDUP_CODEC, group_weights=True,
                 description="z-dedup-codec, equal weight per group"),
    DistanceSpec("rank", description="percentile (rank) transform, all 25"),
    DistanceSpec("rank-groups", group_weights=True, description="rank, equal weight per group"),
    DistanceSpec("rank-dedup", drop=_DEDUP,
                 description="rank without phase_correlation, spectral_rolloff, bass_mid_ratio"),
    DistanceSpec("rank-dedup-groups", drop=_DEDUP, group_weights=True,
                 description="rank-dedup, equal weight per group"),
    DistanceSpec("rank-dedup-codec", drop=_DEDUP_CODEC, description="rank-dedup without spectral_flatness"),
    DistanceSpec("rank-dedup-codec-groups", drop=_DEDUP_CODEC, group_weights=True,
                 description="rank-dedup-codec, equal weight per group"),
    DistanceSpec("z-dedup-groups-mono", "robust_z", drop=_DEDUP, group_weights=True, missing_mono=True,
                 description="z-dedup-groups, stereo_width 0 (a mono file) taken as no stereo image"),
]}
DEFAULT = VARIANTS["z-dedup-groups-mono"]


@dataclass(frozen=True)
class Geometry:
    """What the fast and exact distances need besides the vectors: the optional columns (positions among the
    kept ones: the tempo, and the stereo columns when a mono file counts as having no stereo image), their
    weights and the total weight."""

    optional: tuple[int, ...] = ()
    w_optional: tuple[float, ...] = ()
    w_total: float = 0.0


class DistanceModel:
    """A :class:`DistanceSpec` fitted to a library: the transform tables and the weights."""

    def __init__(self, spec: DistanceSpec, center: np.ndarray, scale: np.ndarray, quantiles: np.ndarray):
        self.spec = spec
        self.columns = spec.columns
        self.w = spec.weights()
        self.center = np.asarray(center, dtype=np.float64)  # per kept column (robust_z)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.quantiles = np.asarray(quantiles, dtype=np.float64)  # (QUANTILES, kept columns) (rank)
        self.optional = spec.optional()  # [(kept position, raw column deciding presence)]
        self.geometry = Geometry(tuple(j for j, _src in self.optional),
                                 tuple(float(self.w[j]) for j, _src in self.optional), float(self.w.sum()))

    @property
    def dims(self) -> int:
        return len(self.columns)

    @classmethod
    def fit(cls, raw: np.ndarray, spec: DistanceSpec = DEFAULT) -> "DistanceModel":
        full = np.asarray(raw, dtype=np.float64).reshape(-1, len(DIMENSIONS))
        x = full[:, spec.columns]
        source = dict(spec.optional())
        k = x.shape[1]
        center, scale = np.zeros(k), np.ones(k)
        quantiles = np.zeros((QUANTILES, k))
        for j in range(k):
            column = x[:, j]
            if j in source:  # fitted on the tracks that have the value (a tempo; a stereo image)
                column = column[full[:, source[j]] > 0]
            if len(column) == 0:
                continue
            c, s = robust_scale(column[:, None])
            center[j], scale[j] = c[0], s[0]
            quantiles[:, j] = np.quantile(column, PROBS)
        return cls(spec, center, scale, quantiles)

    def arrays(self) -> dict[str, np.ndarray]:
        """The fitted state, for an .npz (with :meth:`from_arrays`)."""
        return {"model_spec": np.array(self.spec.name), "model_center": self.center, "model_scale": self.scale,
                "model_quantiles": self.quantiles}

    @classmethod
    def from_arrays(cls, arrays) -> "DistanceModel":
        return cls(VARIANTS[str(arrays["model_spec"])], arrays["model_center"], arrays["model_scale"],
                   arrays["model_quantiles"])

    def percentiles(self, x: np.ndarray) -> np.ndarray:
        """F_d(x) of each kept column (0..1), by the quantile tables."""
        x = np.asarray(x, dtype=np.float64)
        out = np.empty_like(x)
        for j in range(x.shape[1]):
            out[:, j] = _interpolated_cdf(self.quantiles[:, j], x[:, j])
        return out

    def vectors(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(v, present): the rows' vectors (float64, (n, dims), weights applied, a missing value as 0) and
        whether each row has each optional column (bool (n, len(geometry.optional)))."""
        full = np.asarray(raw, dtype=np.float64).reshape(-1, len(DIMENSIONS))
        x = full[:, self.columns]
        if self.spec.transform == "robust_z":
            u = np.clip((x - self.center) / self.scale, -Z_CLIP, Z_CLIP)
        else:
            u = RANK_SCALE * (self.percentiles(x) - 0.5)
        v = u * np.sqrt(self.w)
        present = np.ones((len(v), len(self.optional)), dtype=bool)
        for i, (j, src) in enumerate(self.optional):
            present[:, i] = full[:, src] > 0
            v[~present[:, i], j] = 0.0
        return v, present


def _interpolated_cdf(q: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The distribution function given by sorted quantiles ``q`` at PROBS, at ``x`` (see the docstring)."""
    n = len(q)
    lo = np.searchsorted(q, x, side="left")
    hi = np.searchsorted(q, x, side="right")
    inner = np.clip(lo, 1, n - 1)
    x0, x1 = q[inner - 1], q[inner]
    width = x1 - x0
    frac = np.where(width > 0, (x - x0) / np.where(width > 0, width, 1.0), 0.5)
    p = PROBS[inner - 1] + np.clip(frac, 0.0, 1.0) * (PROBS[inner] - PROBS[inner - 1])
    p = np.where(lo == 0, 0.0, np.where(lo >= n, 1.0, p))
    tied = hi > lo
    p = np.where(tied, 0.5 * (PROBS[np.minimum(lo, n - 1)] + PROBS[np.clip(hi - 1, 0, n - 1)]), p)
    return p


# -- version 1's scaling (also the web page's z-scores) -------------------------------------------------

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


# -- distances ------------------------------------------------------------------------------------------

def _presence(present, n: int, g: Geometry) -> np.ndarray:
    """``present`` as bool (n, len(g.optional)); None: all present (a 1-D array is one optional column)."""
    k = len(g.optional)
    if present is None:
        return np.ones((n, k), dtype=bool)
    p = np.asarray(present, dtype=bool)
    return p.reshape(n, k)


def exact_sq_distances(v: np.ndarray, present: np.ndarray | None, seeds: np.ndarray,
                       seeds_present: np.ndarray | None, geometry: Geometry | None = None) -> np.ndarray:
    """d(x, S)^2 of every row of ``v`` to the seed set, by the definition (float64, row by seed)."""
    v = np.atleast_2d(np.asarray(v, dtype=np.float64))
    seeds = np.atleast_2d(np.asarray(seeds, dtype=np.float64))
    g = geometry or Geometry((), (), float(v.shape[1]))
    present = _presence(present, len(v), g)
    seeds_present = _presence(seeds_present, len(seeds), g)
    optional = list(g.optional)
    w_optional = np.asarray(g.w_optional, dtype=np.float64)
    total = np.zeros(len(v))
    for s, s_present in zip(seeds, seeds_present):
        diff2 = (v - s) ** 2
        if not optional:
            total += diff2.sum(axis=1) / g.w_total
            continue
        both = present & s_present
        diff2[:, optional] *= both
        total += diff2.sum(axis=1) / (g.w_total - (~both) @ w_optional)
    return total / len(seeds)


def set_sq_distances(z: np.ndarray, norms: np.ndarray, present: np.ndarray | None, seeds: np.ndarray,
                     seeds_present: np.ndarray | None, geometry: Geometry | None = None, *,
                     blas: bool = True) -> np.ndarray:
    """Approximate (float32) d(x, S)^2 of every row of ``z`` to the seed set, for ranking: one matrix-vector
    product per group of seeds with the same optional columns present, see the module docstring.
    ``blas=False``: numpy's own loop for the product, for a slice of tens of thousands of rows: OpenBLAS's
    threads cost more than the work there on a busy machine (22 ms against 4 ms for 58,000 rows on 2 shared
    cores)."""
    seeds = np.atleast_2d(np.asarray(seeds, dtype=np.float64))
    g = geometry or Geometry((), (), float(z.shape[1]))
    seeds_present = _presence(seeds_present, len(seeds), g)
    has = None
    total = np.zeros(len(z), dtype=np.float32)
    for pattern in np.unique(seeds_present, axis=0) if len(seeds) else []:
        group = seeds[(seeds_present == pattern).all(axis=1)]
        c = group.mean(axis=0).astype(np.float32)
        q = float(np.mean(np.einsum("ij,ij->i", group, group)))
        product = z @ c if blas else np.einsum("ij,j->i", z, c)
        num = norms - 2.0 * product + q
        den = np.float32(g.w_total)
        for i, (col, w) in enumerate(zip(g.optional, g.w_optional)):
            if pattern[i]:  # the seeds have it: rows without it drop the seeds' term
                if has is None:
                    has = _presence(present, len(z), g)
                t = float(np.mean(group[:, col] ** 2))
                num = num - np.where(has[:, i], 0.0, t).astype(np.float32)
                den = den - np.where(has[:, i], 0.0, w).astype(np.float32)
            else:  # the seeds lack it: every row drops its own term (0 for rows without it)
                zc = z[:, col]
                num = num - zc * zc
                den = den - np.float32(w)
        total += (num / den) * np.float32(len(group) / len(seeds))
    np.maximum(total, 0.0, out=total)
    return total


def squared_norms(z: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", z, z, dtype=np.float32)


def nearest_rows(z: np.ndarray, norms: np.ndarray, seeds: np.ndarray, k: int,
                 excluded: np.ndarray | None = None, *, present: np.ndarray | None = None,
                 seeds_present: np.ndarray | None = None, geometry: Geometry | None = None) -> list[tuple[int, float]]:
    """The ``k`` rows of ``z`` nearest to the set ``seeds`` (an (s, D) array of vectors), with their exact
    distances d(x, S), nearest first (equal distances: lower row first); ``excluded`` (a boolean mask) rows
    are never returned. ``present``/``seeds_present``/``geometry``: the optional (tempo) column, see
    :class:`DistanceModel` (None: every dimension present, unweighted)."""
    seeds = np.atleast_2d(np.asarray(seeds, dtype=np.float64))
    d2 = set_sq_distances(z, norms, present, seeds, seeds_present, geometry)
    if excluded is not None:
        d2[excluded] = np.inf
    n_finite = int(np.isfinite(d2).sum())
    k = min(k, n_finite)
    if k <= 0:
        return []
    wanted = min(n_finite, k + 16)  # a margin for float32 rounding, then exact float64 re-scoring
    candidates = np.argpartition(d2, wanted - 1)[:wanted] if wanted < len(d2) else np.arange(len(d2))
    candidates = candidates[np.isfinite(d2[candidates])]
    exact = exact_sq_distances(z[candidates], None if present is None else present[candidates], seeds,
                               seeds_present, geometry)
    order = np.lexsort((candidates, exact))[:k]
    return [(int(candidates[i]), float(np.sqrt(exact[i]))) for i in order]


def distance_matrix(raw: np.ndarray, spec: DistanceSpec = DEFAULT) -> np.ndarray:
    """All pairwise distances of a library's rows (float64, by the definition): the reference."""
    model = DistanceModel.fit(raw, spec)
    v, present = model.vectors(raw)
    out = np.empty((len(v), len(v)))
    for i in range(len(v)):
        out[i] = exact_sq_distances(v, present, v[i:i + 1], present[i:i + 1], model.geometry)
    np.fill_diagonal(out, 0.0)
    return np.sqrt(out)


def nearest(library: np.ndarray, query: np.ndarray, k: int, exclude: int | None = None,
            spec: DistanceSpec = DEFAULT) -> list[tuple[int, float]]:
    """Indices of the ``k`` library rows nearest to ``query`` (25 raw values) with their distances, nearest
    first; the model is fitted to ``library``."""
    model = DistanceModel.fit(library, spec)
    v, present = model.vectors(library)
    qv, qp = model.vectors(np.asarray(query)[None, :])
    distances = np.sqrt(exact_sq_distances(v, present, qv, qp, model.geometry))
    if exclude is not None:
        distances[exclude] = np.inf
    order = np.argsort(distances, kind="stable")[:k]
    return [(int(i), float(distances[i])) for i in order if np.isfinite(distances[i])]
