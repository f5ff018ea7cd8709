"""A small query language over fingerprints and tags, in the manner of beets queries, run as one SQL query.

An expression is a list of words (split like a shell: quote a value with spaces,
``artist:"john coltrane"``). Every word is one of:

=====================  ======================================================================
``name:LO..HI``        a number field between LO and HI, both included: ``tempo_bpm:120..130``
``name:LO..``          at least LO (``lufs:-12..``)
``name:..HI``          at most HI (``lufs:..-8``)
``name:N``             a number field equal to N (for whole numbers: ``year:1997``, ``track:3``)
``field:text``         a text field containing ``text``, ignoring case: ``artist:radiohead``
``field:``             a text field that is empty (no such tag); ``-genre:`` = has a genre
``word``               ``word`` in the artist, album, title or path, ignoring case
``-TERM``              not TERM (any of the above); a track without the tag matches ``-artist:x``
``,`` or ``OR``        either side: ``genre:jazz , genre:blues`` (a standalone word; a word
                       ending in a comma counts too: ``genre:jazz, genre:blues``)
``sort:name+``         sort by ``name`` ascending (``sort:name-`` descending; ``sort:name`` = ``+``);
                       several sort words sort by the first, then the next. Default: by path
=====================  ======================================================================

Words next to each other must all hold (AND); ``,``/``OR`` joins such groups
(AND binds tighter, there are no parentheses). The empty expression matches
every track. Only tracks with a fingerprint are searched (state ``active``;
rows of an older fingerprint version included, flagged ``stale``).

Fields (aliases in brackets):

- number fields: the 25 fingerprint values by their names in
  :data:`trackprint.fingerprint.DIMENSIONS` (``tempo_bpm``, ``lufs``, ...) and the
  tags ``year``, ``track_number`` [``track``], ``disc_number`` [``disc``],
  ``duration_s`` [``duration``, seconds];
- text fields: ``artist``, ``album_artist`` [``albumartist``], ``album``, ``title``,
  ``genre``, ``path``, ``mb_recording_id`` [``mb_trackid``], ``mb_release_id``
  [``mb_albumid``], ``mb_artist_id`` [``mb_artistid``].

Case: PostgreSQL folds case with its own ``lower()`` (Unicode); SQLite's
``lower()`` folds ASCII letters only (``björk`` finds ``Björk`` but not ``BJÖRK``).

Two evaluators, one structure: :func:`parse` gives the :class:`Query` tree, and
both evaluators take that tree. The reference is SQL (:func:`select_for`: number
ranges as comparisons, text as ``lower(coalesce(field, '')) LIKE '%text%'``, a
scan). The fast one is :class:`QueryColumns`: the same tree over columnar arrays
of every active fingerprinted track (the 29 number fields as float64, NaN for
NULL; each text field dictionary-coded, its distinct values and the database's
own ``lower()`` of them as UTF-8 blobs searched with ``bytes.find``/numpy; the
order of text values as the database's ``ORDER BY`` gives it), built with the
similarity matrix and cached and invalidated with it (:mod:`trackprint.search`).
It picks and orders the matching track ids; the rows themselves are then read
by id with SQL (:func:`rows_by_id`), so both give the same dicts. Whenever the
columns cannot answer exactly (a NUL or a non-UTF-8 character in the text, data
of an unexpected type), SQL answers. ``tests/test_query_columns.py`` runs
generated expressions through both on SQLite and PostgreSQL.
``trackprint bench-queries`` measures both on 500,000 rows (README, "Speed at
500,000 tracks").

Use: :func:`parse` gives the structure (:class:`Query`), :func:`select_for`
the SQLAlchemy Core statement, :func:`find` answers it (over the columns it is
given, else SQL) and returns one dict per track (:data:`COLUMNS` keys);
:func:`trackprint.search.find` is the same with the cached columns when at hand.
"""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass, field
from typing import Union

import numpy as np
from sqlalchemy import Engine, and_, false, func, not_, or_, select, true

from trackprint.fingerprint import DIMENSIONS, FINGERPRINT_VERSION

TEXT_FIELDS = ("artist", "album_artist", "album", "title", "genre", "path", "mb_recording_id", "mb_release_id",
               "mb_artist_id")
