"""`trackprint query`: the expression language parsed, run as SQL on SQLite and PostgreSQL, exact rows asserted."""

from __future__ import annotations

import json

import pytest

from tests.library_db import store_rows, values_for
from tests.procs import run_cli
from trackprint.contracts import Tags
from trackprint.fingerprint import DIMENSIONS
from trackprint.query import COLUMNS, Match, Query, QueryError, Range, Sort, Term, find, parse

ROWS = [
    ("/m/rock/airbag.flac", dict(tempo_bpm=120.0, lufs=-8.0),
     Tags(artist="Radiohead", album_artist="Radiohead", album="OK Computer", title="Airbag", genre="Rock", year=1997,
          track_number=1, duration_s=284.0)),
    ("/m/rock/paranoid.mp3", dict(tempo_bpm=124.0, lufs=-9.0),
     Tags(artist="Radiohead", album="OK Computer", title="Paranoid Android", genre="Rock", year=1997,
          track_number=2)),
    ("/m/jazz/naima.m4a", dict(tempo_bpm=70.0, lufs=-20.0),
     Tags(artist="John Coltrane", album="Giant Steps", title="Naima", genre="Jazz", year=1960, track_number=6)),
    ("/m/jazz/steps.flac", dict(tempo_bpm=150.0, lufs=-14.0),
     Tags(artist="John Coltrane", album="Giant Steps", title="Giant Steps", genre="Jazz", year=1960,
          track_number=1)),
    ("/m/jazz/so_what.flac", dict(tempo_bpm=136.0, lufs=-11.0),
     Tags(artist="Miles Davis", album="Kind of Blue", title="So What", genre="Modal Jazz", year=1959,
          track_number=1)),
    ("/m/electronic/joga.mp3", dict(tempo_bpm=90.0, lufs=-12.0),
     Tags(artist="Björk", album="Homogenic", title="Jóga", genre="Electronic", year=1997, track_number=3)),
    ("/m/misc/untagged.m4a", dict(tempo_bpm=128.0, lufs=-10.0), None),
    ("/m/rock/pure.flac", dict(tempo_bpm=125.0, lufs=-7.0),
     Tags(artist="The 100% Band", album="Singles_1", title="Pure", genre="Rock", year=2003)),
]


@pytest.fixture
def library(db_url):
    store_rows(db_url, [(path, values_for(path, **chosen), tags) for path, chosen, tags in ROWS])
    return db_url


def names(rows):
    return [r["path"].rsplit("/", 1)[1] for r in rows]


def test_parse_gives_the_structure():
    q = parse('tempo_bpm:120..130 lufs:-12.. -artist:"john coltrane" jazz , genre:rock sort:year- sort:title')
    assert q == Query(
        alternatives=((Term(Range("tempo_bpm", 120.0, 130.0)), Term(Range("lufs", -12.0, None)),
                       Term(Match(("artist",), "john coltrane"), negate=True),
                       Term(Match(("artist", "album", "title", "path"), "jazz"))),
                      (Term(Match(("genre",), "rock")),)),
        sort=(Sort("year", True), Sort("title", False)))
    assert parse("lufs:..-8").alternatives == ((Term(Range("lufs", None, -8.0)),),)
    assert parse("year:1997 track:3").alternatives == ((Term(Range("year", 1997, 1997)),
                                                        Term(Range("track_number", 3, 3))),)
    assert parse("genre:jazz, genre:blues").alternatives == ((Term(Match(("genre",), "jazz")),),
                                                             (Term(Match(("genre",), "blues")),))
    assert parse("a OR b") == parse("a , b")
    assert parse("") == Query()


@pytest.mark.parametrize("bad, says", [
    ("tempo:120..130", "unknown field 'tempo' (did you mean tempo_bpm?)"),
    ("tempo_bpm:fast", "tempo_bpm is a number field"),
    ("lufs:-5..-10", "the range is empty"),
    ("tempo_bpm:1e999..", "not a finite number"),
    ("artist:'open", "No closing quotation"),
    ("rock ,", "need terms on both sides"),
    ("sort:", "name a field"),
    ("sort:bogus+", "unknown field 'bogus'"),
])
def test_malformed_expressions_name_the_problem(bad, says):
    with pytest.raises(QueryError) as info:
        parse(bad)
    assert says in str(info.value)


