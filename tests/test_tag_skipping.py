"""Tags of any size in front of or behind the audio are skipped, by seeking, in both engines and in
the content identity: an 8 MiB ID3v2 tag (cover art), stacked ID3v2 tags, APEv2 (with header) and
ID3v1 at the end, and an APEv2 tag larger than the 64 KiB tail window. For every container and codec
both engines decode (FLAC, WAV, AIFF, W64, PCM and ALAC CAF, Ogg Vorbis, Opus and FLAC, MP3, M4A AAC
and ALAC, ADTS AAC, WavPack), the fingerprint, the decode facts and the content id of a tagged file
equal the bare file's in each engine, and the two engines agree within the parity tolerances."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import pytest
import soundfile

from tests.audio import GOLDEN, id3v1_tag, id3v2_tag, music_like, write_audio
from tests.fixtures_rust import rust_server_binary
from tests.procs import run_cli
from tests.test_decoder_fidelity import _ensure_ffmpeg
from trackprint.pyengine import sniff
from trackprint.pyengine.identity import content_id



def big_id3v2(total: int) -> bytes:
    """An ID3v2.4 tag of ``total`` bytes (header + padding), as large cover art makes them."""
    size = total - 10
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x04\x00\x00" + syncsafe + b"\0" * size


def apev2(payload: bytes = b"\x89PNG" + b"x" * 5000) -> bytes:
    """An APEv2 tag with header and footer holding one binary item."""
    items = struct.pack("<II", len(payload), 2) + b"Cover Art (Front)\0" + payload
    size = len(items) + 32  # items + footer
    footer = b"APETAGEX" + struct.pack("<IIII", 2000, size, 1, 0x80000000) + b"\0" * 8
    header = b"APETAGEX" + struct.pack("<IIII", 2000, size, 1, 0xA0000000) + b"\0" * 8
    return header + items + footer


# written by the test helpers (libsndfile, PyAV), the format from the extension
WRITTEN = ["flac16.flac", "vorbis.ogg", "opus.opus", "pcm16.wav", "mp3.mp3", "aac.m4a"]
# encoded with the ffmpeg command line: name -> encoding arguments
ENCODED = {
    "pcm24.aiff": ["-c:a", "pcm_s24be"],
    "pcm16.w64": ["-c:a", "pcm_s16le", "-f", "w64"],
    "pcm16.caf": ["-c:a", "pcm_s16le", "-f", "caf"],
    "alac.caf": ["-c:a", "alac"],
    "alac.m4a": ["-c:a", "alac"],
    "oggflac.oga": ["-c:a", "flac", "-f", "ogg"],
    "adts.aac": ["-c:a", "aac", "-b:a", "160k", "-f", "adts"],
    "wavpack.wv": ["-c:a", "wavpack"],
}
FORMATS = [*WRITTEN, *ENCODED]
VARIANTS = ["id3_8mib", "stacked", "trailing", "big_trailing"]


def _tagged(variant: str, name: str) -> str:
    return f"{variant}_{name}"


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    ffmpeg = _ensure_ffmpeg()
    d = tmp_path_factory.mktemp("tags")
    source = d / "source.wav"
    soundfile.write(source, music_like(6.0, 44_100, seed=5), 44_100, subtype="PCM_24")
    for name in FORMATS:
        path = d / _tagged("bare", name)
        if name in ENCODED:
            proc = subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(source), *ENCODED[name], str(path)],
                                  capture_output=True, text=True)
            assert proc.returncode == 0, f"ffmpeg could not encode {name}: {proc.stderr}"
        else:
            rate = 48_000 if name.endswith(".opus") else 44_100
            write_audio(path, music_like(6.0, rate, seed=5), rate)
        data = path.read_bytes()
        (d / _tagged("id3_8mib", name)).write_bytes(big_id3v2(8 << 20) + data)
        (d / _tagged("stacked", name)).write_bytes(id3v2_tag("one") + big_id3v2(200_000) + data + apev2() + id3v1_tag("x"))
        (d / _tagged("trailing", name)).write_bytes(data + id3v1_tag("y") + apev2())
        # behind the audio, a tag far larger than the 64 KiB the engines read at the end
        (d / _tagged("big_trailing", name)).write_bytes(data + apev2(b"\xff\xd8" + b"\0" * (2 << 20)) + id3v1_tag("z"))
    return d


def _analyse(engine: str, paths: list[Path]) -> dict[str, dict]:
    proc = run_cli("analyze", "--engine", engine, "--json", *map(str, paths), timeout=900)
    return {Path(r["path"]).name: r for r in (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{"))}


@pytest.fixture(scope="module")
def outcomes(library) -> dict[str, dict[str, dict]]:
    rust_server_binary()
    paths = [library / _tagged(v, n) for n in FORMATS for v in ["bare", *VARIANTS]]
    return {engine: _analyse(engine, paths) for engine in ("rust", "python")}


@pytest.mark.parametrize("engine", ["rust", "python"])
def test_tagged_files_get_the_bare_files_fingerprint(outcomes, engine):
    results = outcomes[engine]
    for name in FORMATS:
        bare = results[_tagged("bare", name)]
        assert bare["ok"] and bare["engine"] == engine, (name, bare.get("error"))
        for variant in VARIANTS:
            tagged = results[_tagged(variant, name)]
            assert tagged["ok"] and tagged["engine"] == engine, (variant, name, tagged.get("error"))
            assert tagged["fingerprint"] == bare["fingerprint"], (variant, name)
            assert tagged["decode"] == bare["decode"], (variant, name)


def test_engines_agree_on_every_tagged_file(outcomes):
    """Same outcome, and the fingerprints within the spec's parity tolerances, as in
    tests/test_decoder_fidelity.py."""
    tolerance = json.loads((GOLDEN / "tolerance.json").read_text())
    problems = []
    for name in FORMATS:
        for variant in ["bare", *VARIANTS]:
            file = _tagged(variant, name)
            r, p = outcomes["rust"][file], outcomes["python"][file]
            assert r["ok"] and p["ok"], (file, r.get("error"), p.get("error"))
            assert r["decode"]["sample_rate"] == p["decode"]["sample_rate"], file
            assert r["decode"]["channels"] == p["decode"]["channels"], file
            assert abs(r["decode"]["decoded_duration_s"] - p["decode"]["decoded_duration_s"]) < 0.05, file
            for dim, tol in tolerance.items():
                if abs(r["fingerprint"][dim] - p["fingerprint"][dim]) > tol:
                    problems.append(f"{file} {dim}: rust {r['fingerprint'][dim]:.4f} python {p['fingerprint'][dim]:.4f}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", FORMATS)
def test_tagged_files_keep_the_content_id(library, name):
    bare = content_id(str(library / _tagged("bare", name)))
    assert "_broken" not in bare
    for variant in VARIANTS:
        assert content_id(str(library / _tagged(variant, name))) == bare, variant


def test_ogg_end_check_looks_before_trailing_tags(library):
    data = (library / _tagged("bare", "vorbis.ogg")).read_bytes()
    assert sniff.ogg_ends_cleanly(data[-65536:])
    assert sniff.ogg_ends_cleanly((data + apev2() + id3v1_tag("z"))[-65536:])
    assert not sniff.ogg_ends_cleanly(data[:-100][-65536:])
    assert sniff.trailing_tags_start(b"abc" + id3v1_tag("t")) == 3


def test_audio_end_follows_tag_footers_of_any_size(library):
    """sniff.audio_end reads only the tags' footers, so a 2 MiB APEv2 tag costs a few small reads."""
    path = library / _tagged("big_trailing", "flac16.flac")
    bare_size = (library / _tagged("bare", "flac16.flac")).stat().st_size

    class Counting:
        def __init__(self, f):
            self.f, self.read_bytes = f, 0

        def seek(self, pos, whence=0):
            return self.f.seek(pos, whence)

        def read(self, n=-1):
            data = self.f.read(n)
            self.read_bytes += len(data)
            return data

    with open(path, "rb") as f:
        counting = Counting(f)
        assert sniff.audio_end(counting, 0, path.stat().st_size) == bare_size
    assert counting.read_bytes < 1024