TAG_NUMBER_FIELDS = ("year", "track_number", "disc_number", "duration_s")
NUMBER_FIELDS = DIMENSIONS + TAG_NUMBER_FIELDS
ALIASES = {"albumartist": "album_artist", "track": "track_number", "disc": "disc_number", "duration": "duration_s",
           "mb_trackid": "mb_recording_id", "mb_albumid": "mb_release_id", "mb_artistid": "mb_artist_id"}
BARE_WORD_FIELDS = ("artist", "album", "title", "path")
TAG_FIELDS = ("artist", "album_artist", "album", "title", "track_number", "disc_number", "genre", "year",
              "duration_s", "mb_recording_id", "mb_release_id", "mb_artist_id")
# the keys of every dict find() returns, in this order
COLUMNS = ("path", "state", "fingerprint_version", "stale", *TAG_FIELDS, *DIMENSIONS)

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"^(?P<lo>{_NUMBER})?\.\.(?P<hi>{_NUMBER})?$")
_EXACT = re.compile(rf"^{_NUMBER}$")


class QueryError(ValueError):
    """The expression cannot be parsed; the message names the word and what is wrong."""


@dataclass(frozen=True)
class Range:
    """``field`` between ``lo`` and ``hi`` (None: unbounded), both included."""

    field: str
    lo: float | None
    hi: float | None


@dataclass(frozen=True)
class Match:
    """``text`` inside one of ``fields`` (ignoring case); empty ``text``: the (single) field is empty."""

    fields: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class Term:
    test: Union[Range, Match]
    negate: bool = False


@dataclass(frozen=True)
class Sort:
    field: str
    descending: bool = False


@dataclass(frozen=True)
class Query:
    """OR of ANDs: ``alternatives`` is a tuple of groups, each a tuple of terms that must all hold."""

    alternatives: tuple[tuple[Term, ...], ...] = ()
    sort: tuple[Sort, ...] = ()
    expression: str = field(default="", compare=False)


