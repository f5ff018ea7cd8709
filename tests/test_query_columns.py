"""The two evaluators of the query language agree: SQL (the reference) and the cached columns.

A library with awkward tags (case and Unicode variants, LIKE wildcards, empty and missing tags, ties,
stale fingerprint versions, tombstones) is written through the persister; several hundred generated
expressions (ranges, exact numbers, text matches, empty tags, bare words, negation, OR, sort words, a
--sort override, limits) are parsed once and answered by both, on SQLite and PostgreSQL: the same
dicts in the same order. The album look-up of --exclude-seed-albums is compared the same way.
"""

from __future__ import annotations

import random
import shlex
import time

import numpy as np
import pytest
from sqlalchemy import select, update

from tests.library_db import result, values_for
from trackprint import search
from trackprint.contracts import Tags, TrackRemoved
from trackprint.fingerprint import FINGERPRINT_VERSION
from trackprint.persister.db import make_engine
from trackprint.persister.models import track_fingerprints, tracks
from trackprint.persister.store import Meta, Store
from trackprint.query import ALIASES, NUMBER_FIELDS, TEXT_FIELDS, QueryError, parse, parse_sort
from trackprint.search import find

ARTISTS = ["Radiohead", "radiohead", "RADIOHEAD", "Björk", "BJÖRK", "björk", "The 100% Band", "a_b", "back\\slash",
           "", None, "Sigur Rós", "Ωmega", "İstanbul", "Straße", "ǅemal", "🎵 Music", "ﬁne", "\u212aelvin", "Miles Davis"]
GENRES = ["Rock", "rock", "Jazz", "Modal Jazz", "", None, "Hip Hop", "Électronique", "ROCK"]
ALBUMS = ["OK Computer", "ok computer", "Giant Steps", "Kind of Blue", "", None, "Singles_1", "100% Live", "Homogenic"]
TEMPOS = [70.0, 90.0, 120.0, 120.0, 120.5, 124.0, 128.0, 136.0, 150.0]
LUFS = [-20.0, -14.0, -12.0, -12.0, -11.0, -9.0, -8.0, -7.0]
YEARS = [None, 1959, 1960, 1997, 1997, 2003, 0]
DURATIONS = [None, 200.0, 284.0, 284.0, 90.5]
FOLDERS = ["/m/rock", "/m/Jazz", "/m/Ünïcode dir", "/m/100%", "/m/a_b", "/m/x"]


def _library(rng: random.Random, n: int = 120):
    rows = []
    for i in range(n):
        path = f"{rng.choice(FOLDERS)}/t{i:03d} {rng.choice(['', 'Live ', 'ÉTÉ '])}.{rng.choice(['flac', 'MP3', 'm4a'])}"
        values = values_for(path, tempo_bpm=rng.choice(TEMPOS), lufs=rng.choice(LUFS))
        tags = None if rng.random() < 0.1 else Tags(
            artist=rng.choice(ARTISTS), album_artist=rng.choice([None, None, "", *ARTISTS[:4]]),
            album=rng.choice(ALBUMS), title=rng.choice(["Airbag", "airbag", "Naima", "Jóga", "", None, f"Song {i}"]),
            genre=rng.choice(GENRES), year=rng.choice(YEARS), track_number=rng.choice([None, 1, 2, 3, 12]),
            disc_number=rng.choice([None, 1, 2]), duration_s=rng.choice(DURATIONS),
            mb_release_id=rng.choice([None, "", "rel-A", "REL-a", "rel-B"]),
            mb_recording_id=rng.choice([None, f"rec-{i % 7}"]), mb_artist_id=rng.choice([None, "art-1", "ART-1"]))
        rows.append((path, values, tags, rng.choice([FINGERPRINT_VERSION] * 5 + [FINGERPRINT_VERSION - 1]),
                     rng.choice([200.0, 150.0])))
    return rows


def _store(db_url: str, rows, removed) -> None:
    store = Store(db_url)
    try:
        store.migrate()
        batch = [(result(path, values, tags, i + 1, duration_s=duration), Meta(i + 1))
                 for i, (path, values, tags, _version, duration) in enumerate(rows)]
        batch += [(TrackRemoved(path=path, source_seq=len(rows) + j + 1), Meta(len(rows) + j + 1))
                  for j, path in enumerate(removed)]
        summary = store.apply(batch)
        assert [o.action for o in summary.outcomes] == ["applied"] * len(batch), summary.outcomes
    finally:
        store.close()
    # an older fingerprint version (the persister only takes known ones): rows a new version made stale
    stale = [path for path, _v, _t, version, _d in rows if version != FINGERPRINT_VERSION]
    engine = make_engine(db_url, must_exist=True)
    try:
        with engine.begin() as conn:
            ids = select(tracks.c.id).where(tracks.c.path.in_(stale)).scalar_subquery()
            conn.execute(update(track_fingerprints).where(track_fingerprints.c.track_id.in_(ids))
                         .values(fingerprint_version=FINGERPRINT_VERSION - 1))
    finally:
        engine.dispose()


