"""Tags through the whole pipeline (`trackprint up`): stored at analysis, updated on retag without re-analysis."""

import pytest
from sqlalchemy import create_engine, text

from tests.procs import run_cli
from tests.tagged import tag_file, write_tagged_library

pytestmark = pytest.mark.slow


def stored(db_path):
    engine = create_engine(f"sqlite:///{db_path}")
    try:
        with engine.connect() as conn:
            return {row.path.rsplit("/", 1)[1]: row for row in conn.execute(text(
                "SELECT t.path, g.artist, g.title, g.genre, g.year, f.reused, f.analyzed_at, f.engine "
                "FROM tracks t JOIN track_fingerprints f ON f.track_id = t.id "
                "LEFT JOIN track_tags g ON g.track_id = t.id WHERE t.state = 'active'"))}
    finally:
        engine.dispose()


def test_up_stores_tags_and_a_retag_updates_them_without_analysis(tmp_path):
    music, data = tmp_path / "music", tmp_path / "data"
    write_tagged_library(music, duration_s=2.0)
    args = ("up", str(music), "--data-dir", str(data), "--analyzers", "2", "--exit-when-idle")
    first = run_cli(*args, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    before = stored(data / "trackprint.db")
    assert len(before) == 6
    assert (before["radiohead-paranoid.mp3"].artist, before["radiohead-paranoid.mp3"].title) == (
        "Radiohead", "Paranoid Android")
    assert (before["coltrane-naima.m4a"].genre, before["coltrane-naima.m4a"].year) == ("Jazz", 1960)
    assert before["unknown.m4a"].artist is None
    for name in ("radiohead-paranoid.mp3", "coltrane-naima.m4a", "radiohead-airbag.flac"):
        tag_file(music / name, artist="Retagged", genre="Trip hop")
    second = run_cli(*args, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    after = stored(data / "trackprint.db")
    for name in ("radiohead-paranoid.mp3", "coltrane-naima.m4a", "radiohead-airbag.flac"):
        assert (after[name].artist, after[name].genre) == ("Retagged", "Trip hop"), name
        assert after[name].title == before[name].title
        assert after[name].reused  # the fingerprint came from the content-id cache: no analysis
    assert after["bjork-joga.mp3"].analyzed_at == before["bjork-joga.mp3"].analyzed_at
    out = run_cli("query", "genre:trip artist:retagged", "--paths", "--data-dir", str(data))
    assert sorted(p.rsplit("/", 1)[1] for p in out.stdout.split()) == [
        "coltrane-naima.m4a", "radiohead-airbag.flac", "radiohead-paranoid.mp3"]