def canonical_field(name: str) -> str:
    """The field's own name (aliases resolved, case ignored); :class:`QueryError` when unknown."""
    lowered = name.lower()
    lowered = ALIASES.get(lowered, lowered)
    if lowered in NUMBER_FIELDS or lowered in TEXT_FIELDS:
        return lowered
    known = list(NUMBER_FIELDS) + list(TEXT_FIELDS) + list(ALIASES)
    close = difflib.get_close_matches(lowered, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise QueryError(f"unknown field {name!r}{hint}; fields: {', '.join(NUMBER_FIELDS + TEXT_FIELDS)}")


def parse_sort(spec: str) -> Sort:
    """``name+``, ``name-`` or ``name``: a :class:`Sort`."""
    spec = spec.strip()
    descending = spec.endswith("-")
    name = spec[:-1] if spec[-1:] in "+-" and spec else spec
    if not name:
        raise QueryError(f"sort:{spec}: name a field, e.g. sort:tempo_bpm+ or sort:year-")
    return Sort(canonical_field(name), descending)


def _number(text: str, word: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise QueryError(f"{word!r}: {text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise QueryError(f"{word!r}: {text!r} is not a finite number")
    return value


def _term(word: str) -> Term:
    negate = word.startswith("-") and len(word) > 1
    body = word[1:] if negate else word
    if ":" not in body:
        if not body:
            raise QueryError(f"{word!r}: nothing to match")
        return Term(Match(BARE_WORD_FIELDS, body), negate)
    name, _, value = body.partition(":")
    if not name:
        return Term(Match(BARE_WORD_FIELDS, body), negate)  # ":x" is a plain word with a colon
    name = canonical_field(name)
    if name in NUMBER_FIELDS:
        value = value.strip()
        ranged = _RANGE.match(value)
        if ranged and (ranged.group("lo") or ranged.group("hi")):
            lo = _number(ranged.group("lo"), word) if ranged.group("lo") else None
            hi = _number(ranged.group("hi"), word) if ranged.group("hi") else None
            if lo is not None and hi is not None and lo > hi:
                raise QueryError(f"{word!r}: the range is empty ({lo:g} > {hi:g}); write LO..HI")
            return Term(Range(name, lo, hi), negate)
        if _EXACT.match(value):
            exact = _number(value, word)
            return Term(Range(name, exact, exact), negate)
        raise QueryError(f"{word!r}: {name} is a number field: write {name}:LO..HI, {name}:LO.., {name}:..HI "
                         f"or {name}:N")
    return Term(Match((name,), value), negate)


def parse(expression: str) -> Query:
    """The structure of ``expression`` (see the module's documentation); :class:`QueryError` when malformed."""
    try:
        words = shlex.split(expression or "")
    except ValueError as exc:  # an unbalanced quote
        raise QueryError(f"{expression!r}: {exc}") from None
    groups: list[list[Term]] = [[]]
    sorts: list[Sort] = []
    for raw in words:
        trailing_or = raw.endswith(",") and raw != ","
        word = raw[:-1] if trailing_or else raw
        if word in (",", "OR"):
            groups.append([])
        elif word.lower().startswith("sort:"):
            sorts.append(parse_sort(word[5:]))
        elif word:
            groups[-1].append(_term(word))
        if trailing_or:
            groups.append([])
    if len(groups) > 1 and any(not g for g in groups):
        raise QueryError(f"{expression!r}: ',' and OR need terms on both sides")
    alternatives = tuple(tuple(g) for g in groups if g)
    return Query(alternatives, tuple(sorts), expression)


# ----------------------------------------------------------------------------------------------- SQL

def _tables():
    from trackprint.persister.models import track_fingerprints, track_tags, tracks

    return tracks, track_fingerprints, track_tags


def _column(name: str):
    tracks, fps, tags = _tables()
    if name == "path":
        return tracks.c.path
    if name in DIMENSIONS:
        return fps.c[name]
    if name == "duration_s":
        return func.coalesce(tags.c.duration_s, fps.c.duration_s)
    return tags.c[name]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _condition(term: Term):
    test = term.test
    if isinstance(test, Range):
        col = _column(test.field)
        parts = [col.is_not(None)]
        if test.lo is not None:
            parts.append(col >= test.lo)
        if test.hi is not None:
            parts.append(col <= test.hi)
        cond = and_(*parts)
    elif test.text == "":
        cond = or_(*[func.coalesce(_column(f), "") == "" for f in test.fields])
    else:
        pattern = f"%{_like_escape(test.text.lower())}%"
        cond = or_(*[func.lower(func.coalesce(_column(f), "")).like(pattern, escape="\\") for f in test.fields])
    return not_(cond) if term.negate else cond


def where_clause(query: Query):
    """The SQL condition of ``query`` (true for the empty query)."""
    if not query.alternatives:
        return true()
    return or_(*[and_(*[_condition(t) for t in group]) for group in query.alternatives]) \
        if query.alternatives else false()


def _result_columns():
    tracks, fps, _tags = _tables()
    columns = [tracks.c.path, tracks.c.state, fps.c.fingerprint_version]
    for name in TAG_FIELDS:
        columns.append(_column(name).label(name))
    columns += [fps.c[name] for name in DIMENSIONS]
    return columns


def _searched():
    """FROM and WHERE of every search: active tracks with a fingerprint (any version), tags outer-joined."""
    tracks, fps, tags = _tables()
    return (tracks.join(fps, fps.c.track_id == tracks.c.id).outerjoin(tags, tags.c.track_id == tracks.c.id),
            tracks.c.state == "active")


def select_for(query: Query, *, sort: tuple[Sort, ...] = (), limit: int | None = None):
    """The SQLAlchemy Core SELECT of ``query``: active tracks with a fingerprint, tags outer-joined."""
    tracks, _fps, _tags = _tables()
    joined, active = _searched()
    stmt = select(*_result_columns()).select_from(joined).where(active, where_clause(query))
    order = []
    for s in (tuple(sort) or query.sort):
        col = _column(s.field)
        key = col.desc() if s.descending else col.asc()
        order.append(key if s.field in DIMENSIONS or s.field == "path" else key.nulls_last())
    # With a filter, the path tie-break is an expression on purpose: SQLite would otherwise walk the path
    # index (a random read per track) to avoid a sort; scanning in storage order and sorting only the
    # matches (a top-N sort with a limit) is several times faster on a large library. Unfiltered, the
    # index order is the cheap one.
    order.append(tracks.c.path.asc() if not query.alternatives else tracks.c.path.op("||")("").asc())
    stmt = stmt.order_by(*order)
    if limit is not None:
        stmt = stmt.limit(limit)
    return stmt


_AFTER_STALE = (*TAG_FIELDS, *DIMENSIONS)


def rows_to_dicts(result) -> list[dict]:
    """Rows of :func:`select_for` (its columns first, in order) as :data:`COLUMNS` dicts."""
    out = []
    rest = len(_AFTER_STALE)
    for row in result:
        values = tuple(row)
        item = {"path": values[0], "state": values[1], "fingerprint_version": values[2],
                "stale": values[2] != FINGERPRINT_VERSION}
        item.update(zip(_AFTER_STALE, values[3:3 + rest]))
        out.append(item)
    return out


_BY_ID_CHUNK = 2000


def rows_by_id(conn, ids) -> dict[int, dict]:
    """track id -> the dict :func:`find` gives for it (plus ``id``), for the ``ids`` that are active tracks with a
    fingerprint; primary-key lookups, no ORDER BY, in chunks of 2,000 ids."""
    tracks, _fps, _tags = _tables()
    joined, active = _searched()
    wanted = [int(i) for i in ids]
    out: dict[int, dict] = {}
    for start in range(0, len(wanted), _BY_ID_CHUNK):
        chunk = wanted[start:start + _BY_ID_CHUNK]
        stmt = (select(*_result_columns(), tracks.c.id).select_from(joined)
                .where(active, tracks.c.id.in_(chunk)))
        result = list(conn.execute(stmt))
        for item, row in zip(rows_to_dicts(result), result):
            item["id"] = row[-1]
            out[item["id"]] = item
    return out


def find(db_url: str, expression: str, *, sort: str | None = None, limit: int | None = None,
         engine: Engine | None = None, columns: "QueryColumns | None" = None) -> list[dict]:
    """The tracks matching ``expression``, one dict each (keys :data:`COLUMNS`: path, state,
    fingerprint_version, stale, the tag fields, the 25 values).

    ``sort``: ``"field+"``/``"field-"`` (comma-separated for several), overriding any ``sort:`` word;
    ``limit``: at most that many. ``engine``: an open Engine to reuse (a server keeps one), else one
    is made for this call. Raises :class:`QueryError` for a bad expression, ``DatabaseMissing`` (a
    ``FileNotFoundError``) when the SQLite file does not exist, SQLAlchemy's errors otherwise.

    ``columns``: a :class:`QueryColumns` of the database as it is now: the tree is evaluated over
    them and the matching rows read by id (the same answer); None, or an expression they cannot
    answer exactly: SQL. :func:`trackprint.search.find` decides when columns are at hand.
    """
    from trackprint.persister.db import make_engine

    query = parse(expression)
    sorts = tuple(parse_sort(s) for s in sort.split(",") if s.strip()) if sort else ()
    if limit is not None and limit < 0:
        raise QueryError(f"limit {limit}: give 0 or more")
    own = engine is None
    engine = engine or make_engine(db_url, must_exist=True)
    try:
        with engine.connect() as conn:
            if columns is not None:
                order = columns.select(query, tuple(sorts) or query.sort, limit, conn)
                if order is not None:
                    found = rows_by_id(conn, columns.ids[order])
                    # a track changed since the columns were read is left out, as similar does
                    return [_public(found[i]) for i in columns.ids[order].tolist() if i in found]
            return rows_to_dicts(conn.execute(select_for(query, sort=sorts, limit=limit)))
    finally:
        if own:
            engine.dispose()


def _public(item: dict) -> dict:
    item.pop("id", None)
    return item


# ------------------------------------------------------------------------------------------- columns
#
# The same language over arrays. Every active track with a fingerprint is one row (ascending track id).
# Number fields: float64, NaN for NULL (a comparison with NaN is false, as with NULL behind IS NOT NULL).
# Text fields: each row's code into the field's distinct values; the values and the database's own
# lower(coalesce(value, '')) of each are kept as UTF-8 blobs (one NUL after each value), so a substring
# test is a bytes search over the distinct values, mapped back to rows through the codes. A UTF-8 needle
# found in UTF-8 text is a character substring, so this is LIKE '%needle%' exactly (the needle holds no
# NUL, so no match spans two values). Sorting: numbers by value; text by the rank the database's
# ORDER BY gives each distinct value (its collation, read once per field); the path tie-break likewise.

_EXACT_INT = 2 ** 53
_NO_RANK = np.iinfo(np.int64).max


class Strings:
    """Strings as one UTF-8 blob, each followed by a NUL; ``starts[i]`` is where value ``i`` begins."""

    __slots__ = ("blob", "starts")

    def __init__(self, blob: bytes, starts: np.ndarray):
        self.blob = blob
        self.starts = starts  # int64 (m + 1,): the last is len(blob)

    @classmethod
    def of(cls, values) -> "Strings":
        encoded = [v.encode("utf-8") for v in values]
        starts = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)) + 1, out=starts[1:])
        return cls(b"".join(e + b"\0" for e in encoded) if encoded else b"", starts)

    def __len__(self) -> int:
        return len(self.starts) - 1

    def __getitem__(self, i: int) -> str:
        return self.blob[self.starts[i]:self.starts[i + 1] - 1].decode("utf-8")

    def clean(self) -> bool:
        """No value holds a NUL itself."""
        return self.blob.count(b"\0") == len(self)

    def empty(self) -> np.ndarray:
        return np.diff(self.starts) == 1

    def _positions(self, needle: bytes) -> np.ndarray:
        """Every position where ``needle`` (non-empty, no NUL) begins in the blob."""
        blob, n = self.blob, len(needle)
        found, i = [], blob.find(needle)  # bytes.find: one C pass over the blob when the needle is rare
        while i >= 0 and len(found) < 4096:
            found.append(i)
            i = blob.find(needle, i + n)  # overlaps need not be seen: one hit per value is enough
        if i < 0:
            return np.array(found, dtype=np.int64)
        data = np.frombuffer(blob, dtype=np.uint8)  # common: narrow the candidates byte by byte instead
        candidates = np.flatnonzero(data[:len(data) - n + 1] == needle[0])
        for j in range(1, n):
            candidates = candidates[data[candidates + j] == needle[j]]
        return candidates

    def containing(self, needle: bytes) -> np.ndarray:
        """Boolean per value: ``needle`` occurs in it."""
        out = np.zeros(len(self), dtype=bool)
        out[np.searchsorted(self.starts, self._positions(needle), side="right") - 1] = True
        return out

    def equal(self, needle: bytes) -> np.ndarray:
        """Boolean per value: it is ``needle``."""
        out = np.zeros(len(self), dtype=bool)
        positions = self._positions(needle + b"\0")
        at = np.searchsorted(self.starts, positions, side="right") - 1
        out[at[self.starts[at] == positions]] = True
        return out


