"""The HTTP API (trackprint/web): values, not just status codes.

Quick tests: a real database (SQLite and PostgreSQL) written by the persister's own Store with a library
whose geometry is known (three folders of four tracks, one pair of near-twins), served by the real
application through Starlette's TestClient (httpx).

Slow test: ``trackprint up`` fingerprints a generated library (real nats-server, analyzers, persister),
then ``trackprint serve`` answers over real HTTP; the counts equal the files, the twin of a track is its
nearest, the map has one point per track, and /metrics counts the tracks by state. The same on a tagged
library (FLAC, MP3, M4A tagged by mutagen): the map groups by genre, similar and query answers carry the
tags. And every field docs/http-api.md documents is in the real answers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from tests.procs import service, stop_all
from tests.web_library import real_library, served, served_tagged, tagged_library  # noqa: F401  (fixtures)
from tests.waiting import wait_until
from trackprint.binaries import free_port
from trackprint.contracts import AnalysisFailure, DecodeFacts, Fingerprint, FingerprintResult, Tags, Timings
from trackprint.errors import ErrorCode
from trackprint.fingerprint import DIMENSIONS, FINGERPRINT_VERSION
from trackprint.persister.db import make_engine
from trackprint.persister.store import Meta, Store
from trackprint.web.app import SCHEMA, create_app

FOLDERS = {"rock": 0.0, "jazz": 1.0, "ambient": 2.0}  # cluster centres, far apart in every dimension
SPREAD = [0.05, 0.22, 0.4, 0.6]  # the tracks of a folder; 0.05 and 0.22 are the closest pair (the twins)


def values(cluster: float, offset: float, d_shift: int = 0) -> dict[str, float]:
    """25 values inside their ranges: a cluster level plus a per-track offset, varied across dimensions."""
    out = {}
    for d, name in enumerate(DIMENSIONS):
        wiggle = offset * (1 + ((d + d_shift) % 3)) / 3  # not collinear: the map has two real axes
        base = cluster + wiggle
        if name == "phase_correlation":
            out[name] = -0.9 + 0.6 * base
        elif name.endswith("_pct"):
            out[name] = 5 + 20 * base
        elif name == "lufs":
            out[name] = -30 + 8 * base
        elif name in ("spectral_centroid", "spectral_rolloff"):
            out[name] = 500 + 2000 * base
        elif name == "tempo_bpm":
            out[name] = 70 + 30 * base
        elif name in ("crest_db", "transient_density", "dynamic_range_variation", "loudness_variation_std"):
            out[name] = 3 + 5 * base
        else:  # 0..1
            out[name] = 0.05 + 0.3 * base
    return out


def result(path: str, seq: int, fp: dict[str, float], *, engine: str = "rust", genre: str | None = None):
    return FingerprintResult(
        path=path, fingerprint=Fingerprint(**fp), fingerprint_version=FINGERPRINT_VERSION, engine=engine,
        decode=DecodeFacts(codec="flac", container="flac", sample_rate=44100, channels=2, decoded_duration_s=200.0),
        timings=Timings(total_s=0.2, analysis_s=0.1), content_id=f"cid-{path}", size=1000, mtime_ns=seq,
        source_seq=seq, tags=Tags(artist="Band", title=path.rsplit("/", 1)[-1], genre=genre) if genre else None)


def fill(db_url: str, *, genres: bool = False) -> list[str]:
    """12 fingerprints (the last of each folder by the Python engine), one failure; the paths, sorted."""
    store = Store(db_url, sqlite_busy_timeout_s=5)
    store.migrate()
    seq = 0
    batch = []
    paths = []
    for folder, centre in FOLDERS.items():
        for n, offset in enumerate(SPREAD):
            seq += 1
            path = f"/lib/{folder}/t{n}.flac"
            paths.append(path)
            batch.append((result(path, seq, values(centre, offset, n), engine="python" if n == 3 else "rust",
                                 genre=folder.title() if genres else None), Meta(stream_seq=seq)))
    seq += 1
    batch.append((AnalysisFailure(path="/lib/rock/broken.flac", code=ErrorCode.CORRUPT, stage="decode",
                                  message="/lib/rock/broken.flac: decode: corrupt: bad frame", attempts=2,
                                  engine="rust", source_seq=seq), Meta(stream_seq=seq)))
    store.apply(batch)
    store.close()
    return sorted(paths)


@pytest.fixture
def client(db_url, tmp_path):
    paths = fill(db_url)
    app = create_app(db_url, data_dir=tmp_path / "no-data-dir")
    with TestClient(app) as c:
        c.paths = paths
        yield c


def get(client, url: str, status: int = 200) -> dict:
    response = client.get(url)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["schema"] == SCHEMA
    return body


def test_status_is_what_status_json_says_plus_progress_and_failures(client):
    body = get(client, "/api/status")
    assert {"run", "database", "bus", "warnings", "progress", "failures"} <= body.keys()
    db = body["database"]
    assert (db["known"], db["active"], db["failed"], db["pending"]) == (13, 12, 1, 0)
    assert db["failed_by_code"] == {"corrupt": 1} and db["engine_share"] == {"python": 3, "rust": 9}
    p = body["progress"]
    assert (p["discovered"], p["persisted"], p["failed"], p["done"], p["percent"]) == (13, 12, 1, 13, 100.0)
    assert p["failed_by_code"] == {"corrupt": 1}
    assert p["fallback_share"] == 0.25 and p["engines"] == {"python": 3, "rust": 9}
    assert body["failures"]["total"] == 1
    assert body["failures"]["items"][0]["path"] == "/lib/rock/broken.flac"
    assert body["failures"]["items"][0]["code"] == "corrupt"
    assert "bad frame" in body["failures"]["items"][0]["message"]


def test_similar_finds_the_twin_first_and_orders_by_distance(client):
    body = get(client, "/api/tracks/similar?path=/lib/jazz/t0.flac&k=5")
    items = body["items"]
    assert body["path"] == "/lib/jazz/t0.flac" and body["k"] == 5 and body["library_size"] == 12
    assert [m["path"] for m in items[:3]] == ["/lib/jazz/t1.flac", "/lib/jazz/t2.flac", "/lib/jazz/t3.flac"]
    assert all(m["folder"] == "jazz" for m in items[:3]) and items[0]["group"] == "jazz"
    distances = [m["distance"] for m in items]
    assert distances == sorted(distances) and distances[0] > 0
    assert "/lib/jazz/t0.flac" not in [m["path"] for m in items]
    # the same numbers as `trackprint similar` (trackprint/similarity.py on the same rows)
    from trackprint.search import similar_tracks

    cli = similar_tracks(client.app.state.library.db_url, "/lib/jazz/t0.flac", 5)
    assert [(m.path, round(m.distance, 6)) for m in cli.matches] == [(m["path"], m["distance"]) for m in items]


def test_similar_to_several_seeds(client):
    body = get(client, "/api/tracks/similar?path=/lib/jazz/t0.flac&path=/lib/jazz/t3.flac&k=2")
    assert body["seeds"] == ["/lib/jazz/t0.flac", "/lib/jazz/t3.flac"]
    assert {m["path"] for m in body["items"]} == {"/lib/jazz/t1.flac", "/lib/jazz/t2.flac"}  # between the seeds
    assert get(client, "/api/tracks/similar?path=/lib/jazz/t0.flac&exclude_seed_albums=maybe", 400)


def test_one_track_has_its_25_values_and_their_percentiles(client):
    body = get(client, "/api/tracks/one?path=/lib/ambient/t3.flac")
    features = body["features"]
    assert [f["name"] for f in features] == list(DIMENSIONS)
    assert body["engine"] == "python" and body["library_size"] == 12 and body["folder"] == "ambient"
    # the ambient folder has the largest values everywhere and t3 the largest offset in most dimensions:
    # its tempo is the library's maximum, so its mid-rank percentile is 100 * (11 + 0.5) / 12
    tempo = next(f for f in features if f["name"] == "tempo_bpm")
    assert tempo["value"] == pytest.approx(values(2.0, 0.6, 3)["tempo_bpm"])
    assert tempo["percentile"] == pytest.approx(100 * 11.5 / 12, abs=0.01)
    low = get(client, "/api/tracks/one?path=/lib/rock/t0.flac")["features"]
    assert all(f["percentile"] == pytest.approx(100 * 0.5 / 12, abs=0.01) for f in low)  # the minimum everywhere


def test_map_has_one_point_per_track_grouped_by_folder_and_separates_the_folders(client):
    body = get(client, "/api/map")
    assert body["count"] == 12 and len(body["points"]) == 12
    assert {p["path"] for p in body["points"]} == set(client.paths)
    assert body["group_by"] == "folder"
    assert body["groups"] == [{"name": "ambient", "count": 4}, {"name": "jazz", "count": 4}, {"name": "rock", "count": 4}]
    assert sum(body["explained_variance"]) <= 1.0 and body["explained_variance"][0] > 0.8
    x = {p["path"]: p["x"] for p in body["points"]}
    means = {f: np.mean([x[p] for p in x if f"/{f}/" in p]) for f in FOLDERS}
    assert means["rock"] < means["jazz"] < means["ambient"]  # the first axis is the cluster level
    assert get(client, "/api/map") == body  # deterministic
    assert (body["shown"], body["sampled"]) == (12, False)
    sample = get(client, "/api/map?max_points=5")
    assert (sample["count"], sample["shown"], sample["sampled"]) == (12, 5, True)
    assert sample["points"][0] == body["points"][0] and sample["points"][-1] == body["points"][-1]


def test_map_groups_by_genre_when_the_tags_have_one(db_url, tmp_path):
    fill(db_url, genres=True)
    with TestClient(create_app(db_url)) as c:
        body = get(c, "/api/map")
        assert body["group_by"] == "genre"
        assert {g["name"] for g in body["groups"]} == {"Rock", "Jazz", "Ambient"}
        similar = get(c, "/api/tracks/similar?path=/lib/jazz/t0.flac&k=1")["items"][0]
        assert (similar["genre"], similar["title"]) == ("Jazz", "Band - t1.flac")


def test_tracks_query_and_limit(client):
    body = get(client, "/api/tracks?q=jazz&limit=10")
    assert body["count"] == 4 and [t["path"] for t in body["items"]] == [p for p in client.paths if "/jazz/" in p]
    item = body["items"][0]
    assert item["state"] == "active" and set(item["features"]) == set(DIMENSIONS)
    assert get(client, "/api/tracks?limit=3")["count"] == 3
    assert get(client, "/api/tracks?q=nothing-like-this")["count"] == 0
    if body["query_language"] == "trackprint query":  # the query language: feature ranges
        low = values(0.0, 0.6, 3)["tempo_bpm"]  # rock's highest tempo
        ranged = get(client, f"/api/tracks?q=tempo_bpm:..{low}")
        assert {t["path"] for t in ranged["items"]} == {p for p in client.paths if "/rock/" in p}
        assert get(client, "/api/tracks?q=tempo_bpm:abc", 400)["error"]["code"] == "bad_query"


def test_playlist_is_a_chain_without_repeats(client):
    body = get(client, "/api/playlist?seed=/lib/rock/t0.flac&length=6")
    paths = [i["path"] for i in body["items"]]
    assert len(paths) == 6 == body["count"] and len(set(paths)) == 6
    assert paths[0] == "/lib/rock/t0.flac" and paths[1] == "/lib/rock/t1.flac"
    assert body["items"][0]["distance_to_previous"] == 0
    assert all("/rock/" in p for p in paths[:4])  # the folder first, then the nearest other one
    whole = get(client, "/api/playlist?seed=/lib/rock/t0.flac&length=500")
    assert whole["count"] == 12
    step = values(0.0, 0.22, 1)["tempo_bpm"] - values(0.0, 0.05, 0)["tempo_bpm"]  # t0 -> t1
    held = get(client, f"/api/playlist?seed=/lib/rock/t0.flac&length=6&max_tempo_step={step / 2}")
    assert [i["path"] for i in held["items"]] == ["/lib/rock/t0.flac"]  # no track within the tempo step
    assert held["max_tempo_step"] == step / 2


def test_errors_are_json_with_a_code(client, tmp_path):
    assert get(client, "/api/tracks/similar?path=/lib/nope.flac", 404)["error"]["code"] == "not_found"
    assert get(client, "/api/tracks/similar?path=/lib/rock/t0.flac&k=0", 400)["error"]["code"] == "bad_request"
    assert get(client, "/api/tracks/similar?path=/lib/rock/t0.flac&k=x", 400)["error"]["code"] == "bad_request"
    assert get(client, "/api/tracks/one", 400)["error"]["code"] == "bad_request"
    with TestClient(create_app(f"sqlite:///{tmp_path / 'none.db'}")) as c:
        error = get(c, "/api/map", 503)["error"]
        assert error["code"] == "no_database" and "nothing here yet" in error["message"]
        assert not (tmp_path / "none.db").exists()  # read-only: never creates a database


def metric(text_: str, name: str, **labels) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text_.splitlines():
        m = re.match(rf"^{name}(\{{(.*)\}})? (\S+)$", line)
        if m and ",".join(sorted((m.group(2) or "").split(","))) == wanted:
            return float(m.group(3))
    return None


def test_metrics_library_gauges(client, db_url):
    assert get(client, "/api/map")["count"] == 12
    engine = make_engine(db_url)
    with engine.begin() as conn:  # one fingerprint of an older spec version: stale
        conn.execute(text("UPDATE track_fingerprints SET fingerprint_version = 0 WHERE track_id = "
                          "(SELECT id FROM tracks WHERE path = '/lib/rock/t3.flac')"))
    engine.dispose()
    body = client.get("/metrics").text
    assert metric(body, "trackprint_library_readable") == 1
    assert metric(body, "trackprint_library_tracks", state="active") == 12
    assert metric(body, "trackprint_library_tracks", state="failed") == 1
    assert metric(body, "trackprint_library_tracks", state="pending") == 0
    assert metric(body, "trackprint_library_stale") == 1
    assert metric(body, "trackprint_library_failed", code="corrupt") == 1
    assert metric(body, "trackprint_library_fingerprints", engine="python") == 3
    assert metric(body, "trackprint_bus_reachable") == 0
    assert get(client, "/api/map")["count"] == 12  # cached: the change shows after the probe interval
    client.app.state.library._probed_at = 0
    assert get(client, "/api/map")["count"] == 11  # a stale row is not on the map (two definitions)


def test_the_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="map"' in page.text and "/static/app.js" in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200


# -- the whole pipeline ---------------------------------------------------------------------------------------
SR = 22050


@pytest.mark.slow
def test_api_on_a_library_fingerprinted_by_up(served):
    base, library, twins = served

    def get_(path: str) -> dict:
        r = httpx.get(base + path, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["schema"] == SCHEMA
        return r.json()

    status = get_("/api/status")
    assert status["database"]["active"] == 6 and status["database"]["failed_by_code"] == {"unsupported_format": 1}
    p = status["progress"]
    assert (p["discovered"], p["persisted"], p["failed"], p["percent"], p["eta_s"]) == (7, 6, 1, 100.0, 0.0)
    assert status["failures"]["items"][0]["path"] == str(library / "tones" / "broken.flac")
    for path, twin in twins.items():
        nearest = get_(f"/api/tracks/similar?k=3&path={path}")["items"]
        assert nearest[0]["path"] == twin, (path, nearest)
    mapped = get_("/api/map")
    assert mapped["count"] == 6 and {pt["path"] for pt in mapped["points"]} == set(twins)
    assert {g["name"]: g["count"] for g in mapped["groups"]} == {"tones": 2, "noise": 2, "clicks": 2}
    one = get_(f"/api/tracks/one?path={library / 'clicks' / 'clicks-a.flac'}")
    assert len(one["features"]) == 25 and all(0 < f["percentile"] < 100 for f in one["features"])
    assert get_("/api/tracks?q=noise")["count"] == 2
    playlist = get_(f"/api/playlist?length=6&seed={library / 'noise' / 'noise-a.flac'}")
    assert [i["path"] for i in playlist["items"][:2]] == [str(library / "noise" / f"noise-{t}.flac") for t in "ab"]
    metrics = httpx.get(base + "/metrics", timeout=30).text
    assert metric(metrics, "trackprint_library_tracks", state="active") == 6
    assert metric(metrics, "trackprint_library_failed", code="unsupported_format") == 1
    assert metric(metrics, "trackprint_library_stale") == 0


def http_get(base: str, path: str) -> dict:
    r = httpx.get(base + path, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["schema"] == SCHEMA
    return r.json()


@pytest.mark.slow
def test_api_on_a_tagged_library_groups_by_genre_and_answers_with_the_tags(served_tagged, tagged_library):
    """FLAC, MP3 and M4A files whose tags mutagen wrote, stored by `trackprint up`: the answers carry them."""
    base, library, tracks = served_tagged
    tags = {str(t.path): t.tags for t in tracks}
    by_name = {t.path.name: str(t.path) for t in tracks}

    mapped = http_get(base, "/api/map")
    assert mapped["group_by"] == "genre" and mapped["count"] == 6
    assert {g["name"]: g["count"] for g in mapped["groups"]} == {"Rock": 2, "Jazz": 2, "Electronic": 1,
                                                                  "(no genre)": 1}
    for point in mapped["points"]:
        t = tags[point["path"]]
        assert point["group"] == t.get("genre", "(no genre)")
        assert point["title"] == (f"{t['artist']} - {t['title']}" if t else None)

    # similar: the tags of every match, and the known neighbour first (same album, same make, close levels)
    airbag = by_name["radiohead-airbag.flac"]
    body = http_get(base, f"/api/tracks/similar?k=5&path={airbag}")
    items = body["items"]
    assert body["library_size"] == 6 and len(items) == 5 and airbag not in [i["path"] for i in items]
    assert items[0]["path"] == by_name["radiohead-paranoid.mp3"]
    assert (items[0]["title"], items[0]["artist"], items[0]["album"], items[0]["genre"], items[0]["year"]) == \
        ("Radiohead - Paranoid Android", "Radiohead", "OK Computer", "Rock", 1997)
    for item in items:
        t = tags[item["path"]]
        assert item["artist"] == t.get("artist") and item["album"] == t.get("album")
        assert item["genre"] == t.get("genre") and item["group"] == t.get("genre", "(no genre)")
        assert item["title"] == (f"{t['artist']} - {t['title']}" if t else None)
    from trackprint.search import similar_to  # the same answer as in-process (and `trackprint similar`)

    data = tagged_library[1]
    direct = similar_to(f"sqlite:///{data / 'trackprint.db'}", [airbag], 5)
    assert [(m.path, round(m.distance, 6)) for m in direct.matches] == [(i["path"], i["distance"]) for i in items]

    # a tag query: the two jazz tracks (an M4A and a FLAC), with their tags
    jazz = http_get(base, "/api/tracks?q=genre:jazz")
    assert jazz["count"] == 2
    assert sorted(i["path"] for i in jazz["items"]) == [by_name["coltrane-naima.m4a"], by_name["coltrane-steps.flac"]]
    for item in jazz["items"]:
        t = tags[item["path"]]
        assert (item["info"]["artist"], item["info"]["title"], item["info"]["album"], item["info"]["genre"]) == \
            ("John Coltrane", t["title"], "Giant Steps", "Jazz")
        assert set(item["features"]) == set(DIMENSIONS)
    rock = http_get(base, "/api/tracks?q=genre:rock sort:title+")
    assert [(i["info"]["artist"], i["info"]["title"]) for i in rock["items"]] == \
        [("Radiohead", "Airbag"), ("Radiohead", "Paranoid Android")]
    assert {Path(i["path"]).suffix for i in rock["items"]} == {".flac", ".mp3"}
    one = http_get(base, f"/api/tracks/one?path={by_name['bjork-joga.mp3']}")
    assert (one["title"], one["genre"], one["library_size"]) == ("Björk - Jóga", "Electronic", 6)


# -- docs/http-api.md: every documented field is in the real answers -------------------------------------------
DOC = Path(__file__).resolve().parent.parent / "docs" / "http-api.md"
# backticked words in a section that are not fields of its answer: request parameters the answer does not
# echo, and values (group_by's "genre" / "folder")
NOT_FIELDS = {"/api/tracks": {"q"}, "/api/map": {"max_points", "genre", "folder"}}


def documented_fields() -> dict[str, set[str]]:
    """endpoint -> the field names its section of docs/http-api.md lists (every `lowercase_word` in backticks,
    less the parameters and values of NOT_FIELDS and the words after "instead of")."""
    out = {}
    for section in re.split(r"^## ", DOC.read_text(encoding="utf-8"), flags=re.M)[1:]:
        heading, _, body = section.partition("\n")
        m = re.match(r"`GET (/api/[a-z/]+)", heading)
        if not m:
            continue
        body = re.sub(r"instead of `[a-z_]+`", "", body)
        out[m.group(1)] = set(re.findall(r"`([a-z_]+)`", body)) - NOT_FIELDS.get(m.group(1), set())
    return out


def answer_keys(value) -> set[str]:
    """Every key of an answer: an object's keys and, in a list of objects, the keys every element has."""
    if isinstance(value, dict):
        return set(value).union(*(answer_keys(v) for v in value.values()))
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return set.intersection(*(set(v) for v in value)).union(*(answer_keys(v) for v in value))
    return set()


