"""The beets plugin against a real beets library (beets from PyPI), driven through `beet` with its own config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.library_db import store_files
from tests.tagged import write_tagged_library
from trackprint.fingerprint import FINGERPRINT_VERSION
from trackprint.search import similar_to

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def beets_installed():
    """beets in this venv; installed from PyPI (the `beets` extra's pin) when missing."""
    try:
        import beets  # noqa: F401
    except ImportError:
        out = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "beets>=2,<3"], capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, f"pip install beets failed:\n{out.stdout}\n{out.stderr}"
    return True


def beet(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, BEETSDIR=str(home), HOME=str(home))
    # run from the beets folder, not the repository: trackprint must come from the installed package
    return subprocess.run([sys.executable, "-m", "beets", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=home)


@pytest.fixture
def beets_library(beets_installed, tmp_path):
    music = tmp_path / "music"
    written = write_tagged_library(music, duration_s=2.5)
    db = f"sqlite:///{tmp_path / 'trackprint.db'}"
    stored = store_files(db, [t.path for t in written])
    home = tmp_path / "beets"
    home.mkdir()
    (home / "config.yaml").write_text(
        f"directory: {music}\n"
        f"library: {home / 'library.db'}\n"
        f"pluginpath: [{REPO / 'beetsplug'}]\n"
        "plugins: trackprint\n"
        "import:\n  copy: no\n  write: no\n  autotag: no\n  quiet: yes\n  incremental: no\n"
        f"trackprint:\n  db: {db}\n")
    out = beet(home, "import", "-A", "-C", "-W", "-q", str(music))
    assert out.returncode == 0, out.stdout + out.stderr
    out = beet(home, "ls", "-f", "$title")
    assert len(out.stdout.splitlines()) == len(written), out.stdout + out.stderr
    return home, db, written, stored


def test_tpimport_fills_flexible_fields_and_ranges_work(beets_library):
    home, db, written, stored = beets_library
    out = beet(home, "tpimport")
    assert out.returncode == 0, out.stderr
    assert f"{len(written)} items updated, 0 unchanged, 0 not fingerprinted" in out.stdout
    out = beet(home, "ls", "-f", "$path|$tp_tempo_bpm|$tp_lufs|$tp_version")
    values = {}
    for line in out.stdout.splitlines():
        path, tempo, lufs, version = line.split("|")
        values[os.path.realpath(path)] = (float(tempo), float(lufs), version)
    for path, message in stored.items():
        tempo, lufs, version = values[os.path.realpath(path)]
        assert tempo == pytest.approx(message.fingerprint.tempo_bpm, abs=0.051)  # beets prints 1 decimal
        assert lufs == pytest.approx(message.fingerprint.lufs, abs=0.051)
        assert version == str(FINGERPRINT_VERSION)
    # a numeric range over the flexible field, not a string comparison
    tempos = sorted(m.fingerprint.tempo_bpm for m in stored.values())
    lo, hi = round(tempos[1] - 0.001, 3), round(tempos[3] + 0.001, 3)
    expected = sorted(os.path.realpath(p) for p, m in stored.items() if lo <= m.fingerprint.tempo_bpm <= hi)
    out = beet(home, "ls", "-p", f"tp_tempo_bpm:{lo}..{hi}")
    assert sorted(os.path.realpath(p) for p in out.stdout.splitlines()) == expected and len(expected) >= 3
    loud = max(m.fingerprint.lufs for m in stored.values())
    out = beet(home, "ls", "-p", f"tp_lufs:{round(loud - 0.001, 3)}..")
    assert [os.path.realpath(p) for p in out.stdout.splitlines()] == [
        os.path.realpath(p) for p, m in stored.items() if m.fingerprint.lufs == loud]
    again = beet(home, "tpimport")
    assert f"0 items updated, {len(written)} unchanged" in again.stdout


def test_tpsimilar_prints_the_nearest(beets_library):
    home, db, written, stored = beets_library
    seed = next(t for t in written if t.path.name == "coltrane-naima.m4a")
    expected = similar_to(db, [str(seed.path)], 3)
    out = beet(home, "tpsimilar", "-k", "3", "title:naima")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 3
    titles = {str(t.path): (t.tags.get("artist"), t.tags.get("album"), t.tags.get("title")) for t in written}
    for line, match in zip(lines, expected.matches):
        distance, _, rest = line.strip().partition("  ")
        assert float(distance) == pytest.approx(match.distance, abs=0.001)
        artist, album, title = titles[match.path]
        if title:
            assert rest == f"{artist} - {album} - {title}"  # beets' own item format
    # two seeds, their albums left out
    out = beet(home, "tpsimilar", "-k", "10", "-a", "artist:radiohead")
    assert out.returncode == 0, out.stderr
    expected = similar_to(db, [str(t.path) for t in written if t.tags.get("artist") == "Radiohead"], 10,
                          exclude_seed_albums=True)
    assert len(out.stdout.splitlines()) == len(expected.matches) == len(written) - 2
    assert "OK Computer" not in out.stdout
    out = beet(home, "tpsimilar", "title:nothing-like-this")
    assert out.returncode != 0 and "no item matches" in out.stderr
