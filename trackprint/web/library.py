"""The library as the web page sees it: every current fingerprint in one float matrix, cached, and what is
computed from it (robust z-scores, percentiles, a 2-D map). Similar tracks and playlists are
:mod:`trackprint.search`'s (the same answers as ``trackprint similar`` and ``trackprint playlist``).

The matrix is read once and kept until the database changes: a cheap probe (the number of current
fingerprints and the latest ``updated_at``) runs at most every :data:`PROBE_EVERY_S` seconds, and only a
change reloads; while a large library keeps changing (a backfill), at most once per :data:`RELOAD_FACTOR`
times the last reading's duration (500,000 tracks: about 5 s to read and scale, so about once a minute). Everything is numpy on the cached matrix, so a request on a large library costs one pass
over an (n, 25) array (500,000 tracks: 100 MB as float64).

Definitions, the same as the rest of trackprint:

- only rows of the current ``fingerprint_version`` are used (a stale row would mix two definitions);
- z-scores are :mod:`trackprint.similarity`'s: median / 1.4826·MAD per dimension, clipped at ±5;
- a value's percentile is its mid-rank in the library's column: 100·(below + ½·equal) / n;
- the map is a PCA of the z-scores (the eigenvectors of their covariance, largest two), signs fixed so the
  largest loading of each axis is positive: the same library always draws the same picture;
- a point's group is its genre tag (``track_tags``) when any track of the library has one, else its folder
  (the parent directory's name).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func, select

from trackprint.fingerprint import DIMENSIONS, FINGERPRINT_VERSION
from trackprint.persister.models import track_fingerprints, track_tags, tracks
from trackprint.similarity import robust_scale, standardise

PROBE_EVERY_S = 2.0
RELOAD_FACTOR = 10.0
T, F, G = tracks.c, track_fingerprints.c, track_tags.c


def _current_rows():
    return (
        select(T.path, F.engine, F.duration_s, G.artist, G.title, G.genre, *[F[name] for name in DIMENSIONS])
        .select_from(tracks.join(track_fingerprints, F.track_id == T.id).outerjoin(track_tags, G.track_id == T.id))
        .where(T.state == "active", F.fingerprint_version == FINGERPRINT_VERSION)
        .order_by(T.path)
    )


def _probe():
    return (
        select(func.count(), func.max(F.updated_at), func.max(T.updated_at))
        .select_from(tracks.join(track_fingerprints, F.track_id == T.id))
        .where(T.state == "active", F.fingerprint_version == FINGERPRINT_VERSION)
    )


def folder_of(path: str) -> str:
    """The group of a track without a genre: the name of the folder it is in."""
    return os.path.basename(os.path.dirname(path)) or "/"


@dataclass
class Snapshot:
    """One reading of the library's current fingerprints and everything derived from them."""

    paths: list[str]
    engines: list[str]
    durations: list[float | None]
    matrix: np.ndarray  # (n, 25) float64, columns as DIMENSIONS
    genres: list[str | None] = field(default_factory=list)
    titles: list[str | None] = field(default_factory=list)  # "artist - title" from the tags, when there are any
    index: dict[str, int] = field(default_factory=dict)
    center: np.ndarray | None = None
    scale: np.ndarray | None = None
    z: np.ndarray | None = None
    sorted_columns: np.ndarray | None = None
    _projection: tuple[np.ndarray, list[float]] | None = None

    @classmethod
    def build(cls, paths, engines, durations, matrix, genres=None, titles=None) -> "Snapshot":
        snap = cls(list(paths), list(engines), list(durations), np.asarray(matrix, dtype=np.float64).reshape(-1, len(DIMENSIONS)),
                   list(genres) if genres is not None else [None] * len(paths),
                   list(titles) if titles is not None else [None] * len(paths))
        snap.index = {p: i for i, p in enumerate(snap.paths)}
        if len(snap.paths):
            snap.center, snap.scale = robust_scale(snap.matrix)
            snap.z = standardise(snap.matrix, snap.center, snap.scale)
            snap.sorted_columns = np.sort(snap.matrix, axis=0)
        return snap

    def __len__(self) -> int:
        return len(self.paths)

    # -- one track ------------------------------------------------------------------------------------------
    def percentiles(self, values: np.ndarray) -> np.ndarray:
        """Each value's mid-rank percentile in its column of the library (0..100)."""
        n = len(self.paths)
        out = np.empty(len(DIMENSIONS))
        for d in range(len(DIMENSIONS)):
            column = self.sorted_columns[:, d]
            below = np.searchsorted(column, values[d], side="left")
            upto = np.searchsorted(column, values[d], side="right")
            out[d] = 100.0 * (below + 0.5 * (upto - below)) / n
        return out

    # -- the map --------------------------------------------------------------------------------------------
    def projection(self) -> tuple[np.ndarray, list[float]]:
        """(n, 2) coordinates and the share of the variance each axis explains."""
        if self._projection is None:
            n = len(self.paths)
            if n == 0:
                self._projection = (np.zeros((0, 2)), [0.0, 0.0])
            elif n == 1:
                self._projection = (np.zeros((1, 2)), [0.0, 0.0])
            else:
                centred = self.z - self.z.mean(axis=0)
                cov = centred.T @ centred / (n - 1)
                eigenvalues, vectors = np.linalg.eigh(cov)  # ascending
                top = np.argsort(eigenvalues)[::-1][:2]
                axes = vectors[:, top]
                for a in range(axes.shape[1]):  # a deterministic sign: the largest loading is positive
                    if axes[np.argmax(np.abs(axes[:, a])), a] < 0:
                        axes[:, a] = -axes[:, a]
                total = float(np.sum(np.clip(eigenvalues, 0, None))) or 1.0
                self._projection = (centred @ axes, [float(max(eigenvalues[t], 0) / total) for t in top])
        return self._projection

    def group_by(self) -> str:
        return "genre" if any(self.genres) else "folder"

    def group(self, i: int) -> str:
        if self.group_by() == "genre":
            return self.genres[i] or "(no genre)"
        return folder_of(self.paths[i])