def documented_metrics(paragraph: int = 0) -> set[str]:
    """The metric names of the /metrics section's first paragraph (`a_b_x|y{label}` is a_b_x and a_b_y)."""
    section = DOC.read_text(encoding="utf-8").split("## `GET /metrics`", 1)[1].split("\n## ", 1)[0]
    text_ = [p for p in section.strip().split("\n\n")][paragraph]
    names = set()
    for word in re.findall(r"`(trackprint_[a-z_|]+)(?:\{[a-z]+\})?`", text_):
        first, *more = word.split("|")
        prefix = first.rsplit("_", 1)[0] + "_"
        names |= {first, *(prefix + m for m in more)}
    return names


def test_the_doc_parser_finds_the_fields():
    fields = documented_fields()
    assert set(fields) == {"/api/status", "/api/tracks", "/api/tracks/similar", "/api/tracks/one", "/api/playlist",
                           "/api/map"}
    assert {"discovered", "eta_s", "fallback_share", "failures", "attempts"} <= fields["/api/status"]
    assert {"distance", "title", "artist", "group", "seeds"} <= fields["/api/tracks/similar"]
    assert "distance" not in fields["/api/playlist"] and "distance_to_previous" in fields["/api/playlist"]
    assert {"group_by", "explained_variance", "points", "x", "y"} <= fields["/api/map"]
    assert {"trackprint_library_tracks", "trackprint_bus_consumer_unacked", "trackprint_bus_stream_fill"} <= \
        documented_metrics()


