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

Speed: number ranges are plain comparisons and text matches ``LIKE '%text%'``,
both scans (no feature or trigram index yet); ``trackprint bench-queries``
measures them on 500,000 rows (README, "Speed at 500,000 tracks").

Use: :func:`parse` gives the structure (:class:`Query`), :func:`select_for`
the SQLAlchemy Core statement, :func:`find` runs it and returns one dict per
track (:data:`COLUMNS` keys).
"""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass, field
from typing import Union

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


def select_for(query: Query, *, sort: tuple[Sort, ...] = (), limit: int | None = None):
    """The SQLAlchemy Core SELECT of ``query``: active tracks with a fingerprint, tags outer-joined."""
    tracks, fps, tags = _tables()
    columns = [tracks.c.path, tracks.c.state, fps.c.fingerprint_version]
    for name in TAG_FIELDS:
        columns.append(_column(name).label(name))
    columns += [fps.c[name] for name in DIMENSIONS]
    stmt = (select(*columns)
            .select_from(tracks.join(fps, fps.c.track_id == tracks.c.id)
                         .outerjoin(tags, tags.c.track_id == tracks.c.id))
            .where(tracks.c.state == "active", where_clause(query)))
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


def rows_to_dicts(result) -> list[dict]:
    out = []
    for row in result:
        m = row._mapping
        item = {name: m[name] for name in ("path", "state", "fingerprint_version")}
        item["stale"] = m["fingerprint_version"] != FINGERPRINT_VERSION
        for name in TAG_FIELDS:
            item[name] = m[name]
        for name in DIMENSIONS:
            item[name] = m[name]
        out.append(item)
    return out


def find(db_url: str, expression: str, *, sort: str | None = None, limit: int | None = None,
         engine: Engine | None = None) -> list[dict]:
    """The tracks matching ``expression``, one dict each (keys :data:`COLUMNS`: path, state,
    fingerprint_version, stale, the tag fields, the 25 values).

    ``sort``: ``"field+"``/``"field-"`` (comma-separated for several), overriding any ``sort:`` word;
    ``limit``: at most that many. ``engine``: an open Engine to reuse (a server keeps one), else one
    is made for this call. Raises :class:`QueryError` for a bad expression, ``DatabaseMissing`` (a
    ``FileNotFoundError``) when the SQLite file does not exist, SQLAlchemy's errors otherwise.
    """
    from trackprint.persister.db import make_engine

    query = parse(expression)
    sorts = tuple(parse_sort(s) for s in sort.split(",") if s.strip()) if sort else ()
    if limit is not None and limit < 0:
        raise QueryError(f"limit {limit}: give 0 or more")
    stmt = select_for(query, sort=sorts, limit=limit)
    own = engine is None
    engine = engine or make_engine(db_url, must_exist=True)
    try:
        with engine.connect() as conn:
            return rows_to_dicts(conn.execute(stmt))
    finally:
        if own:
            engine.dispose()
