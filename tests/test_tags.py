"""Tags: read with mutagen from real tagged files, carried by the analyzer (fresh on reuse), stored by the persister."""

from __future__ import annotations

import asyncio
import os

import msgspec
import pytest
from sqlalchemy import inspect, select

from tests.audio import SR, noisy_tone, write_audio
from tests.tagged import tag_file, write_tagged_library
from trackprint.contracts import DecodeFacts, Fingerprint, FingerprintResult, Tags, Timings, decode_result, encode
from trackprint.fingerprint import DIMENSIONS
from trackprint.paths import Library
from trackprint.persister.models import track_tags, tracks
from trackprint.persister.store import Meta, Store
from trackprint.pyengine.identity import container_of, content_id
from trackprint.tags import read_tags


def test_tags_of_flac_mp3_m4a_written_by_mutagen(tmp_path):
    by_name = {t.path.name: read_tags(t.path) for t in write_tagged_library(tmp_path)}
    assert by_name["radiohead-airbag.flac"] == Tags(
        artist="Radiohead", album_artist="Radiohead", album="OK Computer", title="Airbag", track_number=1,
        genre="Rock", year=1997, duration_s=3.0, mb_release_id="0b6b4ba0-d36f-47bd-b4ea-6a5b91842d29")
    mp3 = by_name["radiohead-paranoid.mp3"]
    assert (mp3.artist, mp3.title, mp3.track_number, mp3.year, mp3.genre) == (
        "Radiohead", "Paranoid Android", 2, 1997, "Rock")
    assert mp3.mb_recording_id == "6e8a3b2c-5a1b-4b7e-9a62-0a1c3c7c8d11"  # ID3 UFID
    assert mp3.duration_s == pytest.approx(3.0, abs=0.1)
    m4a = by_name["coltrane-naima.m4a"]
    assert (m4a.artist, m4a.album, m4a.title, m4a.track_number, m4a.genre, m4a.year) == (
        "John Coltrane", "Giant Steps", "Naima", 6, "Jazz", 1960)
    assert m4a.duration_s == pytest.approx(3.0, abs=0.1)
    assert by_name["coltrane-steps.flac"].mb_artist_id == "b625448e-bf4a-41c3-a421-72ad46cdb831"
    assert by_name["bjork-joga.mp3"].artist == "Björk" and by_name["bjork-joga.mp3"].title == "Jóga"
    untagged = by_name["unknown.m4a"]
    assert untagged.artist is None and untagged.title is None and untagged.duration_s == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize("name", ["a.ogg", "a.opus"])
def test_tags_of_ogg_vorbis_and_opus(tmp_path, name):
    path = write_audio(tmp_path / name, noisy_tone(440, 1.0, 48000), 48000)
    tag_file(path, artist="Stereolab", album="Dots and Loops", title="Brakhage", track_number="1/10",
             disc_number="2/2", year="1997-09-22", genre="Post-rock")
    tags = read_tags(path)
    assert (tags.artist, tags.album, tags.title, tags.track_number, tags.disc_number, tags.year, tags.genre) == (
        "Stereolab", "Dots and Loops", "Brakhage", 1, 2, 1997, "Post-rock")
    assert tags.duration_s == pytest.approx(1.0, abs=0.05)


def test_the_container_hint_of_the_content_id_reads_the_same_tags_and_a_wrong_hint_does_no_harm(tmp_path):
    paths = [t.path for t in write_tagged_library(tmp_path)]
    for name in ("a.ogg", "a.opus"):
        paths.append(write_audio(tmp_path / name, noisy_tone(440, 1.0, 48000), 48000))
        tag_file(paths[-1], artist="Stereolab", title="Brakhage", track_number="1/10")
    containers = [container_of(content_id(str(path))) for path in paths]
    for path, container in zip(paths, containers):
        unhinted = read_tags(path)
        assert unhinted.duration_s, path
        assert read_tags(path, container) == unhinted, (path, container)
        for wrong in {"flac", "mp3", "mp4", "ogg", "wav"} - {container}:  # a hint can never change the tags read
            assert read_tags(path, wrong) == unhinted, (path, wrong)
    assert set(containers) >= {"flac", "mp3", "mp4", "ogg"}


