"""The `up` console (trackprint/progress.py): progress to 100%, nothing repeated while idle, a rename is
"moved", failures as they happen, an ETA from audio time."""

from __future__ import annotations

import io
import re
import subprocess
import threading

import pytest

from tests.audio import write_tones
from tests.procs import service, stop_all
from tests.waiting import wait_until
from trackprint.commands.up import PROGRESS_EVERY_S
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
        threading.Event().wait(4 * PROGRESS_EVERY_S)  # idle for several ticks of the console: nothing new
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


def test_a_root_going_offline_and_coming_back_is_said_as_it_happens():
    out = io.StringIO()
    console = Console(out, tty=False)
    files = {"/m/a.flac": 10, "/nas/b.flac": 10}
    done = {"/m/a.flac": "rust", "/nas/b.flac": "rust"}
    console.update(snap(0.0, files, done, audio_s=2.0))
    offline = snap(2.0, files, done, audio_s=2.0)
    offline.bus["watchers"]["h"]["offline"] = {"/nas": "not mounted"}
    console.update(offline)
    back = snap(4.0, files, done, audio_s=2.0)
    back.bus["watchers"]["h"]["offline"] = {}
    console.update(back)
    lines = out.getvalue().splitlines()
    went = [i for i, line in enumerate(lines) if line.startswith("library root OFFLINE: /nas")]
    returned = [i for i, line in enumerate(lines) if line == "library root back online: /nas"]
    assert len(went) == 1 and len(returned) == 1 and went[0] < returned[0], lines
    assert "(not mounted); no removals are published for it" in lines[went[0]]
    assert not any("/m:" in line or line.endswith(": /m") for line in lines)  # the root that stayed says nothing


def test_on_a_terminal_a_bar_with_percentage_and_files_and_events_above_it():
    out = io.StringIO()
    console = Console(out, tty=True)
    files = {"/m/a.flac": 100, "/m/b.flac": 100, "/m/c.flac": 100, "/m/d.flac": 100}
    console.update(snap(0.0, files, {}))
    console.update(snap(10.0, files, {"/m/a.flac": "rust", "/m/b.flac": "rust"}, audio_s=20.0))
    console.update(snap(20.0, files, {"/m/a.flac": "rust", "/m/b.flac": "rust"}, {"/m/c.flac": "corrupt"},
                        audio_s=20.0))
    console.close()
    text = out.getvalue()
    assert "progress:" not in text  # the bar, not the plain lines
    # a terminal overwrites a line at each "\r": these are the frames, in order
    frames = [frame for frame in re.split(r"[\r\n]", text) if frame.strip()]
    halfway = next(f for f in frames if f.startswith(" 50%|"))
    assert "| 2/4 files, 0.01 h audio;" in halfway and "ETA 10 s (20 s of audio left)" in halfway, halfway
    event = text.index("failed: /m/c.flac: corrupt\n")
    # the bar was cleared before the event (a line of blanks), the event got its own line, the bar came back below
    assert text[:event].endswith("\r") and text[:event].rstrip("\r").split("\r")[-1].strip() == ""
    after = [f for f in re.split(r"[\r\n]", text[event:]) if f.strip()][1:]
    assert after and all(re.match(r"^ *\d+%\|", f) for f in after), after
    assert after[-1].startswith(" 75%|") and "3/4 files" in after[-1] and "failed 1 (corrupt 1)" in after[-1]


def test_the_first_eta_is_measuring_and_a_slow_start_does_not_inflate_the_next():
    out = io.StringIO()
    console = Console(out, tty=False)
    files = {f"/m/{i}.flac": 100_000 for i in range(10)}  # ten files of 10 s of audio each
    console.update(snap(0.0, files, {}))
    assert "ETA measuring" in out.getvalue().splitlines()[-1]
    for t in range(2, 32, 2):  # 30 s of start-up: services starting, the scan, nothing done yet
        console.update(snap(float(t), files, {}))
    assert all("ETA measuring" in line for line in out.getvalue().splitlines())
    # then two files every 2 s: 10 s of audio per second
    console.update(snap(32.0, files, {"/m/0.flac": "rust", "/m/1.flac": "rust"}, audio_s=20.0))
    assert "ETA 8 s (80 s of audio left)" in out.getvalue().splitlines()[-1]  # not 68 s (80 s at 20 s/32 s)
    console.update(snap(34.0, files, {f"/m/{i}.flac": "rust" for i in range(4)}, audio_s=40.0))
    assert "ETA 6 s (60 s of audio left)" in out.getvalue().splitlines()[-1]  # not 51 s


def test_a_full_disk_and_a_filling_stream_are_said_as_they_happen_and_when_they_end():
    """Disk full (the data directory's free space) and a stream at 80% or more: one note when it starts, one
    when it ends, nothing while it lasts (the same as `status`'s warnings, trackprint/status.py)."""
    from trackprint.status import DISK_FULL_BYTES

    out = io.StringIO()
    console = Console(out, tty=False)
    files = {"/m/a.flac": 10, "/m/b.flac": 10}
    done = {"/m/a.flac": "rust"}

    def reading(at, free, fill):
        s = snap(at, files, done, audio_s=2.0)
        s.disk_free = free
        s.bus["streams"] = {"TRACKPRINT_EVENTS": {"messages": 2, "fill": fill},
                            "TRACKPRINT_RESULTS": {"messages": 1, "fill": 0.1}}
        return s

    plenty = 10 * DISK_FULL_BYTES
    for at, free, fill in [(0.0, plenty, 0.5), (2.0, DISK_FULL_BYTES // 4, 0.85), (4.0, DISK_FULL_BYTES // 8, 0.95),
                           (6.0, plenty, 0.95), (8.0, plenty, 0.4)]:
        console.update(reading(at, free, fill))
    lines = out.getvalue().splitlines()
    full = [i for i, line in enumerate(lines) if line.startswith("DISK FULL: the data directory's disk has 8 MiB free")]
    back = [i for i, line in enumerate(lines) if line.startswith("disk space back: ")]
    assert len(full) == 1 and len(back) == 1 and full[0] < back[0], lines
    assert "resumes by itself once space is freed" in lines[full[0]]
    filling = [i for i, line in enumerate(lines) if line.startswith("stream TRACKPRINT_EVENTS 85% FULL: new messages "
                                                                   "are rejected at 100%")]
    emptied = [i for i, line in enumerate(lines) if line == "stream TRACKPRINT_EVENTS below 80% again (40% full)"]
    assert len(filling) == 1 and len(emptied) == 1 and filling[0] < emptied[0], lines
    assert not any("TRACKPRINT_RESULTS" in line for line in lines)  # the stream that stayed low says nothing
