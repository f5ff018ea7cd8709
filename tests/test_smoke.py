"""The CLI answers a valid file with a fingerprint and a missing one with a typed error."""

import json
import subprocess
import sys

import numpy as np
import soundfile as sf


def test_analyze_json_contract(tmp_path):
    sr = 44100
    t = np.arange(sr * 2) / sr
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    sf.write(tmp_path / "tone.flac", np.stack([tone, tone], 1), sr, subtype="PCM_16")
    out = subprocess.run(
        [sys.executable, "-m", "trackprint.cli", "analyze", "--engine", "python", "--json",
         str(tmp_path / "tone.flac"), str(tmp_path / "missing.flac")],
        capture_output=True, text=True,
    )
    assert out.returncode == 1, out.stderr
    ok, missing = [json.loads(line) for line in out.stdout.splitlines()]
    assert ok["ok"] and ok["engine"] == "python" and len(ok["fingerprint"]) == 25
    assert ok["fingerprint"]["mid_pct"] > 99
    assert missing == {**missing, "ok": False} and missing["error"]["code"] == "not_found"
