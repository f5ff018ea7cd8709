"""The retrieval benchmark's scores (trackprint/benchmarks/evaluation/metrics.py) on hand-computed cases."""

import itertools

import numpy as np
import pytest

from trackprint.benchmarks.evaluation import metrics
from trackprint.benchmarks.evaluation.tempo_agreement import agrees, other_level


def _distances_from_rankings(rankings: dict[int, list[int]], n: int) -> np.ndarray:
    """A distance matrix whose row q ranks the others in the given order."""
    d = np.full((n, n), 100.0)
    for q, order in rankings.items():
        d[q, q] = 0.0
        for rank, other in enumerate(order, start=1):
            d[q, other] = float(rank)
    return d


def test_average_precision_by_hand():
    # relevant at ranks 1 and 3: (1/1 + 2/3) / 2
    assert metrics.average_precision([True, False, True, False]) == pytest.approx((1 + 2 / 3) / 2)
    # relevant at ranks 2 and 4: (1/2 + 2/4) / 2
    assert metrics.average_precision([False, True, False, True]) == pytest.approx(0.5)
    assert metrics.average_precision([True, True, False]) == 1.0
    assert np.isnan(metrics.average_precision([False, False]))


def test_per_query_map_1nn_5nn_on_a_tiny_library():
    labels = ["a", "a", "b", "b", "b"]
    rankings = {
        0: [1, 2, 3, 4],  # its one relevant first: AP 1
        1: [2, 3, 0, 4],  # relevant at rank 3: AP 1/3
        2: [3, 0, 4, 1],  # relevant at ranks 1, 3: (1 + 2/3) / 2
        3: [0, 1, 2, 4],  # ranks 3, 4: (1/3 + 2/4) / 2
        4: [2, 3, 0, 1],  # ranks 1, 2: 1
    }
    scores = metrics.per_query(_distances_from_rankings(rankings, 5), labels)
    expected_ap = [1.0, 1 / 3, (1 + 2 / 3) / 2, (1 / 3 + 0.5) / 2, 1.0]
    assert scores.ap == pytest.approx(expected_ap)
    assert list(scores.nn1) == [1, 0, 1, 0, 1]
    # 5-NN with 4 others: the majority of all four; query 0/1 (a): 1 a vs 3 b -> b wins: wrong; b queries:
    # 2 b vs 2 a, the tie goes to the label ranked first
    assert list(scores.nn5) == [0, 0, 1, 0, 1]
    assert metrics.summary(scores, rounds=50)["map"]["mean"] == pytest.approx(np.mean(expected_ap))


def test_a_query_without_any_relevant_track_is_not_scored():
    labels = ["a", "a", "b"]
    d = metrics.pairwise_euclidean(np.array([[0.0], [1.0], [5.0]]))
    scores = metrics.per_query(d, labels)
    assert list(scores.queries) == [0, 1]
    assert list(scores.ap) == [1.0, 1.0]


def test_ties_keep_index_order():
    d = np.zeros((3, 3))  # everything at distance 0
    assert list(metrics.ranking(d, 1)) == [0, 2]


def test_expected_random_ap_matches_enumeration():
    for relevant, others in [(1, 4), (2, 4), (3, 5), (2, 6)]:
        aps = []
        for chosen in itertools.combinations(range(others), relevant):
            rel = np.zeros(others, dtype=bool)
            rel[list(chosen)] = True
            aps.append(metrics.average_precision(rel))
        assert metrics.expected_random_ap(relevant, others) == pytest.approx(np.mean(aps)), (relevant, others)


def test_chance_levels():
    labels = ["a"] * 3 + ["b"] * 3
    ch = metrics.chance(labels, rounds=100)
    assert ch["nn1"] == pytest.approx(2 / 5)
    assert ch["map"] == pytest.approx(metrics.expected_random_ap(2, 5))
    assert ch["nn5"] == 0.0  # 2 of a query's label among 5 others: the other label always has the majority
    ch = metrics.chance(["a"] * 4 + ["b"] * 4, rounds=400)  # 3 of 7 relevant: P(all 3 in the first 5) = 6/21
    assert ch["nn5"] == pytest.approx(6 / 21, abs=0.04)


