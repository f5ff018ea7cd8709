"""Answering "which tracks sound like these": the library's fingerprints as a cached matrix, the seeds, the distances.

The library (:class:`LibraryMatrix`): the current-version fingerprints of the
active tracks, as float32 arrays: the raw values, their vectors for the
distance (:mod:`trackprint.similarity`: the library's fitted
:class:`~trackprint.similarity.DistanceModel`, each row's vector, squared norm
and "has a tempo" flag), with the tracks' ids. It is loaded once per process and kept while the database's *key* is
unchanged: ``max(tracks.id)``, ``max(tracks.updated_at)``,
``max(track_fingerprints.updated_at)`` and the fingerprint version (three
index lookups; every write the persister makes moves one of them). With a
``cache_dir`` (the commands pass the data directory's ``cache/``) it is also
kept on disk as ``similarity-<hash of the URL>.npz``, so a new process loads
500,000 rows in a fraction of a second instead of tens of seconds of SQL.

The same read also gives the query language's columns
(:class:`trackprint.query.QueryColumns`: every active fingerprinted track, stale
versions included), kept, saved and invalidated with the matrix
(``LibraryMatrix.columns``, file ``query-columns-*.npz``): long-lived callers
(the web API, the benchmark) answer ``query`` and ``--exclude-seed-albums``'s
album look-up from them.

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

from trackprint.fingerprint import DIMENSIONS, FINGERPRINT_VERSION, KNOWN_VERSIONS
from trackprint.paths import canonical
from trackprint.persister.db import make_engine, normalize_url, redact
from trackprint.similarity import (DistanceModel, exact_sq_distances, nearest_rows, set_sq_distances,
                                   squared_norms)

CACHE_FORMAT = 3  # 2: the distance's model (rank transform, tempo flag) instead of robust z; 3: the default
# z-dedup-groups-mono, "present" one column per optional dimension (tempo, stereo)
QUERY_COLUMNS_FORMAT = 1  # the layout of query-columns-*.npz


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
    model: DistanceModel  # fitted to these rows (float64 values)
    z: np.ndarray = None  # float32 (n, D): each row's vector for the distance (model.vectors)
    norms: np.ndarray = None  # float32 (n,)
    present: np.ndarray = None  # bool (n, k): the row has each of the model's optional columns (tempo, stereo)
    columns: object = None  # trackprint.query.QueryColumns (None: not read; False: SQL answers queries)
    _tempo: tuple | None = None  # the playlist's window: rows by tempo, their tempo, the loudness column

    def __post_init__(self):
        if self.z is None:
            v, present = self.model.vectors(self.raw) if len(self.raw) else (
                np.zeros((0, self.model.dims)), np.zeros((0, len(self.model.geometry.optional)), dtype=bool))
            self.z = v.astype(np.float32)
            self.present = present
        if self.present is None:
            self.present = np.ones((len(self.z), len(self.model.geometry.optional)), dtype=bool)
        if self.norms is None:
            self.norms = squared_norms(self.z)

    @property
    def geometry(self):
        return self.model.geometry

    def __len__(self) -> int:
        return len(self.ids)

    def rows_of(self, ids) -> np.ndarray:
        """Row index of each track id (-1 when the id is not in the matrix)."""
        ids = np.asarray(list(ids), dtype=np.int64)
        pos = np.searchsorted(self.ids, ids)
        pos = np.clip(pos, 0, max(len(self.ids) - 1, 0))
        ok = (len(self.ids) > 0) & (self.ids[pos] == ids) if len(self.ids) else np.zeros(len(ids), bool)
        return np.where(ok, pos, -1)

    def vector(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(vector, which optional columns it has) of 25 raw values, by this library's model."""
        v, present = self.model.vectors(np.asarray(values, dtype=np.float64)[None, :])
        return v[0], present[0]

    @classmethod
    def from_columns(cls, key: str, columns, version: int = FINGERPRINT_VERSION) -> "LibraryMatrix":
        """The rows of fingerprint ``version`` in the query columns (ascending id, as the SQL reading orders them)."""
        current = columns.versions == version
        ids = columns.ids[current]
        raw64 = np.ascontiguousarray(columns.numbers[:len(DIMENSIONS), current].T)
        if len(ids) == 0:
            return _empty(key, columns=columns)
        return cls.of_values(key, ids, raw64, columns=columns)

    @classmethod
    def of_values(cls, key: str, ids: np.ndarray, raw64: np.ndarray, columns=None) -> "LibraryMatrix":
        """The matrix of float64 values: the model fitted and the vectors computed on them (float32 values
        would move a value off a tie with the model's quantiles), then kept as float32."""
        model = DistanceModel.fit(raw64)
        v, present = model.vectors(raw64)
        return cls(key, ids, raw64.astype(np.float32), model, v.astype(np.float32), None, present, columns=columns)

    def tempo_window(self, tempo: float, step: float) -> tuple[np.ndarray, ...]:
        """The rows whose tempo may be within ``step`` of ``tempo`` (a little wider: the caller tests exactly),
        as contiguous slices of copies sorted by tempo: (rows, their float32 tempo, loudness, z, norms, present)."""
        if self._tempo is None:  # built by the first playlist: one more copy of z, in tempo order
            column = np.ascontiguousarray(self.raw[:, DIMENSIONS.index("tempo_bpm")])
            order = np.argsort(column, kind="stable")
            self._tempo = (order, column[order], column[order].astype(np.float64),
                           self.raw[order, DIMENSIONS.index("lufs")], self.z[order], self.norms[order],
                           self.present[order])
        order, tempos, sorted64, loudness, z, norms, present = self._tempo
        margin = 1e-3 * (abs(tempo) + step + 1.0)  # float32 rounding is ~1e-7 of that
        # float64 bounds against float64 values: a float32 array would be converted on every search
        lo = np.searchsorted(sorted64, tempo - step - margin, side="left")
        hi = np.searchsorted(sorted64, tempo + step + margin, side="right")
        return order[lo:hi], tempos[lo:hi], loudness[lo:hi], z[lo:hi], norms[lo:hi], present[lo:hi]


