"""The CLI answers a valid file with a fingerprint and a missing one with a typed error."""

import json

from tests.audio import sine, stereo, write_audio
from tests.procs import run_cli


def test_analyze_json_contract(tmp_path):
    write_audio(tmp_path / "tone.flac", stereo(sine(1000, 2.0, db=-6.02)))
    out = run_cli("analyze", "--engine", "python", "--json", str(tmp_path / "tone.flac"),
                  str(tmp_path / "missing.flac"))
    assert out.returncode == 1, out.stderr
    ok, missing = [json.loads(line) for line in out.stdout.splitlines()]
    assert ok["ok"] and ok["engine"] == "python" and len(ok["fingerprint"]) == 25
    assert ok["fingerprint"]["mid_pct"] > 99
    assert missing == {**missing, "ok": False} and missing["error"]["code"] == "not_found"