@pytest.mark.slow
def test_every_documented_field_is_in_the_real_answers(served):
    base, library, twins = served
    noise = str(library / "noise" / "noise-a.flac")
    urls = {"/api/status": "/api/status", "/api/tracks": "/api/tracks?q=noise&limit=5",
            "/api/tracks/similar": f"/api/tracks/similar?k=3&path={noise}",
            "/api/tracks/one": f"/api/tracks/one?path={noise}",
            "/api/playlist": f"/api/playlist?length=3&seed={noise}", "/api/map": "/api/map"}
    fields = documented_fields()
    assert set(fields) == set(urls), "a section of docs/http-api.md this test does not call"
    for endpoint, url in urls.items():
        body = http_get(base, url)
        if endpoint == "/api/status":
            assert body["failures"]["items"], "a failure, so that its fields can be checked"
        missing = fields[endpoint] - answer_keys(body)
        assert not missing, f"{endpoint}: documented in docs/http-api.md, missing from the answer: {sorted(missing)}"
    library_gauges = {n for n in documented_metrics() if n.startswith("trackprint_library_")}
    exposed = {line.split("{")[0].split(" ")[0] for line in httpx.get(base + "/metrics", timeout=30).text.splitlines()
               if line and not line.startswith("#")}
    assert len(library_gauges) >= 6 and not library_gauges - exposed, sorted(library_gauges - exposed)
    assert "trackprint_bus_reachable" in exposed


