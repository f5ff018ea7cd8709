"""Robust scaling and nearest-neighbour search (pure numpy)."""

import numpy as np

from trackprint.similarity import Z_CLIP, nearest, robust_scale, standardise


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


def test_nearest_orders_by_distance_and_excludes_the_query():
    rng = np.random.default_rng(1)
    library = rng.normal(size=(50, 25))
    library[7] = library[3] + 0.01  # a near-duplicate of row 3
    matches = nearest(library, library[3], k=5, exclude=3)
    assert matches[0][0] == 7
    distances = [d for _, d in matches]
    assert distances == sorted(distances) and 3 not in [i for i, _ in matches]
    assert nearest(library, library[3], k=1)[0] == (3, 0.0)