def test_bootstrap_interval_contains_the_point_estimate_and_shrinks_with_more_queries():
    rng = np.random.default_rng(3)
    small = rng.random(30)
    large = rng.random(3000)
    a = metrics.bootstrap_ci(small, rounds=500)
    b = metrics.bootstrap_ci(large, rounds=500)
    assert a["lo"] <= a["mean"] <= a["hi"] and b["lo"] <= b["mean"] <= b["hi"]
    assert a["mean"] == pytest.approx(small.mean())
    assert (b["hi"] - b["lo"]) < (a["hi"] - a["lo"]) / 3
    constant = metrics.bootstrap_ci(np.full(20, 0.7), rounds=100)
    assert constant["lo"] == pytest.approx(0.7) and constant["hi"] == pytest.approx(0.7)
    assert metrics.bootstrap_ci(small, rounds=200) == metrics.bootstrap_ci(small, rounds=200)  # seeded


def test_paired_difference_cancels_what_both_share():
    rng = np.random.default_rng(4)
    hard = rng.random(200)  # per-query difficulty, common to both descriptors
    a = hard
    b = hard + 0.02  # b is better by exactly 0.02 on every query
    paired = metrics.paired_difference_ci(a, b, rounds=300)
    assert paired["mean"] == pytest.approx(0.02)
    assert paired["lo"] == pytest.approx(0.02) and paired["hi"] == pytest.approx(0.02)
    unpaired_a, unpaired_b = metrics.bootstrap_ci(a, rounds=300), metrics.bootstrap_ci(b, rounds=300)
    assert unpaired_b["lo"] < unpaired_a["hi"]  # apart, the two intervals overlap; paired, the gain is certain
    with pytest.raises(ValueError):
        metrics.paired_difference_ci(a, b[:10])


def test_tempo_octave_rule():
    assert agrees(120.0, 120.0) and agrees(124.0, 120.0) and not agrees(125.0, 120.0)
    assert agrees(240.0, 120.0) and agrees(60.0, 120.0) and agrees(61.0, 120.0)
    assert not agrees(240.0, 120.0, strict=True) and agrees(121.0, 120.0, strict=True)
    assert not agrees(0.0, 120.0) and not agrees(90.0, 120.0)
    assert other_level(90.0, 120.0) and other_level(180.0, 120.0) and not other_level(120.0, 120.0)


def test_compare_runs_pairs_this_runs_default_with_an_earlier_runs_scores_on_shared_queries():
    from trackprint.benchmarks.evaluation.runner import compare_runs

    earlier = {"commit": "abc", "trackprint": {"fingerprint_version": 1, "engine_hash": "h1"},
               "per_query_ap": {"trackprint v1": {"a": 0.5, "b": 0.25, "c": 1.0, "gone": 0.0}}}
    ours = {"a": 0.75, "b": 0.5, "c": 1.0, "new": 1.0}
    out = compare_runs(earlier, ours, "trackprint d", {"fingerprint_version": 2}, rounds=200)
    assert out["fingerprint_version"] == 1 and out["commit"] == "abc" and out["engine_hash"] == "h1"
    (name, row), = out["pairs"].items()
    assert name == "trackprint d (fingerprint v2) - trackprint v1 (fingerprint v1)"
    assert row["queries"] == 3  # "gone" and "new" are not in both
    assert row["map"]["mean"] == pytest.approx((0.25 + 0.25 + 0.0) / 3)
    assert row["map_ours"] == pytest.approx(0.75) and row["map_theirs"] == pytest.approx(0.5833, abs=1e-4)
    assert row["map"]["lo"] <= row["map"]["mean"] <= row["map"]["hi"]
    with pytest.raises(ValueError):
        compare_runs(earlier, {"x": 1.0}, "trackprint d", {"fingerprint_version": 2}, rounds=10)
