"""A generated library fingerprinted by the real pipeline, and ``trackprint serve`` over it, for the web tests
(tests/test_web_api.py, tests/test_web_page.py).

Three folders, three families of sound (two tones, pink noise, a click track), two takes of each that
differ only by a little noise: each take's nearest track is its twin. Plus one file that is not audio
(``unsupported_format``). ``trackprint up --exit-when-idle`` fingerprints it once per test module (real
nats-server, analyzer, persister; the Rust engine when it is built), and ``served`` starts
``trackprint serve`` on a free port for a test.

A second, tagged library (:func:`tagged_library`, :func:`served_tagged`): the tracks of tests/tagged.py,
FLAC, MP3 and M4A files whose artist, album, genre and title mutagen wrote, fingerprinted by the same
``trackprint up`` (so the tags are read and stored by the real pipeline); one track has no tags at all.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.procs import run_cli, service, stop_all
from tests.waiting import wait_until
from trackprint.binaries import free_port

SR = 22050


def write_library(root) -> dict[str, str]:
    """The files under ``root``; returns track -> its twin (absolute paths)."""
    from tests.audio import click_track, pink_noise, sine, write_audio

    dur = 3.0
    rng = np.random.default_rng(7)
    family = {
        "tones": lambda: 0.5 * sine(220.0, dur, SR, db=-8) + 0.3 * sine(330.0, dur, SR, db=-14),
        "noise": lambda: pink_noise(dur, SR, db=-18, seed=3),
        "clicks": lambda: click_track(128.0, dur, SR, db=-4),
    }
    twins = {}
    for folder, make in family.items():
        base = make()
        (root / folder).mkdir(parents=True, exist_ok=True)
        for take in ("a", "b"):
            mono = base + rng.normal(0, 0.002, len(base)).astype(np.float32)
            stereo = np.stack([mono, 0.9 * mono], axis=1)
            write_audio(root / folder / f"{folder}-{take}.flac", stereo, SR)
        twins[str(root / folder / f"{folder}-a.flac")] = str(root / folder / f"{folder}-b.flac")
        twins[str(root / folder / f"{folder}-b.flac")] = str(root / folder / f"{folder}-a.flac")
    (root / "tones" / "broken.flac").write_bytes(b"this is not audio at all")
    return twins


def fingerprint(library, data) -> None:
    """One ``trackprint up --exit-when-idle`` over ``library`` (data in ``data``)."""
    out = run_cli("up", str(library), "--data-dir", str(data), "--analyzers", "1", "--exit-when-idle",
                  "--web-port", "0", timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def serve(data, log):
    """``trackprint serve --data-dir DATA`` on a free port, answering: (process, base URL)."""
    port = free_port()
    proc = service("serve", "--port", str(port), "--data-dir", str(data), log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{base}/api/status", timeout=5).status_code, 60, 0.3, "serve to answer",
                   until=lambda s: s == 200, ignore=(httpx.HTTPError,))
    except BaseException:
        stop_all([proc])
        raise
    return proc, base


@pytest.fixture(scope="module")
def real_library(tmp_path_factory):
    """(library root, data directory, twins) after one `trackprint up` over the generated library."""
    base = tmp_path_factory.mktemp("web")
    library, data = (base / "music").resolve(), base / "data"
    twins = write_library(library)
    fingerprint(library, data)
    return library, data, twins


@pytest.fixture
def served(real_library, tmp_path):
    """(base URL, library root, twins) of a `trackprint serve --data-dir DATA` on a free port."""
    library, data, twins = real_library
    proc, base = serve(data, tmp_path / "serve.log")
    try:
        yield base, library, twins
    finally:
        stop_all([proc])
    assert f"trackprint serve: {base}/" in (tmp_path / "serve.log").read_text()


@pytest.fixture(scope="module")
def tagged_library(tmp_path_factory):
    """(library root, data directory, tracks) after one `trackprint up` over tests/tagged.py's library:
    FLAC, MP3 and M4A files tagged by mutagen (tests.tagged.Track: path, tags, bpm, db)."""
    from tests.tagged import write_tagged_library

    base = tmp_path_factory.mktemp("web-tagged")
    library, data = (base / "music").resolve(), base / "data"
    tracks = write_tagged_library(library)
    assert {t.path.suffix for t in tracks} == {".flac", ".mp3", ".m4a"}
    fingerprint(library, data)
    return library, data, tracks


@pytest.fixture
def served_tagged(tagged_library, tmp_path):
    """(base URL, library root, tracks) of a `trackprint serve` over the tagged library."""
    library, data, tracks = tagged_library
    proc, base = serve(data, tmp_path / "serve-tagged.log")
    try:
        yield base, library, tracks
    finally:
        stop_all([proc])
