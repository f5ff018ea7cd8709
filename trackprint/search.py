"""Answering "which tracks sound like these": the library's fingerprints as a cached matrix, the seeds, the distances.

The library (:class:`LibraryMatrix`): the current-version fingerprints of the
active tracks, as float32 arrays: the raw values, their robust z-scores
(:mod:`trackprint.similarity`) and each row's squared norm, with the tracks'
ids. It is loaded once per process and kept while the database's *key* is
unchanged: ``max(tracks.id)``, ``max(tracks.updated_at)``,
``max(track_fingerprints.updated_at)`` and the fingerprint version (three
index lookups; every write the persister makes moves one of them). With a
``cache_dir`` (the commands pass the data directory's ``cache/``) it is also
kept on disk as ``similarity-<hash of the URL>.npz``, so a new process loads
500,000 rows in tens of milliseconds instead of seconds of SQL.

Seeds are library tracks by path; a path that is not in the library is
analysed on the spot (the engine choice of ``trackprint analyze``). Several
seeds: the distance to the set (root mean square of the distances to each,
see :func:`trackprint.similarity.nearest_rows`). Results carry their tags
(``track_tags``) for M3U8 and tables.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, func, or_, select

from trackprint.fingerprint import DIMENSIONS, FINGERPRINT_VERSION
from trackprint.paths import canonical
from trackprint.persister.db import make_engine, normalize_url, redact
from trackprint.similarity import nearest_rows, robust_scale, squared_norms, standardise

CACHE_FORMAT = 1


@dataclass
class Match:
    path: str
    distance: float
    track: dict = field(default_factory=dict)  # path, tags and the 25 values (trackprint.query.COLUMNS)


@dataclass
class Similar:
    origin: str  # "library" or "analysed now (not in the library)" (several seeds: one word per seed, joined)
    matches: list[Match]
    seeds: list[str] = field(default_factory=list)


class NothingToCompare(Exception):
    """The database holds no current-version fingerprint."""


class SeedNotFound(Exception):
    """A seed named by path is neither in the library nor a file that can be analysed."""


@dataclass
class LibraryMatrix:
    key: str
    ids: np.ndarray  # int64, ascending: tracks.id of each row
    raw: np.ndarray  # float32 (n, 25), columns as DIMENSIONS
    center: np.ndarray  # float64 (25,)
    scale: np.ndarray  # float64 (25,)
    z: np.ndarray = None  # float32 (n, 25)
    norms: np.ndarray = None  # float32 (n,)

    def __post_init__(self):
        if self.z is None:
            self.z = ((self.raw - self.center.astype(np.float32)) / self.scale.astype(np.float32))
            np.clip(self.z, -5.0, 5.0, out=self.z)
            self.z = self.z.astype(np.float32, copy=False)
        if self.norms is None:
            self.norms = squared_norms(self.z)

    def __len__(self) -> int:
        return len(self.ids)

    def rows_of(self, ids) -> np.ndarray:
        """Row index of each track id (-1 when the id is not in the matrix)."""
        ids = np.asarray(list(ids), dtype=np.int64)
        pos = np.searchsorted(self.ids, ids)
        pos = np.clip(pos, 0, max(len(self.ids) - 1, 0))
        ok = (len(self.ids) > 0) & (self.ids[pos] == ids) if len(self.ids) else np.zeros(len(ids), bool)
        return np.where(ok, pos, -1)

    def zscore(self, values: np.ndarray) -> np.ndarray:
        return standardise(np.asarray(values, dtype=np.float64)[None, :], self.center, self.scale)[0]


_memo: dict[str, LibraryMatrix] = {}
_memo_lock = threading.Lock()


def _tables():
    from trackprint.persister.models import track_fingerprints, track_tags, tracks

    return tracks, track_fingerprints, track_tags


def library_key(conn) -> str:
    tracks, fps, _tags = _tables()
    # one aggregate per statement: SQLite answers a lone max() from the index, two together scan the table
    max_id = conn.execute(select(func.max(tracks.c.id))).scalar()
    tracks_at = conn.execute(select(func.max(tracks.c.updated_at))).scalar()
    fps_at = conn.execute(select(func.max(fps.c.updated_at))).scalar()
    return f"v{CACHE_FORMAT}-fp{FINGERPRINT_VERSION}-{max_id}-{tracks_at}-{fps_at}"


def _read_matrix(conn, key: str) -> LibraryMatrix:
    tracks, fps, _tags = _tables()
    stmt = (select(tracks.c.id, *[fps.c[d] for d in DIMENSIONS])
            .select_from(tracks.join(fps, fps.c.track_id == tracks.c.id))
            .where(tracks.c.state == "active", fps.c.fingerprint_version == FINGERPRINT_VERSION)
            .order_by(tracks.c.id))
    rows = conn.execute(stmt).all()
    if not rows:
        return LibraryMatrix(key, np.zeros(0, np.int64), np.zeros((0, len(DIMENSIONS)), np.float32),
                             np.zeros(len(DIMENSIONS)), np.ones(len(DIMENSIONS)))
    data = np.array(rows, dtype=np.float64)
    ids = data[:, 0].astype(np.int64)
    raw64 = data[:, 1:]
    center, scale = robust_scale(raw64)
    return LibraryMatrix(key, ids, raw64.astype(np.float32), center, scale)


def _cache_file(cache_dir: Path, db_url: str) -> Path:
    digest = hashlib.blake2b(str(normalize_url(db_url)).encode(), digest_size=6).hexdigest()
    return Path(cache_dir) / f"similarity-{digest}.npz"


def _load_cached(path: Path, key: str) -> LibraryMatrix | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["key"]) != key:
                return None
            return LibraryMatrix(key, npz["ids"], npz["raw"], npz["center"], npz["scale"], npz["z"], npz["norms"])
    except (OSError, KeyError, ValueError):
        return None


def _save_cached(path: Path, matrix: LibraryMatrix) -> None:
    try:
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, key=np.array(matrix.key), ids=matrix.ids, raw=matrix.raw, center=matrix.center,
                     scale=matrix.scale, z=matrix.z, norms=matrix.norms)
        os.replace(tmp, path)
    except OSError:  # a cache: a read-only data directory only costs the next process a reload
        pass


def load_matrix(db_url: str, *, engine: Engine | None = None, cache_dir: Path | str | None = None) -> LibraryMatrix:
    """The library's matrix: from this process's memory, else ``cache_dir``'s file, else the database; always
    the one matching the database's current key."""
    own = engine is None
    engine = engine or make_engine(db_url, must_exist=True)
    try:
        with engine.connect() as conn:
            key = library_key(conn)
            with _memo_lock:
                hit = _memo.get(db_url)
            if hit is not None and hit.key == key:
                return hit
            path = _cache_file(Path(cache_dir), db_url) if cache_dir is not None else None
            matrix = _load_cached(path, key) if path is not None and path.is_file() else None
            if matrix is None:
                matrix = _read_matrix(conn, key)
                if path is not None and path.parent.parent.is_dir():  # never create the data directory itself
                    _save_cached(path, matrix)
        with _memo_lock:
            _memo[db_url] = matrix
        return matrix
    finally:
        if own:
            engine.dispose()