def _title(artist: str | None, title: str | None) -> str | None:
    if not title:
        return None
    return f"{artist} - {title}" if artist else title


class Library:
    """The cached :class:`Snapshot` of one database, reloaded when its fingerprints change."""

    def __init__(self, db_url: str, *, probe_every_s: float = PROBE_EVERY_S):
        self.db_url = db_url
        self.probe_every_s = probe_every_s
        self._engine = None
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._key: Any = None
        self._probed_at = 0.0
        self.loads = 0  # how many times the matrix was read (for tests and the metrics)
        self.load_s = 0.0  # how long the last reading took (database and numpy)

    def engine(self):
        """The SQLAlchemy engine, created on first use (never creates the database: DatabaseMissing)."""
        if self._engine is None:
            from trackprint.persister.db import make_engine

            self._engine = make_engine(self.db_url, must_exist=True)
        return self._engine

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = time.monotonic()
            # a large library changing all the time (a backfill) is read again at most every
            # RELOAD_FACTOR times as long as its last reading took: the page stays a few seconds behind
            # instead of spending the CPU re-reading it
            wait = max(self.probe_every_s, RELOAD_FACTOR * self.load_s)
            if self._snapshot is not None and now - self._probed_at < wait:
                return self._snapshot
            with self.engine().connect() as conn:
                key = tuple(conn.execute(_probe()).one())
                self._probed_at = now
                if self._snapshot is not None and key == self._key:
                    return self._snapshot
                started = time.monotonic()
                rows = conn.execute(_current_rows()).all()
            matrix = np.array([r[6:] for r in rows], dtype=np.float64).reshape(len(rows), len(DIMENSIONS))
            self._snapshot = Snapshot.build([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], matrix,
                                            [(r[5] or "").strip() or None for r in rows],
                                            [_title(r[3], r[4]) for r in rows])
            self._key = key
            self.loads += 1
            self.load_s = time.monotonic() - started
            return self._snapshot

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
