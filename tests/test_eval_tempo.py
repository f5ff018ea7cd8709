"""``trackprint eval-tempo``'s parts: the held-out selection from a real Debian package (built here with
dpkg-deb, read by the same code that reads the downloaded ones) and the paired comparison with degara."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.audio import music_like, write_audio
from tests.procs import run_cli
from trackprint.benchmarks.evaluation import corpus, tempo_agreement


def _deb(work, package: str, files: dict[str, float]) -> None:
    """A real .deb of ``package`` holding music-like Ogg Vorbis files of the given durations."""
    root = work / "pkgroot"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n")
    for relative, seconds in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        write_audio(root / relative, music_like(seconds, sr=22_050), sr=22_050)
    subprocess.run(["dpkg-deb", "--build", str(root), str(work / f"{package}_1.0_all.deb")], check=True,
                   capture_output=True)


def test_held_out_sets_take_music_folders_and_durations_only(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    base = "usr/share/games/example"
    _deb(work, "example-data", {
        f"{base}/music/theme.ogg": 35.0,  # taken
        f"{base}/Music/battle/loop.ogg": 31.0,  # taken: any folder named like music
        f"{base}/music/sting.ogg": 8.0,  # a jingle: too short
        f"{base}/sounds/ambient/wind.ogg": 40.0,  # an ambience outside the music folders
    })
    monkeypatch.setenv("CORPUS_WORK", str(work))
    tracks = corpus.build(tmp_path / "set", packages={"example-data": ("example", base)}, log=lambda m: None,
                          min_duration_s=30.0, max_duration_s=32.0 + 4.0, min_per_label=1, music_folders_only=True)
    assert sorted(t.path.rsplit("/", 1)[1] for t in tracks) == ["Music_battle_loop.ogg", "music_theme.ogg"]
    assert {t.label for t in tracks} == {"example"}
    assert all(30.0 <= t.duration_s <= 36.0 for t in tracks)
    # without the music-folder rule the ambience is a track too (the corpus's own rule)
    everything = corpus.build(tmp_path / "all", packages={"example-data": ("example", base)}, log=lambda m: None,
                              min_duration_s=30.0, min_per_label=1)
    assert len(everything) == 3


def test_mcnemar_p_is_the_exact_two_sided_binomial_tail():
    assert tempo_agreement.mcnemar_p(0, 0) == 1.0
    assert tempo_agreement.mcnemar_p(3, 3) == 1.0
    assert tempo_agreement.mcnemar_p(1, 4) == pytest.approx(2 * (1 + 5) / 32)  # 0.375
    assert tempo_agreement.mcnemar_p(0, 10) == pytest.approx(2 / 1024)
    assert tempo_agreement.mcnemar_p(10, 0) == tempo_agreement.mcnemar_p(0, 10)


def test_agreement_counts_each_estimator_and_the_tracks_only_one_gets():
    rows = [  # (trackprint, degara, reference)
        (120.0, 120.0, 120.0),  # both
        (60.0, 90.0, 120.0),  # trackprint at half the reference: octave-tolerant agreement; degara at 3:4
        (80.0, 121.0, 120.0),  # only degara; trackprint at 2:3
        (0.0, 0.0, 100.0),  # neither: no tempo never agrees
    ]
    bpm = {f"t{i}": t for i, (t, _d, _r) in enumerate(rows)}
    refs = {f"t{i}": {"degara": d, "multifeature": r} for i, (_t, d, r) in enumerate(rows)}
    c = tempo_agreement.agreement(bpm, refs)
    assert c["tracks"] == 4
    assert c["trackprint"] == {"agree": 2, "agree_strict": 1, "other_level": 1, "no_tempo": 1}
    assert c["essentia_degara"] == {"agree": 2, "agree_strict": 2, "other_level": 1, "no_tempo": 1}
    assert (c["only_trackprint"], c["only_degara"]) == (1, 1)
    assert c["mcnemar_p"] == 1.0


def test_without_essentia_eval_tempo_says_how_to_install_it_before_downloading_anything(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "essentia.py").write_text("raise ImportError('no essentia here')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")]),
           "CORPUS_WORK": str(tmp_path / "work")}
    out = run_cli("eval-tempo", str(tmp_path / "sets"), env=env, timeout=120)
    assert out.returncode == 1
    assert "essentia cannot be imported" in out.stderr and "trackprint[bench]" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "work").exists() and not (tmp_path / "sets").exists()  # nothing downloaded or built