@pytest.mark.slow
def test_up_serves_the_page_and_one_metrics_endpoint_for_the_run(tmp_path):
    """`up --web-port P --metrics-port M`: up prints the URL, /api/status shows the live run (bus reachable),
    and /metrics repeats every service's own counters with a service label."""
    from tests.audio import write_tones

    library, data = tmp_path / "music", tmp_path / "data"
    write_tones(library, [f"t{i}.flac" for i in range(3)], SR, base_hz=200, step_hz=97, seed=0, duration_s=1.5,
                amplitude=0.3, noise=0.02, channels=2)
    web, metrics_base = free_port(), free_port()
    log = tmp_path / "up.out"
    proc = service("up", str(library), "--data-dir", str(data), "--analyzers", "1", "--web-port", str(web),
                   "--metrics-port", str(metrics_base), log=log)
    base = f"http://127.0.0.1:{web}"
    try:
        wait_until(lambda: f"web: {base}/" in log.read_text(), 120, 0.5, "up to print the web URL")
        status = wait_until(lambda: httpx.get(f"{base}/api/status", timeout=10).json(), 180, 1.0,
                            "the three tracks persisted", until=lambda s: s["progress"].get("persisted") == 3,
                            ignore=(httpx.HTTPError, KeyError, json.JSONDecodeError))
        assert status["bus"]["reachable"] and status["run"]["web_url"] == f"{base}/"
        assert status["progress"]["discovered"] == 3
        text_ = wait_until(lambda: httpx.get(f"{base}/metrics", timeout=10).text, 60, 1.0,
                           "the services' own metrics", until=lambda t: 'trackprint_federate_up{service="watcher"} 1.0' in t)
        assert metric(text_, "trackprint_library_tracks", state="active") == 3
        assert metric(text_, "trackprint_federate_up", service="persister") == 1
        assert metric(text_, "trackprint_federate_up", service="analyzer-1") == 1
        assert re.search(r'^trackprint_analyzer_events_total\{.*service="analyzer-1".*\} 3\.0$', text_, re.M), text_
        assert metric(text_, "trackprint_bus_reachable") == 1
        exposed = {line.split("{")[0].split(" ")[0] for line in text_.splitlines() if line and line[0] != "#"}
        wanted = documented_metrics() - {"trackprint_library_failed"}  # no failure here: no sample
        assert not wanted - exposed, sorted(wanted - exposed)  # the bus's too (test above: the library's)
    finally:
        stop_all([proc], timeout=60)
    assert proc.returncode == 0, log.read_text()
    with pytest.raises(httpx.HTTPError):  # the web server stopped with up
        httpx.get(f"{base}/api/status", timeout=2)