def test_ranges_tags_negation_sort_and_limit(library):
    db = library
    # by path unless sorted: /m/misc < /m/rock
    assert names(find(db, "tempo_bpm:120..130")) == ["untagged.m4a", "airbag.flac", "paranoid.mp3", "pure.flac"]
    assert names(find(db, "tempo_bpm:120..130 lufs:-8.5..")) == ["airbag.flac", "pure.flac"]
    assert names(find(db, "lufs:..-12")) == ["joga.mp3", "naima.m4a", "steps.flac"]
    assert names(find(db, "lufs:-12..")) == ["joga.mp3", "so_what.flac", "untagged.m4a", "airbag.flac",
                                             "paranoid.mp3", "pure.flac"]
    # tags: substring, ignoring case; a bare word looks in artist, album, title and path
    assert names(find(db, "artist:radiohead")) == ["airbag.flac", "paranoid.mp3"]
    assert names(find(db, "genre:JAZZ")) == ["naima.m4a", "so_what.flac", "steps.flac"]
    assert names(find(db, "steps")) == ["naima.m4a", "steps.flac"]  # album "Giant Steps" / path
    assert names(find(db, "misc")) == ["untagged.m4a"]
    assert names(find(db, "artist:björk")) == ["joga.mp3"]
    assert names(find(db, 'artist:"john coltrane" title:naima')) == ["naima.m4a"]
    assert names(find(db, "artist:100%")) == ["pure.flac"]  # LIKE wildcards are literal
    assert names(find(db, "album:s_1")) == ["pure.flac"]
    assert names(find(db, "album:%")) == []
    # numbers from the tags
    assert names(find(db, "year:1997")) == ["joga.mp3", "airbag.flac", "paranoid.mp3"]
    assert names(find(db, "year:..1960 track:1")) == ["so_what.flac", "steps.flac"]
    assert names(find(db, "duration:280..290")) == ["airbag.flac"]  # the tag's duration before the decoded one
    # negation: a track without the tag is "not" it
    assert names(find(db, "genre:jazz -genre:modal")) == ["naima.m4a", "steps.flac"]
    assert names(find(db, "-artist:radiohead tempo_bpm:120..130")) == ["untagged.m4a", "pure.flac"]
    assert names(find(db, "-year:1990..2010")) == ["naima.m4a", "so_what.flac", "steps.flac", "untagged.m4a"]
    assert names(find(db, "genre:")) == ["untagged.m4a"]
    assert len(find(db, "-genre:")) == len(ROWS) - 1
    # OR, with AND binding tighter
    assert names(find(db, "genre:electronic , artist:radiohead lufs:-8.5..")) == ["joga.mp3", "airbag.flac"]
    assert names(find(db, "genre:electronic OR title:naima")) == ["joga.mp3", "naima.m4a"]
    # sort and limit
    assert names(find(db, "sort:tempo_bpm-", limit=3)) == ["steps.flac", "so_what.flac", "untagged.m4a"]
    assert names(find(db, "genre:jazz sort:tempo_bpm+")) == ["naima.m4a", "so_what.flac", "steps.flac"]
    assert names(find(db, "sort:year- sort:title+", limit=4)) == ["pure.flac", "airbag.flac", "joga.mp3",
                                                                   "paranoid.mp3"]
    assert names(find(db, "sort:artist+"))[-1] == "untagged.m4a"  # no tag: last, either way
    assert names(find(db, "sort:artist-"))[-1] == "untagged.m4a"
    assert names(find(db, "genre:rock", sort="lufs-")) == ["pure.flac", "airbag.flac", "paranoid.mp3"]
    assert find(db, "", limit=0) == []
    assert len(find(db, "")) == len(ROWS)


def test_each_row_has_path_state_tags_and_the_25_values(library):
    (row,) = find(library, "title:airbag")
    assert tuple(row) == COLUMNS
    path, chosen, tags = ROWS[0]
    expected = values_for(path, **chosen)
    assert {d: row[d] for d in DIMENSIONS} == pytest.approx(expected)
    assert (row["path"], row["state"], row["stale"], row["artist"], row["album_artist"], row["album"], row["title"],
            row["genre"], row["year"], row["track_number"], row["disc_number"], row["duration_s"]) == (
        path, "active", False, "Radiohead", "Radiohead", "OK Computer", "Airbag", "Rock", 1997, 1, None, 284.0)
    (untagged,) = find(library, "path:untagged")
    assert untagged["artist"] is None and untagged["duration_s"] == 200.0  # the decoded duration


def test_the_command_prints_a_table_json_paths_and_m3u8(library, tmp_path):
    out = run_cli("query", "genre:jazz", "sort:tempo_bpm-", "--db", library)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["BPM", "LUFS", "year", "artist"]
    assert [line.split()[-1] for line in lines[1:]] == ["/m/jazz/steps.flac", "/m/jazz/so_what.flac",
                                                         "/m/jazz/naima.m4a"]
    assert "150.0" in lines[1] and "John Coltrane - Giant Steps" in lines[1]
    out = run_cli("query", "artist:radiohead", "--json", "--db", library)
    objects = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(o["path"], o["title"], o["tempo_bpm"]) for o in objects] == [
        ("/m/rock/airbag.flac", "Airbag", 120.0), ("/m/rock/paranoid.mp3", "Paranoid Android", 124.0)]
    out = run_cli("query", "tempo_bpm:..100", "--paths", "--limit", "1", "--sort", "tempo_bpm+", "--db", library)
    assert out.stdout == "/m/jazz/naima.m4a\n"
    out = run_cli("query", "tempo:120..", "--db", library)
    assert out.returncode == 2 and "did you mean tempo_bpm?" in out.stderr
    out = run_cli("query", "artist:nobody", "--db", library)
    assert out.returncode == 0 and out.stdout == "" and "no track matches" in out.stderr
    out = run_cli("query", "--limit", "0", "--db", library)
    assert out.returncode == 2


def test_nothing_here_yet(tmp_path):
    out = run_cli("query", "rock", "--data-dir", str(tmp_path / "fresh"))
    assert out.returncode == 1 and "nothing here yet" in out.stderr
    assert not (tmp_path / "fresh").exists()