def _texts(rows) -> list[str]:
    out = []
    for path, _values, tags, _version, _duration in rows:
        out.append(path)
        if tags is not None:
            out += [v for v in (tags.artist, tags.album_artist, tags.album, tags.title, tags.genre,
                                tags.mb_release_id, tags.mb_recording_id, tags.mb_artist_id) if v]
    return out


def _number_text(rng: random.Random) -> str:
    return rng.choice([str(v) for v in TEMPOS + LUFS + [1959, 1997, 2003, 0, 1, 2, 3, 12, 200, 284, 90.5]] +
                      ["0.5", "-1e3", "1e3", "100", "-15"])


def _term(rng: random.Random, texts: list[str]) -> str:
    kind = rng.random()
    if kind < 0.4:
        name = rng.choice(list(NUMBER_FIELDS) + ["track", "disc", "duration"])
        form = rng.randrange(4)
        a, b = sorted([float(_number_text(rng)), float(_number_text(rng))])
        body = (f"{name}:{a:g}..{b:g}", f"{name}:{a:g}..", f"{name}:..{b:g}", f"{name}:{_number_text(rng)}")[form]
    else:
        source = rng.choice(texts)
        start = rng.randrange(len(source))
        text = source[start:start + rng.randint(1, 6)]
        text = rng.choice([text, text.upper(), text.lower(), text, rng.choice(["%", "_", "\\", "ö", "Ö", "ss", "k"])])
        if kind < 0.5:
            body = f"{rng.choice(list(TEXT_FIELDS) + [k for k, v in ALIASES.items() if v in TEXT_FIELDS])}:"
        elif kind < 0.8:
            body = f"{rng.choice(list(TEXT_FIELDS) + ['albumartist', 'mb_albumid'])}:{text}"
        else:
            body = text  # a bare word
        if body in ("OR", ",") or body.endswith(",") or body.lower().startswith("sort:") or body.startswith("-"):
            body = "x"
    word = shlex.quote(body)
    return f"-{word}" if rng.random() < 0.25 else word


def _expression(rng: random.Random, texts: list[str]) -> str:
    groups = [" ".join(_term(rng, texts) for _ in range(rng.randint(1, 3))) for _ in range(rng.choice([1, 1, 2, 3]))]
    if rng.random() < 0.1:
        groups = [""]
    sorts = [f"sort:{rng.choice(list(NUMBER_FIELDS) + list(TEXT_FIELDS) + ['track'])}{rng.choice(['', '+', '-'])}"
             for _ in range(rng.choice([0, 0, 1, 2]))]
    return " ".join([rng.choice([" , ", " OR "]).join(groups), *sorts]).strip()


@pytest.fixture
def library(db_url, tmp_path):
    rng = random.Random(12)
    rows = _library(rng)
    removed = [rows[i][0] for i in rng.sample(range(len(rows)), 8)]
    _store(db_url, rows, removed)
    return db_url, rows


def test_generated_expressions_give_the_same_answers_from_sql_and_from_the_columns(library, tmp_path):
    db, rows = library
    cache = tmp_path / "data" / "cache"
    cache.parent.mkdir()
    engine = make_engine(db, must_exist=True)
    rng = random.Random(7)
    texts = _texts(rows)
    try:
        matrix = search.load_matrix(db, engine=engine, cache_dir=cache, columns=True)
        columns = matrix.columns
        assert columns is not None and len(columns) == len(rows) - 8  # tombstones are not searched
        assert sorted(set(columns.versions.tolist())) == [FINGERPRINT_VERSION - 1, FINGERPRINT_VERSION]
        assert len(matrix) == int((columns.versions == FINGERPRINT_VERSION).sum())
        checked = nonempty = 0
        for _ in range(400):
            expression = _expression(rng, texts)
            try:
                query = parse(expression)
            except QueryError:
                continue
            sort = rng.choice([None, None, None, "year-", "artist+,tempo_bpm-", "path-", "duration+", "genre-"])
            limit = rng.choice([None, None, 0, 1, 3, 10])
            sorts = tuple(parse_sort(s) for s in sort.split(",")) if sort else query.sort
            with engine.connect() as conn:
                assert columns.select(query, sorts, limit, conn) is not None, expression  # no silent SQL
            reference = find(db, expression, sort=sort, limit=limit, engine=engine, columns=False)
            fast = find(db, expression, sort=sort, limit=limit, engine=engine, columns=True)
            assert fast == reference, (expression, sort, limit)
            checked += 1
            nonempty += bool(reference)
        assert checked >= 300 and nonempty >= 100, (checked, nonempty)
        # the .npz gives the same columns (a new process)
        search._memo.clear()
        again = search.load_matrix(db, engine=engine, cache_dir=cache, build=False, columns=True)
        assert again is not None and again is not matrix
        built, loaded = columns.arrays(), again.columns.arrays()
        assert built.keys() == loaded.keys() and [k for k in built if not np.array_equal(
            built[k], loaded[k], equal_nan=built[k].dtype.kind == "f")] == []
        assert np.array_equal(again.z, matrix.z) and np.array_equal(again.norms, matrix.norms)
        assert np.array_equal(again.present, matrix.present)
        assert all(np.array_equal(again.model.arrays()[k], matrix.model.arrays()[k]) for k in matrix.model.arrays())
    finally:
        engine.dispose()
        search._memo.clear()