@dataclass(eq=False)
class TextColumn:
    codes: np.ndarray  # int32 (n,): each row's value, an index into ``values``
    values: Strings  # the distinct values as stored ('' stands for NULL, at index ``null``)
    lowered: Strings  # the database's lower(coalesce(value, '')) of each distinct value
    null: int = -1  # the code of NULL; -1: no row is NULL
    # paths (one value per row): the lowered value split at its last '/', folders coded (few, long), names
    # as they are; a needle without '/' lies inside one of the two, so it is searched in far fewer bytes
    folders: tuple[np.ndarray, Strings] | None = None
    names: Strings | None = None

    def matching(self, needle: bytes) -> np.ndarray:
        if self.folders is not None and b"/" not in needle:
            codes, folders = self.folders
            return folders.containing(needle)[codes] | self.names.containing(needle)[self.codes]
        return self.lowered.containing(needle)[self.codes]

    def blank(self) -> np.ndarray:
        return self.lowered.empty()[self.codes]

    def lowered_equal(self, needle: bytes) -> np.ndarray:
        return self.lowered.equal(needle)[self.codes]

    def equal(self, needle: bytes) -> np.ndarray:
        """Rows whose stored value is ``needle`` (never a NULL row)."""
        table = self.values.equal(needle)
        if self.null >= 0:
            table[self.null] = False
        return table[self.codes]


