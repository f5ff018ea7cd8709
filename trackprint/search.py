"""Answering "which tracks sound like this one": the library's fingerprints, the query track, the distances.

The fingerprints come from the query module (current version only: a stale
row would mix two definitions); the query track is the library's own row when
PATH is in it, else it is analysed on the spot with the engine choice of
``trackprint analyze``; the distance is :mod:`trackprint.similarity`'s (pure numpy).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from trackprint.analyzer.engines import analyse_one
from trackprint.errors import AnalysisError, ErrorCode
from trackprint.fingerprint import DIMENSIONS
from trackprint.paths import canonical
from trackprint.persister.db import redact
from trackprint.persister.queries import iter_fingerprints
from trackprint.similarity import nearest


@dataclass
class Match:
    path: str
    distance: float


@dataclass
class Similar:
    origin: str  # "library" or "analysed now (not in the library)"
    matches: list[Match]


class NothingToCompare(Exception):
    """The database holds no current-version fingerprint."""


def similar_tracks(db_url: str, path: str, k: int) -> Similar:
    """The ``k`` nearest tracks to ``path``. Raises :class:`NothingToCompare`, or ``AnalysisError`` when
    ``path`` is not in the library and cannot be analysed."""
    rows = list(iter_fingerprints(db_url, include_stale=False))
    if not rows:
        raise NothingToCompare(f"no current fingerprints in {redact(db_url)} yet: run `trackprint up LIBRARY`, "
                               "or wait for it to persist some")
    library = np.array([[row[d] for d in DIMENSIONS] for row in rows])
    target = canonical(path)
    index = next((i for i, row in enumerate(rows) if row["path"] in (path, target)), None)
    if index is not None:
        query, origin = library[index], "library"
    else:
        outcome = analyse_one(target if os.path.exists(target) else path)
        if outcome.error is not None:
            e = outcome.error
            raise AnalysisError(ErrorCode(e.code), e.message, path=outcome.path, stage=e.stage)
        query, origin = np.array([getattr(outcome.fingerprint, d) for d in DIMENSIONS]), "analysed now (not in the library)"
    matches = nearest(library, query, k, exclude=index)
    return Similar(origin, [Match(rows[i]["path"], distance) for i, distance in matches])