def _outcome(call):
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - the same error either way
        return type(exc)


def test_the_album_lookup_agrees_and_a_nul_falls_back_to_sql(library):
    db, rows = library
    engine = make_engine(db, must_exist=True)
    try:
        matrix = search.load_matrix(db, engine=engine, columns=True)
        columns = matrix.columns
        with engine.connect() as conn:
            everyone = search.track_rows(conn, ids=columns.ids.tolist())
            assert len(everyone) == len(columns)
            active = set(columns.ids.tolist())
            for seed in everyone:
                by_sql = search.album_ids(conn, [seed]) & active
                assert search.album_ids(conn, [seed], columns) == by_sql, seed
            pairs = [everyone[i:i + 3] for i in range(0, len(everyone), 3)]
            for seeds in pairs:
                assert search.album_ids(conn, seeds, columns) == search.album_ids(conn, seeds) & active
            assert columns.select(parse("artist:'a\0b'"), (), None, conn) is None  # SQL answers that one
        # whatever the database makes of it (SQLite stops the pattern at the NUL, PostgreSQL refuses it)
        assert _outcome(lambda: find(db, "artist:'a\0b'", engine=engine, columns=True)) == \
            _outcome(lambda: find(db, "artist:'a\0b'", engine=engine, columns=False))
        # the matrix built from the columns is the one the SQL reading gave before
        with engine.connect() as conn:
            only = search._read_matrix(conn, matrix.key)
        assert np.array_equal(only.ids, matrix.ids) and np.array_equal(only.raw, matrix.raw)
        assert np.array_equal(only.present, matrix.present)
        assert all(np.array_equal(only.model.arrays()[k], matrix.model.arrays()[k]) for k in matrix.model.arrays())
        assert np.array_equal(only.z, matrix.z) and np.array_equal(only.norms, matrix.norms)
    finally:
        engine.dispose()
        search._memo.clear()


def test_a_one_off_find_uses_sql_unless_the_columns_are_at_hand(library, tmp_path):
    db, _rows = library
    search._memo.clear()
    cache = tmp_path / "data" / "cache"
    cache.parent.mkdir()
    assert search.load_matrix(db, cache_dir=cache, build=False, columns=True) is None  # nothing built: SQL answers
    expected = find(db, "genre:rock sort:tempo_bpm-", columns=False)
    assert find(db, "genre:rock sort:tempo_bpm-", cache_dir=cache) == expected
    assert not list(cache.glob("*.npz"))  # a one-off query does not read the whole library
    search.load_matrix(db, cache_dir=cache, columns=True)  # a server's or an earlier caller's: the files exist
    search._memo.clear()
    assert find(db, "genre:rock sort:tempo_bpm-", cache_dir=cache) == expected
    assert db in search._memo  # answered from the file's columns
    search._memo.clear()
    # a long-lived caller (its own engine): SQL now, the columns read in the background for the next calls
    engine = make_engine(db, must_exist=True)
    try:
        assert find(db, "genre:rock sort:tempo_bpm-", engine=engine) == expected
        search._refreshing[db].join(timeout=60)
        assert search._memo[db].columns
        assert find(db, "genre:rock sort:tempo_bpm-", engine=engine) == expected
        search._last_read[db] = (time.monotonic(), 60.0)  # a reading that took a minute just ended
        assert not search.refresh_columns_later(db, engine)  # so the next waits 10 minutes
    finally:
        engine.dispose()
        search._memo.clear()
        search._last_read.clear()
