"""Tags of any size in front of or behind the audio are skipped, by seeking, in both engines and in
the content identity: an 8 MiB ID3v2 tag (cover art), stacked ID3v2 tags, APEv2 (with header) and
ID3v1 at the end. The fingerprint and the content id of a tagged file equal the bare file's."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from tests.audio import id3v1_tag, id3v2_tag, music_like, write_audio
from tests.fixtures_rust import rust_server_binary
from tests.procs import run_cli
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


# the Python engine decodes these containers with libsndfile after skipping the leading tags itself;
# its FFmpeg path (MP4, WavPack) and libsndfile's MP3 reader do not skip tags in front (see the report)
BOTH_ENGINES = ["flac", "ogg", "opus", "wav"]
RUST_ONLY = ["mp3", "m4a"]


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tags")
    for ext in [*BOTH_ENGINES, *RUST_ONLY]:
        rate = 48_000 if ext == "opus" else 44_100
        bare = d / f"bare.{ext}"
        write_audio(bare, music_like(6.0, rate, seed=5), rate)
        data = bare.read_bytes()
        (d / f"id3_8mib.{ext}").write_bytes(big_id3v2(8 << 20) + data)
        (d / f"stacked.{ext}").write_bytes(id3v2_tag("one") + big_id3v2(200_000) + data + apev2() + id3v1_tag("x"))
        (d / f"trailing.{ext}").write_bytes(data + id3v1_tag("y") + apev2())
    return d


def _analyse(engine: str, paths: list[Path]) -> dict[str, dict]:
    proc = run_cli("analyze", "--engine", engine, "--json", *map(str, paths), timeout=600)
    return {Path(r["path"]).name: r for r in (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{"))}


VARIANTS = ["id3_8mib", "stacked", "trailing"]


@pytest.mark.parametrize("engine", ["rust", "python"])
def test_tagged_files_get_the_bare_files_fingerprint(library, engine):
    if engine == "rust":
        rust_server_binary()
    exts = BOTH_ENGINES + (RUST_ONLY if engine == "rust" else [])
    names = [f"{v}.{ext}" for ext in exts for v in ["bare", *VARIANTS]]
    results = _analyse(engine, [library / n for n in names])
    for ext in exts:
        bare = results[f"bare.{ext}"]
        assert bare["ok"] and bare["engine"] == engine, bare
        for variant in VARIANTS:
            tagged = results[f"{variant}.{ext}"]
            assert tagged["ok"] and tagged["engine"] == engine, (variant, ext, tagged.get("error"))
            assert tagged["fingerprint"] == bare["fingerprint"], (variant, ext)
            assert tagged["decode"]["decoded_duration_s"] == bare["decode"]["decoded_duration_s"], (variant, ext)


@pytest.mark.parametrize("ext", BOTH_ENGINES + RUST_ONLY)
def test_tagged_files_keep_the_content_id(library, ext):
    bare = content_id(str(library / f"bare.{ext}"))
    assert "_broken" not in bare
    for variant in VARIANTS:
        assert content_id(str(library / f"{variant}.{ext}")) == bare, variant


def test_ogg_end_check_looks_before_trailing_tags(library):
    data = (library / "bare.ogg").read_bytes()
    assert sniff.ogg_ends_cleanly(data[-65536:])
    assert sniff.ogg_ends_cleanly((data + apev2() + id3v1_tag("z"))[-65536:])
    assert not sniff.ogg_ends_cleanly(data[:-100][-65536:])
    assert sniff.trailing_tags_start(b"abc" + id3v1_tag("t")) == 3