def _empty(key: str, columns=None) -> LibraryMatrix:
    return LibraryMatrix(key, np.zeros(0, np.int64), np.zeros((0, len(DIMENSIONS)), np.float32),
                         DistanceModel.fit(np.zeros((0, len(DIMENSIONS)))), columns=columns)


_memo: dict[str, LibraryMatrix] = {}
_memo_lock = threading.Lock()


def _tables():
    from trackprint.persister.models import track_fingerprints, track_tags, tracks

    return tracks, track_fingerprints, track_tags


def library_key(conn, version: int = FINGERPRINT_VERSION) -> str:
    tracks, fps, _tags = _tables()
    # one aggregate per statement: SQLite answers a lone max() from the index, two together scan the table
    max_id = conn.execute(select(func.max(tracks.c.id))).scalar()
    tracks_at = conn.execute(select(func.max(tracks.c.updated_at))).scalar()
    fps_at = conn.execute(select(func.max(fps.c.updated_at))).scalar()
    return f"v{CACHE_FORMAT}-fp{version}-{max_id}-{tracks_at}-{fps_at}"


def _read_matrix(conn, key: str, version: int = FINGERPRINT_VERSION) -> LibraryMatrix:
    tracks, fps, _tags = _tables()
    stmt = (select(tracks.c.id, *[fps.c[d] for d in DIMENSIONS])
            .select_from(tracks.join(fps, fps.c.track_id == tracks.c.id))
            .where(tracks.c.state == "active", fps.c.fingerprint_version == version)
            .order_by(tracks.c.id))
    rows = [tuple(r) for r in conn.execute(stmt)]  # plain tuples: numpy reads them ~50x faster than Rows
    if not rows:
        return _empty(key)
    data = np.array(rows, dtype=np.float64)
    ids = data[:, 0].astype(np.int64)
    raw64 = data[:, 1:]
    return LibraryMatrix.of_values(key, ids, raw64)


def _cache_file(cache_dir: Path, db_url: str, kind: str = "similarity") -> Path:
    digest = hashlib.blake2b(str(normalize_url(db_url)).encode(), digest_size=6).hexdigest()
    return Path(cache_dir) / f"{kind}-{digest}.npz"


