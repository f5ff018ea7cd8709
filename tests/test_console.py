"""The `up` console (trackprint/progress.py): progress to 100%, nothing repeated while idle, a rename is
"moved", failures as they happen, an ETA from audio time."""

from __future__ import annotations

import io
import subprocess
import threading

import pytest

from tests.audio import write_tones
from tests.procs import service, stop_all
from tests.waiting import wait_until
from trackprint.progress import Console, Snapshot


def snap(at, files, fingerprinted, failed=(), audio_s=0.0, moved=0, removed=0, unacked=0) -> Snapshot:
    bus = {"reachable": True, "consumers": {"analyzer": {"pending": 0, "unacked": unacked}},
           "watchers": {"h": {"published_by_kind": {"moved": moved, "removed": removed}}}}
    return Snapshot(at=at, files=dict(files), fingerprinted=dict(fingerprinted), failed=dict(failed),
                    audio_s=audio_s, bus=bus)


def test_plain_lines_on_change_only_eta_from_audio_and_events():
    out = io.StringIO()
    console = Console(out, tty=False)
    # a 2-hour file (big) and three small ones: sizes stand for audio
    files = {"/m/long.flac": 7200_000, "/m/a.flac": 180_000, "/m/b.flac": 180_000, "/m/c.flac": 180_000}
    console.update(snap(0.0, files, {}))
    console.update(snap(30.0, files, {"/m/a.flac": "rust", "/m/b.flac": "rust"}, audio_s=360.0))
    line = out.getvalue().splitlines()[-1]
    assert "50% 2/4 files" in line and "4.0 files/min" in line
    # what is left is ~2 h of audio at 12 s of audio per second: ETA ~ 10.3 min, not "one file left"
    assert "ETA 10 min (2.0 h of audio left)" in line, line
    console.update(snap(40.0, files, {"/m/a.flac": "rust", "/m/b.flac": "rust", "/m/c.flac": "python"},
                        {"/m/long.flac": "corrupt"}, audio_s=540.0))
    text = out.getvalue()
    assert "failed: /m/long.flac: corrupt" in text and "fallback: /m/c.flac" in text
    assert "100% 4/4 files" in text.splitlines()[-1]
    before = out.getvalue()
    for t in range(41, 200, 2):  # idle: nothing new is printed
        console.update(snap(float(t), files, {"/m/a.flac": "rust", "/m/b.flac": "rust", "/m/c.flac": "python"},
                            {"/m/long.flac": "corrupt"}, audio_s=540.0))
    assert out.getvalue() == before
    renamed = dict(files)
    renamed["/m/a2.flac"] = renamed.pop("/m/a.flac")
    console.update(snap(201.0, renamed, {"/m/a2.flac": "rust", "/m/b.flac": "rust", "/m/c.flac": "python"},
                        {"/m/long.flac": "corrupt"}, audio_s=540.0, moved=1))
    last = out.getvalue().splitlines()[-1]
    assert "moved 1, deleted 0" in last and "100% 4/4" in last


def test_the_files_being_analysed_are_named_from_the_analyzers_reports():
    import time

    out = io.StringIO()
    console = Console(out, tty=False)
    files = {"/m/a.flac": 10, "/m/long.flac": 1000, "/m/b.flac": 10, "/m/c.flac": 10}
    reading = snap(0.0, files, {"/m/a.flac": "rust"}, audio_s=1.0, unacked=1)
    reading.bus["analyzers"] = {"h-1": {"analysing": ["/m/long.flac"], "at": time.time()},
                                "h-2": {"analysing": ["/m/b.flac"], "at": time.time() - 600}}  # stopped long ago
    console.update(reading)
    last = out.getvalue().splitlines()[-1]
    assert "analysing long.flac" in last and "b.flac" not in last


@pytest.mark.slow
def test_up_console_on_a_pipe_reaches_100_percent_shows_a_rename_as_moved_and_never_repeats(tmp_path):
    library, data = tmp_path / "music", tmp_path / "data"
    write_tones(library, [f"t{i}.flac" for i in range(4)], 22050, base_hz=300, step_hz=71, seed=5, duration_s=1.0)
    (library / "broken.flac").write_bytes(b"not audio at all")
    up = service("up", str(library), "--data-dir", str(data), "--analyzers", "1",
                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(up.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("100% 5/5 files" in line for line in lines), 180, 0.5, "progress to reach 100%")
        assert any(line.startswith("failed: ") and "broken.flac: unsupported_format" in line for line in lines)
        (library / "t0.flac").rename(library / "renamed.flac")
        wait_until(lambda: any("moved 1, deleted 0" in line for line in lines), 90, 0.5,
                   lambda: "a rename shown as moved: " + "".join(lines[-5:]))
        settled = len(lines)
        threading.Event().wait(12)  # idle for several ticks: nothing new
        assert len(lines) == settled, lines[settled:]
    finally:
        stop_all([up])
        reader.join(30)
    # the same line twice in a row (rate and ETA aside) would be a repeat
    progress = [";".join(line.split(";")[:1] + line.split(";")[3:]) for line in lines if line.startswith("progress: ")]
    assert all(a != b or "starting" in a for a, b in zip(progress, progress[1:])), progress
    assert not any("deleted 1" in line for line in lines)


def test_a_costly_snapshot_spaces_the_next_ones_out(tmp_path, monkeypatch):
    """The console's reads grow with the library; it waits SNAPSHOT_COST_FACTOR times a read's cost before
    the next, so on a large library it updates less often instead of taking a core."""
    import time

    from trackprint import progress

    console = progress.RunConsole("sqlite:///" + str(tmp_path / "none.db"), tmp_path, None, rust_available=True,
                                  out=io.StringIO())
    cost = {"s": 0.0}

    def snapshot():
        time.sleep(cost["s"])
        return Snapshot(at=time.monotonic(), files={})

    monkeypatch.setattr(console, "snapshot", snapshot)
    started = time.monotonic()
    console.tick(every_s=2.0)
    assert not console.due(started + 1.9) and console.due(started + 2.1)  # cheap reads: every 2 s
    cost["s"] = 0.1
    started = time.monotonic()
    console.tick(every_s=2.0)
    wait = progress.SNAPSHOT_COST_FACTOR * 0.1
    assert not console.due(started + wait - 0.1) and console.due(started + wait * 1.5)
