"""Leave-one-out retrieval scores with bootstrap confidence intervals (pure numpy).

Every track is a query once; the other ``n - 1`` tracks are ranked by distance to it (ties: lower index
first, a stable sort) and the tracks with the query's label are the relevant ones.

- **AP** of a query: the mean, over its relevant tracks, of the precision at each one's rank
  (``hits so far / rank``); **mAP** is the mean over queries. A query whose label has no other track has
  no AP and is left out of every score.
- **1-NN**: 1 when the nearest track has the query's label, else 0.
- **5-NN**: 1 when the majority label among the 5 nearest is the query's (a tie between labels goes to
  the one whose first track ranks nearer), else 0.
- **Chance** (a random ranking): mAP exactly, ``E[AP] = (1/N) sum_{i=1..N} (1 + (i-1)(R-1)/(N-1)) / i``
  for ``R`` relevant among ``N`` others; 1-NN exactly, ``R/N``; 5-NN by :data:`CHANCE_ROUNDS` random
  rankings (seeded).
- **Confidence intervals**: the queries are resampled with replacement (:data:`BOOTSTRAP_ROUNDS` rounds,
  a fixed seed) and the 2.5th and 97.5th percentiles of the resampled means are the 95% interval. The
  corpus (the tracks being retrieved) stays fixed: the interval says how much the score depends on
  which queries were asked. **Paired differences** between two descriptors resample the same queries for
  both, so what the two have in common (hard queries) cancels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOOTSTRAP_ROUNDS = 1000
CHANCE_ROUNDS = 200
SEED = 20240514


@dataclass
class PerQuery:
    """Per-query scores (one entry per query that has at least one relevant track)."""

    queries: np.ndarray  # int: row index of each scored query
    ap: np.ndarray
    nn1: np.ndarray
    nn5: np.ndarray


def ranking(distances: np.ndarray, query: int) -> np.ndarray:
    """The other rows, nearest first (stable: ties keep index order)."""
    d = np.asarray(distances[query], dtype=np.float64)
    order = np.argsort(d, kind="stable")
    return order[order != query]


def average_precision(relevant_in_order: np.ndarray) -> float:
    """AP of one ranked list of booleans (True: relevant); NaN when nothing is relevant."""
    rel = np.asarray(relevant_in_order, dtype=bool)
    if not rel.any():
        return float("nan")
    hits = np.cumsum(rel)
    ranks = np.arange(1, len(rel) + 1)
    return float(np.mean(hits[rel] / ranks[rel]))


def knn_vote(labels_in_order: np.ndarray, k: int):
    """The majority label among the first ``k``; a tie goes to the label seen first."""
    first = list(labels_in_order[:k])
    counts = {}
    for label in first:
        counts[label] = counts.get(label, 0) + 1
    best = max(counts.values())
    return next(label for label in first if counts[label] == best)


def per_query(distances: np.ndarray, labels) -> PerQuery:
    """Leave-one-out AP, 1-NN and 5-NN of every query (see the module docstring)."""
    labels = np.asarray(labels)
    distances = np.asarray(distances, dtype=np.float64)
    n = len(labels)
    queries, ap, nn1, nn5 = [], [], [], []
    for q in range(n):
        order = ranking(distances, q)
        rel = labels[order] == labels[q]
        if not rel.any():
            continue
        queries.append(q)
        ap.append(average_precision(rel))
        nn1.append(float(rel[0]))
        nn5.append(float(knn_vote(labels[order], 5) == labels[q]))
    return PerQuery(np.array(queries, dtype=int), np.array(ap), np.array(nn1), np.array(nn5))


def expected_random_ap(relevant: int, others: int) -> float:
    """E[AP] of a uniformly random ranking of ``others`` items of which ``relevant`` are relevant."""
    if relevant <= 0 or others <= 0:
        return float("nan")
    if others == 1:
        return 1.0
    i = np.arange(1, others + 1)
    return float(np.mean((1.0 + (i - 1) * (relevant - 1) / (others - 1)) / i))


def chance(labels, *, rounds: int = CHANCE_ROUNDS, seed: int = SEED) -> dict[str, float]:
    """Expected mAP, 1-NN and 5-NN of random rankings over these labels."""
    labels = np.asarray(labels)
    n = len(labels)
    counts = {label: int(np.sum(labels == label)) for label in set(labels.tolist())}
    scored = [q for q in range(n) if counts[labels[q]] > 1]
    m_ap = float(np.mean([expected_random_ap(counts[labels[q]] - 1, n - 1) for q in scored]))
    nn1 = float(np.mean([(counts[labels[q]] - 1) / (n - 1) for q in scored]))
    rng = np.random.default_rng(seed)
    hits = []
    for _ in range(rounds):
        random = rng.random((n, n))
        hits.append(np.mean([knn_vote(labels[ranking(random, q)], 5) == labels[q] for q in scored]))
    return {"map": m_ap, "nn1": nn1, "nn5": float(np.mean(hits))}


def _resample_indices(n: int, rounds: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(rounds, n))


def bootstrap_ci(values, *, rounds: int = BOOTSTRAP_ROUNDS, seed: int = SEED, level: float = 0.95) -> dict[str, float]:
    """The mean of ``values`` and its percentile bootstrap interval (queries resampled with replacement)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan")}
    means = values[_resample_indices(len(values), rounds, seed)].mean(axis=1)
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(means, [tail, 100.0 - tail])
    return {"mean": float(values.mean()), "lo": float(lo), "hi": float(hi)}


def paired_difference_ci(a, b, **kwargs) -> dict[str, float]:
    """mean(b - a) over the same queries and its bootstrap interval (the same resampled queries for both)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("paired scores must be over the same queries")
    return bootstrap_ci(b - a, **kwargs)


def summary(scores: PerQuery, **kwargs) -> dict[str, dict[str, float]]:
    """mAP, 1-NN and 5-NN, each with its bootstrap interval."""
    return {"map": bootstrap_ci(scores.ap, **kwargs), "nn1": bootstrap_ci(scores.nn1, **kwargs),
            "nn5": bootstrap_ci(scores.nn5, **kwargs), "queries": len(scores.queries)}


def pairwise_euclidean(x: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``x`` (float64)."""
    x = np.asarray(x, dtype=np.float64)
    sq = np.einsum("ij,ij->i", x, x)
    d2 = sq[:, None] + sq[None, :] - 2.0 * x @ x.T
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)
