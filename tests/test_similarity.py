"""The distance (trackprint/similarity.py): its transforms, the missing tempo, and the fast path against the
definition (pure numpy)."""

import numpy as np
import pytest

from trackprint.fingerprint import DIMENSIONS
from trackprint.similarity import (DEFAULT, PROBS, RANK_SCALE, TEMPO, VARIANTS, Z_CLIP, DistanceModel,
                                   DistanceSpec, distance_matrix, exact_sq_distances, nearest, nearest_rows,
                                   robust_scale, set_sq_distances, squared_norms, standardise)


def _library(n=300, seed=0, no_tempo=0.1):
    rng = np.random.default_rng(seed)
    x = rng.gamma(2.0, 1.0, size=(n, len(DIMENSIONS)))
    x[:, TEMPO] = rng.uniform(60, 200, n)
    x[rng.random(n) < no_tempo, TEMPO] = 0.0  # "no tempo found"
    x[: n // 3, DIMENSIONS.index("silence_ratio")] = 0.0  # a pile of ties, as real libraries have
    return x


def test_robust_scale_ignores_an_outlier_and_handles_constant_columns():
    rng = np.random.default_rng(0)
    x = rng.normal(10.0, 2.0, size=(500, 3))
    x[0, 0] = 1e6  # one absurd value must not blow up the scale
    x[:, 2] = 7.0  # a constant column gets a usable scale, not 0
    center, scale = robust_scale(x)
    assert abs(center[0] - 10.0) < 0.3 and abs(scale[0] - 2.0) < 0.3
    assert scale[2] == 1.0 and np.all(np.isfinite(scale))
    z = standardise(x, center, scale)
    assert z[0, 0] == Z_CLIP


def test_the_default_is_robust_z_by_group_without_the_redundant_columns_and_mono_without_stereo():
    assert DEFAULT.name == "z-dedup-groups-mono"
    assert DEFAULT.transform == "robust_z" and DEFAULT.missing_tempo and DEFAULT.group_weights
    assert DEFAULT.missing_mono
    kept = [DIMENSIONS[i] for i in DEFAULT.columns]
    for gone in ("phase_correlation", "spectral_rolloff", "bass_mid_ratio"):
        assert gone not in kept
    # version 2's spectral_flatness (20 Hz-12 kHz) moves <= 0.08 spreads under codecs: it is back
    for kept_one in ("tempo_bpm", "stereo_width", "spectral_centroid", "spectral_flatness"):
        assert kept_one in kept
    # each feature group weighs the same: the 7 bands share what stereo_width alone weighs
    w = dict(zip(kept, DEFAULT.weights()))
    assert w["stereo_width"] == 1.0 and w["spectral_centroid"] == 0.5 and w["spectral_flatness"] == 0.5
    assert sum(w[d] for d in kept if d.endswith("_pct")) == pytest.approx(1.0)


def test_a_mono_file_has_no_stereo_image_in_the_default_distance():
    x = _library()
    sw = DIMENSIONS.index("stereo_width")
    model = DistanceModel.fit(x, DEFAULT)
    a = x[3].copy()
    mono = a.copy()
    mono[sw] = 0.0  # a mono file: stereo_width 0 exactly (phase_correlation 1)
    mono[DIMENSIONS.index("phase_correlation")] = 1.0
    v, present = model.vectors(np.vstack([a, mono]))
    kept = [DIMENSIONS[i] for i in DEFAULT.columns]
    assert present.shape == (2, 2)  # tempo, stereo_width
    assert present[0].all() and list(present[1]) == [True, False]
    # the mono copy is at distance 0 from its stereo original (nothing else differs)
    assert exact_sq_distances(v[:1], present[:1], v[1:], present[1:], model.geometry)[0] == pytest.approx(0.0)
    # without the rule (the version 1 default's dimensions) the stereo group's whole weight separates them
    old = DistanceModel.fit(x, VARIANTS["z-dedup-codec-groups"])
    ov, op = old.vectors(np.vstack([a, mono]))
    assert exact_sq_distances(ov[:1], op[:1], ov[1:], op[1:], old.geometry)[0] > 0.05
    # the stereo scale is fitted on the tracks that have a stereo image
    y = x.copy()
    y[:100, sw] = 0.0
    fitted = DistanceModel.fit(y, DEFAULT)
    j = kept.index("stereo_width")
    assert fitted.center[j] == pytest.approx(np.median(y[100:, sw]))


def test_rank_transform_is_the_mid_rank_percentile():
    x = _library(n=1001)
    model = DistanceModel.fit(x, DistanceSpec("t", drop=()))
    col = DIMENSIONS.index("lufs")
    values = x[:, col]
    p = model.percentiles(x)[:, col]
    # the library's own values: their rank / (n - 1), within the table's resolution
    ranks = np.argsort(np.argsort(values)) / (len(values) - 1)
    assert np.max(np.abs(p - ranks)) < 1.5 / (len(PROBS) - 1)
    # below the smallest value 0, above the largest 1, monotone in between
    probe = np.linspace(values.min() - 1, values.max() + 1, 500)
    row = np.tile(x[0], (500, 1))
    row[:, col] = probe
    got = model.percentiles(row)[:, col]
    assert got[0] == 0.0 and got[-1] == 1.0 and np.all(np.diff(got) >= 0)
    # a value tied with a third of the library sits in the middle of that third
    silence = DIMENSIONS.index("silence_ratio")
    assert model.percentiles(x[:1])[0, silence] == pytest.approx(1 / 6, abs=0.01)
    # the scale: a uniform percentile has a standard deviation of 1 after the transform
    v, _present = model.vectors(x)
    assert np.std(v[:, col]) == pytest.approx(1.0, abs=0.02)
    assert RANK_SCALE == pytest.approx(np.sqrt(12))


def test_v1_is_the_clipped_robust_z_rms_over_all_25():
    x = _library()
    d = distance_matrix(x, VARIANTS["v1"])
    z = standardise(x, *robust_scale(x))
    assert d[3, 7] == pytest.approx(np.sqrt(np.mean((z[3] - z[7]) ** 2)))


def test_a_missing_tempo_is_left_out_of_the_pair_not_taken_as_0_bpm():
    x = _library()
    spec = DistanceSpec("t", "robust_z")  # unweighted, every dimension kept, tempo may be missing
    model = DistanceModel.fit(x, spec)
    a, b = np.flatnonzero(x[:, TEMPO] > 0)[:2]
    no_tempo = x[a].copy()
    no_tempo[TEMPO] = 0.0
    v, present = model.vectors(np.vstack([x[a], x[b], no_tempo]))
    assert list(present[:, 0]) == [True, True, False]
    d2 = exact_sq_distances(v[1:2], present[1:2], v[2:3], present[2:3], model.geometry)[0]
    others = [i for i in range(25) if i != TEMPO]
    assert d2 == pytest.approx(np.mean((v[0, others] - v[1, others]) ** 2))  # the mean over the other 24
    # the tempo's scale is fitted on the tracks that have one
    assert model.center[TEMPO] == pytest.approx(np.median(x[x[:, TEMPO] > 0, TEMPO]))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_fast_set_distances_equal_the_definition(name):
    x = _library(n=400, seed=5, no_tempo=0.2)
    x[np.random.default_rng(7).random(400) < 0.2, DIMENSIONS.index("stereo_width")] = 0.0  # mono files
    model = DistanceModel.fit(x, VARIANTS[name])
    v, present = model.vectors(x)
    z = v.astype(np.float32)
    norms = squared_norms(z)
    rng = np.random.default_rng(2)
    reference = distance_matrix(x, VARIANTS[name])
    for seeds in ([0], [1, 2, 3], list(rng.choice(400, 40, replace=False))):
        seeds = np.array(seeds)
        exact = exact_sq_distances(v, present, v[seeds], present[seeds], model.geometry)
        fast = set_sq_distances(z, norms, present, v[seeds], present[seeds], model.geometry)
        assert np.max(np.abs(fast - exact)) < 1e-4 * max(1.0, exact.max()), name
        # several seeds: the root mean square of the distances to each
        one_by_one = np.mean([reference[s] ** 2 for s in seeds], axis=0)
        assert exact == pytest.approx(one_by_one, rel=1e-9, abs=1e-12)
    # and the k nearest with exact distances, lower row first on ties
    found = nearest_rows(z, norms, v[[4, 9]], 10, present=present, seeds_present=present[[4, 9]],
                         geometry=model.geometry)
    exact = exact_sq_distances(z.astype(np.float64), present, v[[4, 9]], present[[4, 9]], model.geometry)
    order = np.lexsort((np.arange(len(exact)), exact))[:10]
    assert [i for i, _ in found] == list(order)
    assert [d for _, d in found] == pytest.approx(list(np.sqrt(exact[order])))


def test_the_model_survives_an_npz_round_trip(tmp_path):
    x = _library()
    model = DistanceModel.fit(x)
    np.savez(tmp_path / "m.npz", **model.arrays())
    with np.load(tmp_path / "m.npz") as npz:
        again = DistanceModel.from_arrays(npz)
    assert again.spec == model.spec
    assert np.array_equal(again.vectors(x)[0], model.vectors(x)[0])


def test_nearest_orders_by_distance_and_excludes_the_query():
    rng = np.random.default_rng(1)
    library = rng.normal(size=(50, 25))
    library[:, TEMPO] = rng.uniform(60, 200, 50)
    library[7] = library[3] + 0.01  # a near-duplicate of row 3
    matches = nearest(library, library[3], k=5, exclude=3)
    assert matches[0][0] == 7
    distances = [d for _, d in matches]
    assert distances == sorted(distances) and 3 not in [i for i, _ in matches]
    assert nearest(library, library[3], k=1)[0] == (3, 0.0)