def _load_cached(path: Path, key: str) -> LibraryMatrix | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["key"]) != key:
                return None
            return LibraryMatrix(key, npz["ids"], npz["raw"], DistanceModel.from_arrays(npz), npz["z"], npz["norms"],
                                 npz["present"])
    except (OSError, KeyError, ValueError):
        return None


def _load_columns(path: Path, key: str):
    from trackprint.query import QueryColumns

    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["key"]) != f"{key}-q{QUERY_COLUMNS_FORMAT}":
                return None
            return QueryColumns.from_arrays({name: npz[name] for name in npz.files if name != "key"})
    except (OSError, KeyError, ValueError):
        return None


def _save(path: Path, arrays: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:  # a cache: a read-only or full data directory only costs the next process a reload
        try:
            tmp.unlink(missing_ok=True)  # a full disk keeps no half-written file
        except OSError:
            pass


def _save_cached(path: Path, matrix: LibraryMatrix) -> None:
    _save(path, dict(key=np.array(matrix.key), ids=matrix.ids, raw=matrix.raw, z=matrix.z, norms=matrix.norms,
                     present=matrix.present, **matrix.model.arrays()))


def load_matrix(db_url: str, *, engine: Engine | None = None, cache_dir: Path | str | None = None,
                build: bool = True, columns: bool = False, version: int = FINGERPRINT_VERSION) -> LibraryMatrix | None:
    """The library's matrix of fingerprint ``version`` (the current one unless a caller compares within an
    older one: :func:`comparison_version`): from this process's memory, else ``cache_dir``'s file, else the
    database; always the one matching the database's current key.

    ``columns=True``: with its query columns too (``.columns``, :class:`trackprint.query.QueryColumns`;
    False when the library holds a value they cannot hold exactly: queries then stay on SQL), kept in
    their own file beside the matrix's (``query-columns-*.npz``) so that ``similar`` alone loads only the
    matrix; read from the database together, in one scan. ``build=False``: None rather than reading the
    database (a one-off query on a changed library is cheaper in SQL than reading all of it)."""
    if version != FINGERPRINT_VERSION:
        columns = False  # the query columns hold every version: they belong with the current matrix only
    own = engine is None
    engine = engine or make_engine(db_url, must_exist=True)
    try:
        with engine.connect() as conn:
            key = library_key(conn, version)
            memo_key = db_url if version == FINGERPRINT_VERSION else f"{db_url}#v{version}"
            with _memo_lock:
                hit = _memo.get(memo_key)
            matrix = hit if hit is not None and hit.key == key else None
            if matrix is not None and (matrix.columns is not None or not columns):
                return matrix
            kind = "similarity" if version == FINGERPRINT_VERSION else f"similarity-v{version}"
            path = _cache_file(Path(cache_dir), db_url, kind) if cache_dir is not None else None
            keep = path is not None and path.parent.parent.is_dir()  # never create the data directory itself
            if matrix is None and path is not None and path.is_file():
                matrix = _load_cached(path, key)
            if columns:
                from trackprint.query import QueryColumns

                cols_path = _cache_file(Path(cache_dir), db_url, "query-columns") if cache_dir is not None else None
                found = _load_columns(cols_path, key) if cols_path is not None and cols_path.is_file() else None
                if found is None:
                    if not build:
                        return None
                    found = QueryColumns.read(conn)
                    if found is not None and keep:
                        _save(cols_path, dict(key=np.array(f"{key}-q{QUERY_COLUMNS_FORMAT}"), **found.arrays()))
                if matrix is None and found is not None:
                    matrix = LibraryMatrix.from_columns(key, found, version)  # the same rows, the same scan
                    if keep:
                        _save_cached(path, matrix)
                if matrix is not None:
                    matrix.columns = found if found is not None else False
            if matrix is None:
                if not build:
                    return None
                matrix = _read_matrix(conn, key, version)
                if columns:
                    matrix.columns = False
                if keep:
                    _save_cached(path, matrix)
        with _memo_lock:
            _memo[memo_key] = matrix
        return matrix
    finally:
        if own:
            engine.dispose()


_refreshing: dict[str, threading.Thread] = {}
_last_read: dict[str, tuple[float, float]] = {}  # db_url -> (when the last background reading ended, its seconds)


def refresh_columns_later(db_url: str, engine: Engine, cache_dir: Path | str | None = None) -> bool:
    """Read the matrix and the query columns in a background thread (a long-lived caller answers with SQL
    meanwhile). One reading per database at a time, and after one that took T seconds the next starts no
    sooner than 10 T after it ended: a library that keeps changing (a backfill) is not re-read over and over.
    True when a reading was started."""
    import time

    with _memo_lock:
        running = _refreshing.get(db_url)
        if running is not None and running.is_alive():
            return False
        ended, took = _last_read.get(db_url, (0.0, 0.0))
        if time.monotonic() < ended + 10 * took:
            return False

        def read() -> None:
            started = time.monotonic()
            try:
                load_matrix(db_url, engine=engine, cache_dir=cache_dir, columns=True)
            except Exception:  # noqa: BLE001 - a cache: SQL keeps answering; the next call tries again
                pass
            finally:
                with _memo_lock:
                    _last_read[db_url] = (time.monotonic(), time.monotonic() - started)

        thread = threading.Thread(target=read, name="trackprint-query-columns", daemon=True)
        _refreshing[db_url] = thread
        thread.start()
    return True


def find(db_url: str, expression: str, *, sort: str | None = None, limit: int | None = None,
         engine: Engine | None = None, cache_dir: Path | str | None = None, columns: bool | None = None) -> list[dict]:
    """:func:`trackprint.query.find` with the library's cached query columns when they are at hand (the same
    answers; the one place that chooses the evaluator).

    ``columns=False``: SQL only (the reference); ``True``: the columns, read from the database first when
    missing or out of date; ``None`` (default): the columns when this process or ``cache_dir`` holds them
    for the database as it is now, else SQL; a caller that passes its ``engine`` (a long-lived one: the web
    server) also has them re-read in the background (:func:`refresh_columns_later`), so no call waits for
    the whole library to be read and a one-off call never pays for it."""
    from trackprint.query import find as find_rows

    snapshot = None
    if columns is not False:
        library = load_matrix(db_url, engine=engine, cache_dir=cache_dir, build=bool(columns), columns=True)
        snapshot = (library.columns or None) if library is not None else None
        if library is None and engine is not None:
            refresh_columns_later(db_url, engine, cache_dir)
    return find_rows(db_url, expression, sort=sort, limit=limit, engine=engine, columns=snapshot)


# -------------------------------------------------------------------------------------------- reads

def track_rows(conn, *, ids=None, paths=None) -> list[dict]:
    """The query module's dicts for the tracks of ``ids`` or ``paths`` (active, with a fingerprint), plus ``id``."""
    from trackprint.query import rows_by_id

    tracks, _fps, _tags = _tables()
    if paths is not None:
        wanted = [p for p in paths]
        ids = conn.execute(select(tracks.c.id).where(tracks.c.path.in_(wanted))).scalars().all() if wanted else []
    return list(rows_by_id(conn, ids or []).values())


def album_ids(conn, seeds: list[dict], columns=None) -> set[int]:
    """Track ids on the seeds' albums: the same MusicBrainz release id, or the same album title (ignoring
    case) by the same album artist (the artist when there is no album artist). Seeds without an album tag
    have no album. With the query ``columns``, answered from them (the active fingerprinted tracks, which is
    all a caller can exclude); else one SQL scan of the tags."""
    if columns is not None:
        found = _album_rows(columns, seeds)
        if found is not None:
            return set(columns.ids[found].tolist())
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


def _album_rows(columns, seeds: list[dict]) -> np.ndarray | None:
    """:func:`album_ids`'s conditions on the query columns: the rows (None: a value they cannot search)."""
    from trackprint.query import OWNER, _needle

    held = np.zeros(len(columns), dtype=bool)
    for seed in seeds:
        if seed.get("mb_release_id"):
            needle = _needle(seed["mb_release_id"])
            if needle is None:
                return None
            held |= columns.texts["mb_release_id"].equal(needle)
        if seed.get("album"):
            album = _needle(seed["album"].lower())
            who = _needle((seed.get("album_artist") or seed.get("artist") or "").lower())
            if album is None or who is None:
                return None
            same_owner = columns.texts[OWNER].blank() if not who else columns.texts[OWNER].lowered_equal(who)
            held |= columns.texts["album"].lowered_equal(album) & same_owner
    return np.flatnonzero(held)


# ----------------------------------------------------------------------------------------- similar

def _seed_vectors(conn, matrix: LibraryMatrix, seeds: list[str]):
    """(vectors, has a tempo, seed dicts, row indices, origins) of the seed paths."""
    from trackprint.analyzer.engines import analyse_one
    from trackprint.errors import AnalysisError, ErrorCode

    wanted = {}
    for seed in seeds:
        wanted[seed] = canonical(seed)
    found = {row["path"]: row for row in track_rows(conn, paths=set(wanted) | set(wanted.values()))}
    vectors, presents, dicts, rows, origins = [], [], [], [], []
    for seed, target in wanted.items():
        row = found.get(seed) or found.get(target)
        index = int(matrix.rows_of([row["id"]])[0]) if row is not None else -1
        if index >= 0:
            vectors.append(matrix.z[index].astype(np.float64))
            presents.append(matrix.present[index])
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
        vector, present = matrix.vector(np.array([getattr(outcome.fingerprint, d) for d in DIMENSIONS]))
        vectors.append(vector)
        presents.append(present)
        dicts.append(row or {"path": seed})
        origins.append("analysed now (not in the library)")
    presents = np.array(presents, dtype=bool).reshape(len(vectors), len(matrix.geometry.optional))
    return np.array(vectors), presents, dicts, rows, origins


def comparison_version(conn, seeds: list[str]) -> int:
    """The fingerprint version a search compares in: the seeds' own.

    Distances are only ever taken between fingerprints of one version (the definitions differ between
    versions). While a library is re-analysed after a spec change (``replay --reanalyse``), a seed not yet
    re-analysed is compared with the tracks not yet re-analysed, and a re-analysed one with the re-analysed
    ones; a seed outside the library (analysed now) is of the current version, as is a seed stored under a
    version this release does not know. Seeds of two versions cannot be compared together."""
    wanted = {seed: canonical(seed) for seed in seeds}
    found = {row["path"]: row for row in track_rows(conn, paths=set(wanted) | set(wanted.values()))}
    versions = set()
    for seed, target in wanted.items():
        row = found.get(seed) or found.get(target)
        stored = row["fingerprint_version"] if row is not None else FINGERPRINT_VERSION
        versions.add(stored if stored in KNOWN_VERSIONS else FINGERPRINT_VERSION)
    if len(versions) > 1:
        raise NothingToCompare(
            f"the seeds have fingerprints of versions {sorted(versions)}, which are not comparable; the library is "
            "being re-analysed (`trackprint status` shows the stale rows): give seeds of one version, or wait")
    return versions.pop()


def similar_to(db_url: str, seeds: list[str], k: int, *, exclude_seed_albums: bool = False,
               engine: Engine | None = None, cache_dir: Path | str | None = None) -> Similar:
    """The ``k`` tracks nearest to the set of ``seeds`` (paths), seeds themselves left out; with
    ``exclude_seed_albums`` the tracks of the seeds' albums too (see :func:`album_ids`)."""
    if not seeds:
        raise ValueError("give at least one seed")
    own = engine is None
    engine = engine or make_engine(db_url, must_exist=True)
    try:
        # a long-lived caller (an engine passed: the server, the benchmark) looks albums up in the query
        # columns; a one-off call scans the tags in SQL rather than reading the whole library
        with engine.connect() as conn:
            version = comparison_version(conn, seeds)
        matrix = load_matrix(db_url, engine=engine, cache_dir=cache_dir, columns=exclude_seed_albums and not own,
                             version=version)
        if len(matrix) == 0:
            raise NothingToCompare(f"no current fingerprints in {redact(db_url)} yet: run `trackprint up LIBRARY`, "
                                   "or wait for it to persist some (during a re-analysis: wait for the first "
                                   "re-analysed tracks)")
        with engine.connect() as conn:
            vectors, presents, seed_dicts, seed_rows, origins = _seed_vectors(conn, matrix, seeds)
            excluded = np.zeros(len(matrix), dtype=bool)
            excluded[seed_rows] = True
            if excluded.all():  # the seeds are all their version has: the first tracks of a re-analysis
                raise NothingToCompare(f"no track but the seeds has fingerprint version {version} (a re-analysis "
                                       "that reached the seeds first: try again shortly; or a library of one track)")
            if exclude_seed_albums:
                on_album = matrix.rows_of(album_ids(conn, [s for s in seed_dicts if "id" in s],
                                                     matrix.columns or None))
                excluded[on_album[on_album >= 0]] = True
            nearest = nearest_rows(matrix.z, matrix.norms, vectors, k, excluded, present=matrix.present,
                                   seeds_present=presents, geometry=matrix.geometry)
            by_id = {row["id"]: row for row in track_rows(conn, ids=[matrix.ids[i] for i, _ in nearest])}
        matches = []
        for index, distance in nearest:
            row = by_id.get(int(matrix.ids[index]))
            # a row tombstoned or re-analysed since the matrix was read: left out
            if row is not None and row["fingerprint_version"] == version:
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

_RANKED = 17  # as nearest_rows for one track: the float32 ranking's best 1 + 16, then re-scored exactly


def _next_step(matrix: LibraryMatrix, previous: int, used: np.ndarray, max_tempo_step: float | None,
               max_loudness_step: float | None) -> tuple[int, float] | None:
    """The unused row nearest to ``previous`` within the steps, with its distance; None when there is none.

    :func:`trackprint.similarity.nearest_rows`'s method (float32 distances rank, the best 17 re-scored
    exactly in float64, equals ordered by row), on fewer rows: within a tempo step only the window of the
    rows sorted by tempo is scored (contiguous copies, a few percent of the library at 8 BPM), its rows
    tested with the same float32 expressions as the whole-library masks. Without a tempo step the whole
    library is scored, as before."""
    tempo, lufs = DIMENSIONS.index("tempo_bpm"), DIMENSIONS.index("lufs")
    raw = matrix.raw
    seed = matrix.z[previous].astype(np.float64)[None, :]
    seed_present = matrix.present[previous:previous + 1]
    if max_tempo_step is not None:
        rows, tempos, loudness, z, norms, present = matrix.tempo_window(float(raw[previous, tempo]),
                                                                        float(max_tempo_step))
        keep = ~(np.abs(tempos - raw[previous, tempo]) > max_tempo_step)
        if max_loudness_step is not None:
            keep &= ~(np.abs(loudness - raw[previous, lufs]) > max_loudness_step)
        keep[keep] = ~used[rows[keep]]
        allowed = int(keep.sum())
        if allowed == 0:
            return None
        d2 = set_sq_distances(z, norms, present, seed, seed_present, matrix.geometry, blas=False)
        d2[~keep] = np.inf
        wanted = min(allowed, _RANKED)
        ranked = np.argpartition(d2, wanted - 1)[:wanted] if wanted < len(d2) else np.arange(len(d2))
        ranked = ranked[np.isfinite(d2[ranked])]
        exact = exact_sq_distances(z[ranked], present[ranked], seed, seed_present, matrix.geometry)
        best = exact.min()
        return int(rows[ranked][exact == best].min()), float(np.sqrt(best))  # equals: the lowest row
    excluded = used.copy()
    if max_loudness_step is not None:
        excluded |= np.abs(raw[:, lufs] - raw[previous, lufs]) > max_loudness_step
    step = nearest_rows(matrix.z, matrix.norms, seed, 1, excluded, present=matrix.present, seeds_present=seed_present,
                        geometry=matrix.geometry)
    return step[0] if step else None


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
    try:
        with engine.connect() as conn:
            version = comparison_version(conn, [seed])  # a playlist stays within its seed's version
        matrix = load_matrix(db_url, engine=engine, cache_dir=cache_dir, version=version)
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
                step = _next_step(matrix, chain[-1][0], used, max_tempo_step, max_loudness_step)
                if step is None:
                    break
                chain.append(step)
                used[step[0]] = True
            by_id = {r["id"]: r for r in track_rows(conn, ids=[matrix.ids[i] for i, _ in chain])}
        return [Match(by_id[int(matrix.ids[i])]["path"], d, by_id[int(matrix.ids[i])])
                for i, d in chain if int(matrix.ids[i]) in by_id]
    finally:
        if own:
            engine.dispose()