# text columns beyond the language's fields: lower(coalesce(album_artist, artist, '')), for album look-ups
OWNER = "album_owner"


class _Coder:
    """Dictionary-codes one text column chunk by chunk (values with the database's lowered form)."""

    def __init__(self, unique: bool = False):
        self.unique = unique
        self.index: dict = {}
        self.values: list = []
        self.lowered: list = []
        self.codes: list[np.ndarray] = []
        self.ok = True

    def add(self, values: tuple, lowered: tuple) -> None:
        if not set(map(type, values)) <= {str, type(None)} or not set(map(type, lowered)) <= {str}:
            self.ok = False
            return
        if self.unique:
            start = len(self.values)
            self.values.extend(values)
            self.lowered.extend(lowered)
            self.codes.append(np.arange(start, start + len(values), dtype=np.int32))
            return
        index, out = self.index, []
        for value, low in zip(values, lowered):
            code = index.get(value)
            if code is None:
                code = index[value] = len(self.values)
                self.values.append(value)
                self.lowered.append(low)
            out.append(code)
        self.codes.append(np.array(out, dtype=np.int32))

    def column(self) -> TextColumn | None:
        if not self.ok:
            return None
        null = self.index.get(None, -1) if not self.unique else (self.values.index(None) if None in self.values
                                                                 else -1)
        values = Strings.of("" if v is None else v for v in self.values)
        lowered = Strings.of(self.lowered)
        if not (values.clean() and lowered.clean()):
            return None
        codes = np.concatenate(self.codes) if self.codes else np.zeros(0, dtype=np.int32)
        column = TextColumn(codes, values, lowered, null)
        if self.unique:
            folder_index: dict[str, int] = {}
            folder_codes, names = [], []
            for low in self.lowered:
                folder, _slash, name = low.rpartition("/")
                folder_codes.append(folder_index.setdefault(folder, len(folder_index)))
                names.append(name)
            column.folders = (np.array(folder_codes, dtype=np.int32), Strings.of(folder_index))
            column.names = Strings.of(names)
        return column


