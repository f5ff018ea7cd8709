"""``trackprint eval-similarity`` end to end on a tiny labelled corpus (synthetic audio, the Python engine):
the report, the JSON, the caches, and baselines that cannot run said so instead of crashing."""

from __future__ import annotations

import json
import os

from tests.audio import music_like, sine, stereo, white_noise, write_audio
from tests.procs import run_cli


def _corpus(root):
    tracks = []
    for label, make in (("tones", lambda i: stereo(sine(220.0 * (i + 1), 4.0))),
                        ("noise", lambda i: stereo(white_noise(4.0, seed=i))),
                        ("music", lambda i: music_like(4.0, seed=i, bpm=100.0 + 10 * i))):
        (root / "tracks" / label).mkdir(parents=True)
        for i in range(3):
            path = write_audio(root / "tracks" / label / f"{label}{i}.flac", make(i))
            tracks.append({"path": str(path), "label": label, "package": f"pkg-{label}", "duration_s": 4.0})
    (root / "manifest.json").write_text(json.dumps({"tracks": tracks}))
    return tracks


def test_eval_similarity_scores_every_variant_and_says_what_it_could_not_run(tmp_path):
    corpus = tmp_path / "corpus"
    tracks = _corpus(corpus)
    # stand-ins for bliss-audio and essentia that cannot be imported, whatever this venv has
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "bliss_audio.py").write_text("raise ImportError('no bliss here')\n")
    (fake / "essentia.py").write_text("raise ImportError('no essentia here')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])}
    args = ("eval-similarity", str(corpus), "--engine", "python", "--baselines", "bliss", "--rounds", "50",
            "--out", str(tmp_path / "out.json"), "--json")
    out = run_cli(*args, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == json.loads((tmp_path / "out.json").read_text())
    assert result["corpus"]["tracks"] == 9 and result["corpus"]["labels"] == {"music": 3, "noise": 3, "tones": 3}
    default = f"trackprint {result['default_distance']}"
    assert result["descriptors"][default]["default"] and "trackprint v1" in result["descriptors"]
    for row in result["descriptors"].values():
        for metric in ("map", "nn1", "nn5"):
            score = row["scores"][metric]
            assert 0.0 <= score["lo"] <= score["mean"] <= score["hi"] <= 1.0
    assert f"{default} - trackprint v1" in result["paired"]
    assert 0 < result["chance"]["map"] < 1
    # what could not run is named, with the reason, in the JSON and the table
    assert "no bliss here" in result["skipped"]["bliss"] and "bliss" not in result["descriptors"]
    assert "no essentia here" in result["tempo"]["skipped"]
    assert "NOT RUN" in out.stdout and "bliss" in out.stdout
    assert result["trackprint"]["analysed_now"] == 9 and result["trackprint"]["fingerprint_version"] >= 1
    # a second run reads the caches
    again = run_cli("eval-similarity", str(corpus), "--engine", "python", "--baselines", "", "--no-tempo",
                    "--rounds", "50", "--json", timeout=600)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout.strip().splitlines()[-1])
    assert second["trackprint"]["analysed_now"] == 0
    assert second["descriptors"][default]["scores"] == result["descriptors"][default]["scores"]
    assert second["tempo"] is None and len(tracks) == 9