# -------------------------------------------------------------------------------------------- reads

def track_rows(conn, *, ids=None, paths=None) -> list[dict]:
    """The query module's dicts for the tracks of ``ids`` or ``paths`` (active, with a fingerprint), plus ``id``."""
    from trackprint.query import Query, rows_to_dicts, select_for

    tracks, _fps, _tags = _tables()
    stmt = select_for(Query()).add_columns(tracks.c.id)
    if ids is not None:
        stmt = stmt.where(tracks.c.id.in_([int(i) for i in ids]))
    if paths is not None:
        stmt = stmt.where(tracks.c.path.in_(list(paths)))
    result = list(conn.execute(stmt))
    out = rows_to_dicts(result)
    for item, row in zip(out, result):
        item["id"] = row._mapping["id"]
    return out


def album_ids(conn, seeds: list[dict]) -> set[int]:
    """Track ids on the seeds' albums: the same MusicBrainz release id, or the same album title (ignoring
    case) by the same album artist (the artist when there is no album artist). Seeds without an album tag
    have no album."""
    tracks, _fps, tags = _tables()
    conditions = []
    for seed in seeds:
        if seed.get("mb_release_id"):
            conditions.append(tags.c.mb_release_id == seed["mb_release_id"])
        if seed.get("album"):
            who = (seed.get("album_artist") or seed.get("artist") or "").lower()
            conditions.append((func.lower(tags.c.album) == seed["album"].lower())
                              & (func.lower(func.coalesce(tags.c.album_artist, tags.c.artist, "")) == who))
    if not conditions:
        return set()
    return {row[0] for row in conn.execute(select(tags.c.track_id).where(or_(*conditions)))}


# ----------------------------------------------------------------------------------------- similar

def _seed_vectors(conn, matrix: LibraryMatrix, seeds: list[str]):
    """(z-vectors, seed dicts, row indices, origins) of the seed paths."""
    from trackprint.analyzer.engines import analyse_one
    from trackprint.errors import AnalysisError, ErrorCode

    wanted = {}
    for seed in seeds:
        wanted[seed] = canonical(seed)
    found = {row["path"]: row for row in track_rows(conn, paths=set(wanted) | set(wanted.values()))}
    vectors, dicts, rows, origins = [], [], [], []
    for seed, target in wanted.items():
        row = found.get(seed) or found.get(target)
        index = int(matrix.rows_of([row["id"]])[0]) if row is not None else -1
        if index >= 0:
            vectors.append(matrix.z[index].astype(np.float64))
            dicts.append(row)
            rows.append(index)
            origins.append("library")
            continue
        if not os.path.exists(target) and not os.path.exists(seed):
            raise SeedNotFound(f"{seed}: not in the library and no such file")
        outcome = analyse_one(target if os.path.exists(target) else seed)
        if outcome.error is not None:
            e = outcome.error
            raise AnalysisError(ErrorCode(e.code), e.message, path=outcome.path, stage=e.stage)
        vectors.append(matrix.zscore(np.array([getattr(outcome.fingerprint, d) for d in DIMENSIONS])))
        dicts.append(row or {"path": seed})
        origins.append("analysed now (not in the library)")
    return np.array(vectors), dicts, rows, origins


