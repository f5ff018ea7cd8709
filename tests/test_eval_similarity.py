"""``trackprint eval-similarity`` end to end on a tiny labelled corpus (synthetic audio, the Python engine):
the report, the JSON, the caches, the codec part (variants made, fingerprinted, scored, reused), and
baselines that cannot run said so instead of crashing."""

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
    codec_args = ("--codec-tracks", "2", "--codec-variants", "mp3_v5,mono")
    args = ("eval-similarity", str(corpus), "--engine", "python", "--baselines", "bliss", "--rounds", "50",
            *codec_args, "--out", str(tmp_path / "out.json"), "--json")
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
    # the codec part: 2 tracks of two labels, each re-encoded twice, fingerprinted by the same engine
    c = result["codecs"]
    assert len(c["tracks"]) == 2 and len({p.split(os.sep)[-2] for p in c["tracks"]}) == 2
    assert list(c["kinds"]) == ["mp3_v5", "mono"] and c["errors"] == {} and c["originals"] == 9
    assert c["trackprint"]["engine"] == "python" and c["trackprint"]["analysed_now"] == 4
    ident = c["identity"]
    assert ident["cases"] == 4 and ident["distance"] == result["default_distance"]
    assert {k: v["cases"] for k, v in ident["by_kind"].items()} == {"mp3_v5": 2, "mono": 2}
    assert ident["top1"] == ident["hits"] / 4 and len(ident["misses"]) == 4 - ident["hits"]
    assert set(c["identity_by_distance"]) >= {result["default_distance"], "v1"}
    sens = c["sensitivity"]
    assert set(sens["median_moves"]) == {"mp3_v5", "mono"} and len(sens["median_moves"]["mono"]) == 25
    assert all(v >= 0 for k in sens["median_moves"].values() for v in k.values())
    assert all(f["kind"] == "mp3_v5" and f["value"] > 0.5 for f in sens["flagged"])  # mono is not a target
    assert sens["acceptance_met"] == (not sens["flagged"]) and "phase_correlation" in sens["not_in_default"]
    assert sum(1 for _ in (corpus / "codec-variants").rglob("*.mp3")) == 2
    assert "codec identity" in out.stdout and "codec sensitivity" in out.stdout
    # a second run reads the caches
    again = run_cli("eval-similarity", str(corpus), "--engine", "python", "--baselines", "", "--no-tempo",
                    "--rounds", "50", *codec_args, "--json", timeout=600)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout.strip().splitlines()[-1])
    assert second["trackprint"]["analysed_now"] == 0
    assert "encoding" not in again.stderr and second["codecs"]["trackprint"]["analysed_now"] == 0
    assert second["codecs"]["identity"] == c["identity"] and second["codecs"]["sensitivity"] == sens
    off = run_cli("eval-similarity", str(corpus), "--engine", "python", "--baselines", "", "--no-tempo",
                  "--no-ablation", "--no-codecs", "--rounds", "20", "--json", timeout=600)
    assert off.returncode == 0, off.stderr
    assert json.loads(off.stdout.strip().splitlines()[-1])["codecs"] is None and "codecs: not run" in off.stdout
    assert second["descriptors"][default]["scores"] == result["descriptors"][default]["scores"]
    assert second["tempo"] is None and len(tracks) == 9