def _numbers(values: tuple) -> np.ndarray | None:
    """float64 with NaN for None; None when a value is not a number a float64 holds exactly."""
    kinds = set(map(type, values))
    if not kinds <= {float, int, type(None)}:
        return None
    out = np.array(values, dtype=np.float64) if values else np.zeros(0)
    if int in kinds and np.nanmax(np.abs(out), initial=0.0) > _EXACT_INT:
        return None
    if int(np.isnan(out).sum()) != values.count(None):  # a stored NaN (PostgreSQL) orders unlike NULL
        return None
    return out


class QueryColumns:
    """Every active track with a fingerprint as columns; :meth:`select` answers a :class:`Query` with row
    indices in the order and number :func:`select_for` would give (None: let SQL answer)."""

    def __init__(self, ids: np.ndarray, versions: np.ndarray, numbers: np.ndarray, texts: dict[str, TextColumn],
                 path_rank: np.ndarray):
        self.ids = ids  # int64 (n,), ascending
        self.versions = versions  # int64 (n,): fingerprint_version
        self.numbers = numbers  # float64 (len(NUMBER_FIELDS), n), rows in NUMBER_FIELDS order
        self.texts = texts  # TEXT_FIELDS and OWNER
        self.path_rank = path_rank  # int64 (n,): position in the database's ORDER BY path
        self._ranks: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def number(self, name: str) -> np.ndarray:
        return self.numbers[NUMBER_FIELDS.index(name)]

    # -- reading, saving
    @classmethod
    def read(cls, conn, chunk: int = 50_000) -> "QueryColumns | None":
        """From the database (one scan in id order, then the path order); None when some value cannot be held
        exactly (the caller then uses SQL)."""
        tracks, fps, tags = _tables()
        joined, active = _searched()
        number_cols = [fps.c[d] for d in DIMENSIONS] + [_column(f) for f in TAG_NUMBER_FIELDS]
        text_cols = []
        for name in TEXT_FIELDS:
            col = _column(name)
            text_cols += [col, func.lower(func.coalesce(col, ""))]
        owner = func.lower(func.coalesce(tags.c.album_artist, tags.c.artist, ""))
        text_cols += [owner, owner]
        stmt = (select(tracks.c.id, fps.c.fingerprint_version, *number_cols, *text_cols)
                .select_from(joined).where(active).order_by(tracks.c.id))
        coders = [_Coder(unique=(name == "path")) for name in (*TEXT_FIELDS, OWNER)]
        ids, versions, numbers = [], [], []
        first_text = 2 + len(number_cols)
        result = conn.execute(stmt)
        while True:
            rows = result.fetchmany(chunk)
            if not rows:
                break
            columns = list(zip(*rows))
            ids.append(np.array(columns[0], dtype=np.int64))
            versions.append(np.array(columns[1], dtype=np.int64))
            block = [_numbers(c) for c in columns[2:first_text]]
            if any(b is None for b in block):
                return None
            numbers.append(np.stack(block))
            for j, coder in enumerate(coders):
                coder.add(columns[first_text + 2 * j], columns[first_text + 2 * j + 1])
        texts = {}
        for name, coder in zip((*TEXT_FIELDS, OWNER), coders):
            column = coder.column()
            if column is None:
                return None
            texts[name] = column
        ids_all = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
        numbers_all = np.concatenate(numbers, axis=1) if numbers else np.zeros((len(NUMBER_FIELDS), 0))
        versions_all = np.concatenate(versions) if versions else np.zeros(0, dtype=np.int64)
        in_order = np.array(conn.execute(select(tracks.c.id).order_by(tracks.c.path)).scalars().all(),
                            dtype=np.int64)
        rank = _positions_of(in_order, ids_all)
        if rank is None:
            return None
        return cls(ids_all, versions_all, np.ascontiguousarray(numbers_all), texts, rank)

    def arrays(self, prefix: str = "q_") -> dict[str, np.ndarray]:
        """The columns as plain arrays (for an ``.npz``; :meth:`from_arrays` reads them back)."""
        out = {f"{prefix}ids": self.ids, f"{prefix}versions": self.versions, f"{prefix}numbers": self.numbers,
               f"{prefix}path_rank": self.path_rank}
        for name, col in self.texts.items():
            out[f"{prefix}{name}.codes"] = col.codes
            out[f"{prefix}{name}.null"] = np.array(col.null)
            parts = {"values": col.values, "lowered": col.lowered}
            if col.folders is not None:
                out[f"{prefix}{name}.folder_codes"] = col.folders[0]
                parts.update(folders=col.folders[1], names=col.names)
            for part, strings in parts.items():
                out[f"{prefix}{name}.{part}.blob"] = np.frombuffer(strings.blob, dtype=np.uint8)
                out[f"{prefix}{name}.{part}.starts"] = strings.starts
        return out

    @classmethod
    def from_arrays(cls, arrays, prefix: str = "q_") -> "QueryColumns":
        def strings(name: str, part: str) -> Strings:
            return Strings(arrays[f"{prefix}{name}.{part}.blob"].tobytes(), arrays[f"{prefix}{name}.{part}.starts"])

        texts = {}
        for name in (*TEXT_FIELDS, OWNER):
            column = TextColumn(arrays[f"{prefix}{name}.codes"], strings(name, "values"), strings(name, "lowered"),
                                int(arrays[f"{prefix}{name}.null"]))
            if f"{prefix}{name}.folder_codes" in arrays:
                column.folders = (arrays[f"{prefix}{name}.folder_codes"], strings(name, "folders"))
                column.names = strings(name, "names")
            texts[name] = column
        return cls(arrays[f"{prefix}ids"], arrays[f"{prefix}versions"], arrays[f"{prefix}numbers"], texts,
                   arrays[f"{prefix}path_rank"])

    # -- answering
    def mask(self, query: Query) -> np.ndarray | None:
        """Boolean per row: ``query``'s alternatives hold (None: a needle the arrays cannot search exactly)."""
        n = len(self)
        if not query.alternatives:
            return np.ones(n, dtype=bool)
        out = np.zeros(n, dtype=bool)
        for group in query.alternatives:
            held = np.ones(n, dtype=bool)
            for term in group:
                one = self._term(term)
                if one is None:
                    return None
                held &= one
            out |= held
        return out

    def _term(self, term: Term) -> np.ndarray | None:
        test = term.test
        if isinstance(test, Range):
            values = self.number(test.field)
            held = ~np.isnan(values)
            if test.lo is not None:
                held &= values >= test.lo
            if test.hi is not None:
                held &= values <= test.hi
        elif test.text == "":
            held = np.zeros(len(self), dtype=bool)
            for name in test.fields:
                held |= self.texts[name].blank()
        else:
            needle = _needle(test.text.lower())
            if needle is None:
                return None
            held = np.zeros(len(self), dtype=bool)
            for name in test.fields:
                held |= self.texts[name].matching(needle)
        return ~held if term.negate else held

    def select(self, query: Query, sorts: tuple[Sort, ...], limit: int | None, conn=None) -> np.ndarray | None:
        """Row indices matching ``query``, sorted by ``sorts`` then path, at most ``limit``; None: SQL must answer."""
        mask = self.mask(query)
        if mask is None:
            return None
        rows = np.flatnonzero(mask)
        keys: list[np.ndarray] = []
        for s in sorts:
            more = self._sort_keys(s, rows, conn)
            if more is None:
                return None
            keys += more
        keys.append(self.path_rank[rows])
        if limit is not None and limit < len(rows):
            if limit == 0:
                return rows[:0]
            # only the rows up to the limit-th smallest first key can come first (ties kept, then sorted)
            kth = np.partition(keys[0], limit - 1)[limit - 1]
            keep = keys[0] <= kth
            rows, keys = rows[keep], [k[keep] for k in keys]
        order = np.lexsort(keys[::-1]) if len(rows) > 1 else np.arange(len(rows))
        return rows[order][:limit]

    def _sort_keys(self, s: Sort, rows: np.ndarray, conn) -> list[np.ndarray] | None:
        """Ascending keys (first decides) for one sort word: SQL's ``ORDER BY field [DESC] [NULLS LAST]``."""
        if s.field == "path":
            rank = self.path_rank[rows]
            return [-rank if s.descending else rank]
        if s.field in NUMBER_FIELDS:
            values = self.number(s.field)[rows]
            if s.field in DIMENSIONS:  # NOT NULL
                return [-values if s.descending else values]
            null = np.isnan(values)
            key = -np.where(null, 0.0, values) if s.descending else np.where(null, 0.0, values)
            # NULL last either way: NULL as +inf, then a flag puts a real +inf before it
            return [np.where(null, np.inf, key), null]
        column = self.texts[s.field]
        ranks = self._text_ranks(s.field, conn)
        if ranks is None:
            return None
        rank = ranks[column.codes[rows]]
        null = rank == _NO_RANK
        return [np.where(null, _NO_RANK, -rank if s.descending else rank)]

    def _text_ranks(self, name: str, conn) -> np.ndarray | None:
        """Per distinct value of ``name``: its position in the database's ``ORDER BY`` (NULL: :data:`_NO_RANK`),
        equal values equal; read once per field."""
        if name in self._ranks:
            return self._ranks[name]
        if conn is None:
            return None
        _tracks, _fps, tags = _tables()
        col = tags.c[name]
        in_order = np.array(conn.execute(select(tags.c.track_id).where(col.is_not(None)).order_by(col))
                            .scalars().all(), dtype=np.int64)
        column = self.texts[name]
        rows = np.flatnonzero(column.codes != column.null) if column.null >= 0 else np.arange(len(self))
        position = _positions_of(in_order, self.ids[rows])
        if position is None:  # changed since the columns were read: SQL answers this time
            return None
        ranks = np.full(len(column.values), _NO_RANK, dtype=np.int64)
        np.minimum.at(ranks, column.codes[rows], position)
        self._ranks[name] = ranks
        return ranks


def _positions_of(in_order: np.ndarray, ids: np.ndarray) -> np.ndarray | None:
    """Each of ``ids``'s position in ``in_order`` (None when one is missing)."""
    if len(ids) == 0:
        return np.zeros(0, dtype=np.int64)
    if len(in_order) == 0:
        return None
    sorter = np.argsort(in_order, kind="stable")
    at = np.clip(np.searchsorted(in_order, ids, sorter=sorter), 0, len(in_order) - 1)
    position = sorter[at]
    if not np.array_equal(in_order[position], ids):
        return None
    return position.astype(np.int64)


def _needle(text: str) -> bytes | None:
    """``text`` as UTF-8 for a bytes search; None when SQL must answer (a NUL, not encodable, very long)."""
    if "\0" in text or len(text) > 1000:
        return None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return None