def similar_to(db_url: str, seeds: list[str], k: int, *, exclude_seed_albums: bool = False,
               engine: Engine | None = None, cache_dir: Path | str | None = None) -> Similar:
    """The ``k`` tracks nearest to the set of ``seeds`` (paths), seeds themselves left out; with
    ``exclude_seed_albums`` the tracks of the seeds' albums too (see :func:`album_ids`)."""
    if not seeds:
        raise ValueError("give at least one seed")
    own = engine is None
    engine = engine or make_engine(db_url, must_exist=True)
    try:
        matrix = load_matrix(db_url, engine=engine, cache_dir=cache_dir)
        if len(matrix) == 0:
            raise NothingToCompare(f"no current fingerprints in {redact(db_url)} yet: run `trackprint up LIBRARY`, "
                                   "or wait for it to persist some")
        with engine.connect() as conn:
            vectors, seed_dicts, seed_rows, origins = _seed_vectors(conn, matrix, seeds)
            excluded = np.zeros(len(matrix), dtype=bool)
            excluded[seed_rows] = True
            if exclude_seed_albums:
                on_album = matrix.rows_of(album_ids(conn, [s for s in seed_dicts if "id" in s]))
                excluded[on_album[on_album >= 0]] = True
            nearest = nearest_rows(matrix.z, matrix.norms, vectors, k, excluded)
            by_id = {row["id"]: row for row in track_rows(conn, ids=[matrix.ids[i] for i, _ in nearest])}
        matches = []
        for index, distance in nearest:
            row = by_id.get(int(matrix.ids[index]))
            if row is not None:  # a row tombstoned since the matrix was read: left out
                matches.append(Match(row["path"], distance, row))
        origin = origins[0] if len(set(origins)) == 1 else ", ".join(origins)
        return Similar(origin, matches, [s["path"] for s in seed_dicts])
    finally:
        if own:
            engine.dispose()


def similar_tracks(db_url: str, path: str, k: int, **kwargs) -> Similar:
    """The ``k`` nearest tracks to one ``path`` (see :func:`similar_to`)."""
    return similar_to(db_url, [path], k, **kwargs)


# ---------------------------------------------------------------------------------------- playlist

def smooth_playlist(db_url: str, seed: str, length: int, *, max_tempo_step: float | None = None,
                    max_loudness_step: float | None = None, engine: Engine | None = None,
                    cache_dir: Path | str | None = None) -> list[Match]:
    """A continuous playlist of up to ``length`` library tracks starting with ``seed`` (which must be in the
    library): each next track is the unused one nearest to the previous (the similarity distance), among
    those whose tempo differs by at most ``max_tempo_step`` BPM and whose loudness by at most
    ``max_loudness_step`` LU from the previous one. No track twice; it ends early when no track is left
    within the limits. Each Match's distance is to the previous track (0 for the seed)."""
    own = engine is None
    engine = engine or make_engine(db_url, must_exist=True)
    tempo, lufs = DIMENSIONS.index("tempo_bpm"), DIMENSIONS.index("lufs")
    try:
        matrix = load_matrix(db_url, engine=engine, cache_dir=cache_dir)
        if len(matrix) == 0:
            raise NothingToCompare(f"no current fingerprints in {redact(db_url)} yet: run `trackprint up LIBRARY`")
        with engine.connect() as conn:
            start = {r["path"]: r for r in track_rows(conn, paths={seed, canonical(seed)})}
            row = start.get(seed) or start.get(canonical(seed))
            index = int(matrix.rows_of([row["id"]])[0]) if row is not None else -1
            if index < 0:
                raise SeedNotFound(f"{seed}: not a fingerprinted track of the library (a playlist starts in it)")
            used = np.zeros(len(matrix), dtype=bool)
            chain = [(index, 0.0)]
            used[index] = True
            while len(chain) < length:
                previous = chain[-1][0]
                excluded = used.copy()
                if max_tempo_step is not None:
                    excluded |= np.abs(matrix.raw[:, tempo] - matrix.raw[previous, tempo]) > max_tempo_step
                if max_loudness_step is not None:
                    excluded |= np.abs(matrix.raw[:, lufs] - matrix.raw[previous, lufs]) > max_loudness_step
                step = nearest_rows(matrix.z, matrix.norms, matrix.z[previous][None, :], 1, excluded)
                if not step:
                    break
                chain.append(step[0])
                used[step[0][0]] = True
            by_id = {r["id"]: r for r in track_rows(conn, ids=[matrix.ids[i] for i, _ in chain])}
        return [Match(by_id[int(matrix.ids[i])]["path"], d, by_id[int(matrix.ids[i])])
                for i, d in chain if int(matrix.ids[i]) in by_id]
    finally:
        if own:
            engine.dispose()