def test_bad_or_missing_tags_are_empty_fields_never_an_exception(tmp_path):
    flac = write_audio(tmp_path / "x.flac", noisy_tone(440, 1.0, SR), SR)
    tag_file(flac, track_number="two", year="sometime", title="   ")
    tags = read_tags(flac)
    assert tags.track_number is None and tags.year is None and tags.title is None and tags.duration_s == 1.0
    (tmp_path / "broken.mp3").write_bytes(b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f" + os.urandom(300))
    (tmp_path / "text.flac").write_text("not audio")
    (tmp_path / "empty.m4a").write_bytes(b"")
    for name in ("broken.mp3", "text.flac", "empty.m4a", "missing.ogg"):
        assert read_tags(tmp_path / name) == Tags(), name
    assert read_tags(os.fsencode(tmp_path / "x.flac")).duration_s == 1.0  # a bytes path (a name that is not UTF-8)


def test_old_messages_without_tags_still_decode():
    fp = Fingerprint(**{d: 0.5 for d in DIMENSIONS})
    fp.lufs, fp.tempo_bpm = -10.0, 120.0
    old = FingerprintResult(path="/m/a.flac", fingerprint=fp, fingerprint_version=1, engine="python",
                            decode=DecodeFacts(codec="flac", container="flac", sample_rate=SR, channels=2,
                                               decoded_duration_s=1.0),
                            timings=Timings(total_s=0.1), content_id="flac-x")
    raw = msgspec.json.decode(encode(old))
    del raw["tags"]  # what an analyzer of the previous release published
    assert decode_result(msgspec.json.encode(raw)).tags is None
    new = msgspec.structs.replace(old, tags=Tags(artist="A", year=2001))
    assert decode_result(encode(new)).tags == Tags(artist="A", year=2001)


def _result(path, seq, tags, reused=False):
    fp = Fingerprint(**{d: 0.5 for d in DIMENSIONS})
    return FingerprintResult(path=path, fingerprint=fp, fingerprint_version=1, engine="python",
                             decode=DecodeFacts(codec="flac", container="flac", sample_rate=SR, channels=2,
                                                decoded_duration_s=1.0),
                             timings=Timings(total_s=0.1), content_id="flac-same", source_seq=seq, tags=tags,
                             reused=reused)


def _tags_of(store, path):
    with store.engine.connect() as conn:
        row = conn.execute(select(track_tags).join(tracks, tracks.c.id == track_tags.c.track_id)
                           .where(tracks.c.path == path)).one_or_none()
    return row._mapping if row is not None else None


def test_the_persister_stores_tags_and_a_retag_replaces_them(db_url):
    store = Store(db_url)
    try:
        store.migrate()
        insp = inspect(store.engine)
        assert {c["name"] for c in insp.get_columns("track_tags")} == {c.name for c in track_tags.c}
        store.apply([(_result("/m/a.flac", 1, Tags(artist="Old", title="T", year=1999, track_number=3)), Meta(1))])
        row = _tags_of(store, "/m/a.flac")
        assert (row["artist"], row["title"], row["year"], row["track_number"], row["genre"]) == ("Old", "T", 1999, 3,
                                                                                                  None)
        # a retag: the same audio reused, fresh tags (a removed tag becomes empty)
        store.apply([(_result("/m/a.flac", 2, Tags(artist="New", year=1999), reused=True), Meta(2))])
        row = _tags_of(store, "/m/a.flac")
        assert (row["artist"], row["title"], row["year"], row["track_number"]) == ("New", None, 1999, None)
        # a result without tags (an analyzer of the previous release) keeps what is stored
        store.apply([(_result("/m/a.flac", 3, None), Meta(3))])
        assert _tags_of(store, "/m/a.flac")["artist"] == "New"
        # an older result changes nothing
        store.apply([(_result("/m/a.flac", 1, Tags(artist="Old")), Meta(4))])
        assert _tags_of(store, "/m/a.flac")["artist"] == "New"
    finally:
        store.close()


def test_the_analyzer_reads_tags_and_a_retag_reuses_the_audio_with_new_tags(nats_server, tmp_path):
    from tests.test_analyzer_worker import Running, _last_seq, publish_event, results, run, wait_results
    from tests.waiting import wait_until_async
    from trackprint.analyzer.worker import WorkerConfig

    lib = tmp_path / "lib"
    tracks_ = {t.path.name: t for t in write_tagged_library(lib, duration_s=2.0)}
    mp3 = tracks_["radiohead-paranoid.mp3"].path

    async def main():
        cfg = WorkerConfig(use_rust=False, concurrency=2, library=Library((str(tmp_path),)))
        async with Running(nats_server.url, cfg) as r:
            await publish_event(r.js, kind="added", path=str(mp3), size=mp3.stat().st_size)
            first = decode_result((await wait_results(r.js, 1))[0].data)
            assert isinstance(first, FingerprintResult) and not first.reused
            assert (first.tags.artist, first.tags.title, first.tags.track_number) == ("Radiohead",
                                                                                       "Paranoid Android", 2)
            analysed = r.worker.counts.get("engine_python", 0)
            tag_file(mp3, artist="Radiohead (remastered)", title="Paranoid Android", genre="Alternative")
            st = mp3.stat()
            await publish_event(r.js, kind="changed", path=str(mp3), size=st.st_size, mtime_ns=st.st_mtime_ns)
            # the file's subject keeps its latest result: the retag's replaces the first
            await wait_until_async(lambda: _last_seq(r.js), 60, message="the retag's result",
                                   until=lambda last: last >= 2)
            (latest,) = await results(r.js)
            second = decode_result(latest.data)
            assert isinstance(second, FingerprintResult) and second.reused
            assert second.content_id == first.content_id and second.fingerprint == first.fingerprint
            assert (second.tags.artist, second.tags.genre) == ("Radiohead (remastered)", "Alternative")
            assert r.worker.counts.get("engine_python", 0) == analysed  # no analysis for a retag

    run(main())
