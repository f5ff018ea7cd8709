"""similar with several seeds and --exclude-seed-albums, the smooth playlist, M3U8 written and read back."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.library_db import store_files, store_rows, values_for
from tests.procs import run_cli
from tests.tagged import write_tagged_library
from trackprint.contracts import Tags
from trackprint.fingerprint import DIMENSIONS
from trackprint.playlists import read_m3u8
from trackprint.search import load_matrix, similar_to, smooth_playlist
from trackprint.similarity import distance_matrix

ALBUMS = ["Blue", "Red", "Green", "Gold"]


def _library():
    """24 tracks, 4 albums of 6; tempo walks 80..195 by 5 BPM, loudness -20..-8.5 by 0.5 LU."""
    rows = []
    for i in range(24):
        path = f"/m/{ALBUMS[i % 4].lower()}/t{i:02d}.flac"
        rows.append((path, values_for(path, tempo_bpm=80.0 + 5 * i, lufs=-20.0 + 0.5 * i),
                     Tags(artist=f"Band {ALBUMS[i % 4]}", album=ALBUMS[i % 4], title=f"Song {i}", duration_s=180.0 + i)))
    return rows


@pytest.fixture
def library(db_url):
    rows = _library()
    store_rows(db_url, rows)
    return db_url, rows


def reference(rows, seeds, exclude=()):
    """Distances by the definition: RMS over seeds of the pair distances (trackprint.similarity.distance_matrix:
    float64, no cache, no shortcut)."""
    matrix = np.array([[values[d] for d in DIMENSIONS] for _p, values, _t in rows])
    pair = distance_matrix(matrix)
    paths = [p for p, _v, _t in rows]
    d = np.sqrt(np.mean([pair[paths.index(s)] ** 2 for s in seeds], axis=0))
    return sorted(((float(d[i]), p) for i, p in enumerate(paths) if p not in seeds and p not in exclude))


def test_similar_with_several_seeds_matches_the_definition(library):
    db, rows = library
    seeds = ["/m/blue/t00.flac", "/m/red/t05.flac"]
    found = similar_to(db, seeds, 5)
    expected = reference(rows, seeds)[:5]
    assert [m.path for m in found.matches] == [p for _d, p in expected]
    assert [m.distance for m in found.matches] == pytest.approx([d for d, _p in expected], rel=1e-5)
    assert all(m.track["album"] in ALBUMS and m.track["title"].startswith("Song") for m in found.matches)
    one = similar_to(db, ["/m/blue/t00.flac"], 3)
    assert [m.path for m in one.matches] == [p for _d, p in reference(rows, ["/m/blue/t00.flac"])[:3]]


def test_exclude_seed_albums(library):
    db, rows = library
    seeds = ["/m/blue/t00.flac", "/m/red/t05.flac"]
    blue_red = {p for p, _v, t in rows if t.album in ("Blue", "Red")}
    found = similar_to(db, seeds, 30, exclude_seed_albums=True)
    assert [m.path for m in found.matches] == [p for _d, p in reference(rows, seeds, exclude=blue_red)]
    assert len(found.matches) == 12 and {m.track["album"] for m in found.matches} == {"Green", "Gold"}


def test_similar_command_several_seeds_query_seeds_and_json(library):
    db, rows = library
    out = run_cli("similar", "/m/blue/t00.flac", "/m/red/t05.flac", "-k", "3", "--json", "--db", db)
    assert out.returncode == 0, out.stderr
    got = [json.loads(line) for line in out.stdout.splitlines()]
    expected = reference(rows, ["/m/blue/t00.flac", "/m/red/t05.flac"])[:3]
    assert [g["path"] for g in got] == [p for _d, p in expected]
    assert got[0]["distance"] == pytest.approx(expected[0][0], abs=1e-4) and got[0]["album"] in ALBUMS
    out = run_cli("similar", "--query", "album:gold", "--exclude-seed-albums", "-k", "4", "--paths", "--db", db)
    assert out.returncode == 0, out.stderr
    gold = [p for p, _v, t in rows if t.album == "Gold"]
    assert out.stdout.splitlines() == [p for _d, p in reference(rows, gold)[:4]]
    assert not any("/gold/" in line for line in out.stdout.splitlines())
    out = run_cli("similar", "--query", "album:nothing", "--db", db)
    assert out.returncode == 1 and "no seed" in out.stderr
    out = run_cli("similar", "--db", db)
    assert out.returncode == 2


def test_similar_command_with_several_seeds_on_a_tagged_library(tmp_path, db_url):
    """`trackprint similar` with two seeds (an FLAC and an M4A) and with query seeds, on FLAC, MP3 and M4A files
    tagged by mutagen: the order and distances of the definition, the known neighbour, the tags in the answer."""
    written = write_tagged_library(tmp_path / "music")
    stored = store_files(db_url, [t.path for t in written])
    tags = {str(t.path): t.tags for t in written}
    rows = [(p, {d: getattr(m.fingerprint, d) for d in DIMENSIONS}, tags[p]) for p, m in stored.items()]
    by_name = {t.path.name: str(t.path) for t in written}
    airbag, naima = by_name["radiohead-airbag.flac"], by_name["coltrane-naima.m4a"]

    def similar_json(*args):
        out = run_cli("similar", *args, "--json", "--db", db_url)
        assert out.returncode == 0, out.stderr
        return [json.loads(line) for line in out.stdout.splitlines()]

    got = similar_json(airbag, naima, "-k", "4")
    expected = reference(rows, [airbag, naima])[:4]
    assert [g["path"] for g in got] == [p for _d, p in expected]
    assert [g["distance"] for g in got] == pytest.approx([d for d, _p in expected], abs=1e-4)
    for g in got:  # each match carries its own tags
        t = tags[g["path"]]
        assert (g["artist"], g["album"], g["title"], g["genre"]) == \
            (t.get("artist"), t.get("album"), t.get("title"), t.get("genre"))
    # --exclude-seed-albums: neither OK Computer nor Giant Steps; what is left is Jóga and the untagged track
    got = similar_json(airbag, naima, "-k", "4", "--exclude-seed-albums")
    seed_albums = {p for p, t in tags.items() if t.get("album") in ("OK Computer", "Giant Steps")}
    assert [g["path"] for g in got] == [p for _d, p in reference(rows, [airbag, naima], exclude=seed_albums)]
    assert [g["path"] for g in got] == [by_name["bjork-joga.mp3"], by_name["unknown.m4a"]]
    # seeds by query (the two Rock tracks: an FLAC and an MP3), one seed alone: its album mate is nearest
    rock = [by_name["radiohead-airbag.flac"], by_name["radiohead-paranoid.mp3"]]
    got = similar_json("--query", "genre:rock", "-k", "3")
    assert [g["path"] for g in got] == [p for _d, p in reference(rows, rock)[:3]]
    assert similar_json(airbag, "-k", "1")[0]["path"] == by_name["radiohead-paranoid.mp3"]


def test_playlist_has_no_repeats_and_keeps_within_the_drift_limits(library):
    db, rows = library
    chain = smooth_playlist(db, "/m/blue/t00.flac", 24, max_tempo_step=10.0, max_loudness_step=1.0)
    paths = [m.path for m in chain]
    assert paths[0] == "/m/blue/t00.flac" and len(paths) == len(set(paths))
    for a, b in zip(chain, chain[1:]):
        assert abs(a.track["tempo_bpm"] - b.track["tempo_bpm"]) <= 10.0
        assert abs(a.track["lufs"] - b.track["lufs"]) <= 1.0
    # tempo steps of 5 or 10 BPM only: from the slowest track the chain must climb; it stops when stuck
    assert len(chain) >= 2
    free = smooth_playlist(db, "/m/blue/t00.flac", 24)
    assert len(free) == 24 and len({m.path for m in free}) == 24  # every track once
    # each next track is the nearest unused one to the previous (no limits)
    matrix = np.array([[v[d] for d in DIMENSIONS] for _p, v, _t in rows])
    pair = distance_matrix(matrix)
    paths = [p for p, _v, _t in rows]
    used = {free[0].path}
    for previous, nxt in zip(free, free[1:]):
        i = paths.index(previous.path)
        d = {p: float(pair[i, j]) for j, p in enumerate(paths) if p not in used}
        assert nxt.path == min(d, key=d.get)
        assert nxt.distance == pytest.approx(d[nxt.path], rel=1e-5)
        used.add(nxt.path)
    tight = smooth_playlist(db, "/m/blue/t00.flac", 10, max_tempo_step=1.0)
    assert [m.path for m in tight] == ["/m/blue/t00.flac"]  # nothing within 1 BPM: it stops


def test_playlist_command_writes_m3u8_that_resolves(tmp_path, db_url):
    music = tmp_path / "music"
    written = write_tagged_library(music, duration_s=2.0)
    store_files(db_url, [t.path for t in written])
    playlists = music / "Playlists"
    out = run_cli("playlist", str(written[0].path), "--length", "6", "--m3u8", str(playlists / "mix.m3u8"),
                  "--db", db_url)
    assert out.returncode == 0, out.stderr
    text = (playlists / "mix.m3u8").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and lines[1] == "#EXTINF:2,Radiohead - Airbag"
    assert lines[2] == "../radiohead-airbag.flac"  # relative to the playlist's folder, plain, no file://
    entries = read_m3u8(playlists / "mix.m3u8")
    assert len(entries) == 6 and len({p for p, _s, _l in entries}) == 6
    assert all(os.path.isfile(p) for p, _s, _l in entries)
    assert {os.path.realpath(p) for p, _s, _l in entries} == {os.path.realpath(t.path) for t in written}
    labels = {label for _p, _s, label in entries}
    assert "Björk - Jóga" in labels and "unknown" in labels  # no tags: the file name
    # query to M3U8 with an explicit base (MPD: relative to the music folder)
    out = run_cli("query", "genre:jazz", "--m3u8", str(tmp_path / "jazz.m3u8"), "--base", str(music),
                  "--db", db_url)
    assert out.returncode == 0, out.stderr
    entries = read_m3u8(tmp_path / "jazz.m3u8", base=music)
    assert sorted(os.path.basename(p) for p, _s, _l in entries) == ["coltrane-naima.m4a", "coltrane-steps.flac"]
    assert all(os.path.isfile(p) for p, _s, _l in entries)
    assert "\ncoltrane-naima.m4a\n" in (tmp_path / "jazz.m3u8").read_text()
    # similar to M3U8
    out = run_cli("similar", str(written[2].path), "-k", "3", "--m3u8", str(tmp_path / "s.m3u8"), "--db", db_url)
    assert out.returncode == 0, out.stderr
    assert all(os.path.isfile(p) for p, _s, _l in read_m3u8(tmp_path / "s.m3u8")) and \
        len(read_m3u8(tmp_path / "s.m3u8")) == 3
    out = run_cli("playlist", str(tmp_path / "elsewhere.flac"), "--db", db_url)
    assert out.returncode == 1 and "not a fingerprinted track" in out.stderr


def test_the_matrix_cache_follows_the_database(db_url, tmp_path):
    rows = _library()
    store_rows(db_url, rows[:10])
    cache = tmp_path / "data" / "cache"
    cache.parent.mkdir()
    first = load_matrix(db_url, cache_dir=cache)
    assert len(first) == 10 and len(list(cache.glob("similarity-*.npz"))) == 1
    assert load_matrix(db_url, cache_dir=cache) is first  # same key: the process's copy
    store_rows(db_url, rows[10:12])  # a write moves the key
    second = load_matrix(db_url, cache_dir=cache)
    assert len(second) == 12 and second.key != first.key
    from trackprint import search

    search._memo.clear()  # a new process: the file, not SQL
    third = load_matrix(db_url, cache_dir=cache)
    assert third.key == second.key and np.array_equal(third.z, second.z)
