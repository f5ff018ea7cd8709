"""The codec part of the retrieval benchmark (trackprint/benchmarks/evaluation/codecs.py) on tiny arrays."""

import os

import numpy as np
import pytest

from trackprint.benchmarks.evaluation import codecs
from trackprint.fingerprint import DIMENSIONS
from trackprint.similarity import DEFAULT, VARIANTS

D = len(DIMENSIONS)
TEMPO = DIMENSIONS.index("tempo_bpm")


def _library(n=6, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)) * 10.0
    x[:, TEMPO] = np.linspace(80.0, 160.0, n)
    return x


def test_identity_finds_a_slightly_moved_copy_and_reports_a_miss_with_distances_and_rank():
    lib = _library()
    variants = np.vstack([lib[2] + 0.01, lib[4] * 1.0, lib[0]])  # near 2, exactly 4, and a copy of 0 ...
    own = np.array([2, 4, 5])  # ... said to come from 5: a miss that matched 0
    out = codecs.identity(lib, variants, own)
    assert list(out["hit"]) == [True, True, False]
    assert list(out["matched"]) == [2, 4, 0]
    assert out["d_matched"][1] == 0.0 and out["d_matched"][2] == 0.0
    assert out["d_own"][2] > 0 and out["d_own"][0] == pytest.approx(out["d_matched"][0])
    assert list(out["own_rank"][:2]) == [1, 1] and 2 <= out["own_rank"][2] <= len(lib)


def test_identity_uses_the_distance_given_dimensions_it_leaves_out_do_not_count():
    lib = _library()
    flat = DIMENSIONS.index("spectral_flatness")
    drops = VARIANTS["z-dedup-codec-groups"]  # version 1's default: without spectral_flatness
    assert "spectral_flatness" in drops.drop and "spectral_flatness" not in DEFAULT.drop
    moved = lib[1].copy()
    moved[flat] = lib[3, flat] + 1e6  # a huge move in a dimension that distance ignores
    assert codecs.identity(lib, moved[None, :], np.array([1]), drops)["hit"][0]
    # a variant whose every kept dimension sits on track 3 matches 3, whatever its flatness
    other = lib[3].copy()
    other[flat] = lib[1, flat]
    assert codecs.identity(lib, other[None, :], np.array([1]), drops)["matched"][0] == 3
    # the default: a mono copy (stereo_width 0) is compared without the stereo columns, so it is its own
    mono = lib[1].copy()
    mono[DIMENSIONS.index("stereo_width")] = 0.0
    mono[DIMENSIONS.index("phase_correlation")] = 1.0
    out = codecs.identity(lib, mono[None, :], np.array([1]))
    assert out["hit"][0] and out["d_own"][0] == pytest.approx(0.0)
    # a distance that keeps flatness sees the move
    keeps = VARIANTS["z-dedup-groups"]
    assert "spectral_flatness" not in keeps.drop
    far = lib[1].copy()
    far[flat] = lib[1, flat] + 1e6
    assert codecs.identity(lib, far[None, :], np.array([1]), keeps)["d_own"][0] > 0.5


def test_sensitivity_is_the_median_of_moves_in_robust_spreads():
    originals = np.zeros((3, D))
    variants = np.zeros((3, D))
    variants[:, 0] = [1.0, 3.0, 10.0]  # |moves| 1, 3, 10: median 3
    variants[:, 1] = [-2.0, 0.0, 0.0]  # median 0
    spread = np.ones(D)
    spread[0] = 2.0
    moves = codecs.sensitivity(spread, originals, variants)
    assert moves[0] == pytest.approx(1.5) and moves[1] == 0.0 and moves.shape == (D,)
    with pytest.raises(ValueError):
        codecs.sensitivity(spread, originals, variants[:2])


def test_spread_is_1_4826_mad_of_the_originals():
    x = np.tile(np.array([[1.0], [2.0], [3.0], [4.0], [100.0]]), (1, D))
    assert codecs.spread_of(x) == pytest.approx(np.full(D, 1.4826 * 1.0))


def test_flagged_only_under_the_target_kinds_and_above_the_threshold():
    moves = {"mp3_v5": {"a": 0.51, "b": 0.5}, "mono": {"a": 3.0}, "opus_96": {"b": 0.9}}
    flags = codecs.flagged(moves)
    assert flags == [{"kind": "opus_96", "dimension": "b", "value": 0.9},
                     {"kind": "mp3_v5", "dimension": "a", "value": 0.51}]
    assert codecs.flagged({"aac_128": {"a": 0.2}}) == []


def test_choose_tracks_spreads_over_labels_deterministically():
    paths = [f"a{i}" for i in range(10)] + ["b0", "b1"] + [f"c{i}" for i in range(5)]
    labels = [p[0] for p in paths]
    chosen = codecs.choose_tracks(paths, labels, 7)
    assert chosen == codecs.choose_tracks(list(reversed(paths)), list(reversed(labels)), 7)
    by = {lab: [p for p in chosen if p[0] == lab] for lab in "abc"}
    assert len(by["b"]) == 2 and len(by["a"]) == 3 and len(by["c"]) == 2  # b runs out, the others go on
    assert by["a"] == ["a1", "a5", "a8"]  # evenly spaced in the label's sorted list
    assert len(set(chosen)) == 7
    assert sorted(codecs.choose_tracks(paths, labels, 100)) == sorted(paths)


def test_a_variant_older_than_its_original_is_made_again(tmp_path):
    original = tmp_path / "a.ogg"
    original.write_bytes(b"x")
    out = tmp_path / "v" / "mp3_v5.mp3"
    assert not codecs.is_made(str(original), out)
    out.parent.mkdir()
    out.write_bytes(b"")
    assert not codecs.is_made(str(original), out)  # empty: an interrupted encode
    out.write_bytes(b"mp3")
    assert codecs.is_made(str(original), out)
    st = original.stat()
    os.utime(original, ns=(st.st_atime_ns, out.stat().st_mtime_ns + 10**9))  # the original replaced later
    assert not codecs.is_made(str(original), out)
