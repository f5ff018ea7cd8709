"""The labelled corpus: real music from Debian's game-music packages, one label per package.

``build(corpus_dir)`` downloads the packages of :data:`PACKAGES` with ``apt-get download`` (the ``.deb``
files are kept in ``$CORPUS_WORK``, default ``/tmp/trackprint_corpus_work``, shared with
``scripts/build_corpus.sh``), extracts them with ``dpkg-deb -x``, and copies every music file of at least
:data:`MIN_DURATION_S` seconds, unchanged (Ogg Vorbis, Opus: the packages' own encodings), to
``CORPUS/tracks/<label>/<name>``. A package that yields fewer than :data:`MIN_PER_LABEL` tracks is left out
(a label needs neighbours to be retrieved). ``CORPUS/manifest.json`` lists the tracks (path, label,
package, duration, artist and album tags); when it exists and its files are all there it is reused as is,
so a second run downloads and copies nothing.

The label is the package (one soundtrack: one composer or a small team, one production). Tracks of one
soundtrack are "alike" for the benchmark; this is a proxy for "sounds like", coarse but not arbitrary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

MIN_DURATION_S = 40.0  # stings and jingles (a few seconds) are not tracks
MIN_PER_LABEL = 5
AUDIO_SUFFIXES = (".ogg", ".opus", ".oga", ".mp3", ".flac")

# package -> (label, the folder under the extracted tree that holds its music)
PACKAGES: dict[str, tuple[str, str]] = {
    "wesnoth-1.16-music": ("wesnoth", "usr/share/games/wesnoth"),
    "warzone2100-music": ("warzone2100", "usr/share/games/warzone2100"),
    "colobot-common-sounds": ("colobot", "usr/share/games/colobot/music"),
    "drascula-music": ("drascula", "usr/share/scummvm/drascula/audio"),
    "extremetuxracer-data": ("extremetuxracer", "usr/share/games/etr/music"),
}
MANIFEST = "manifest.json"


@dataclass
class Track:
    path: str  # absolute, inside CORPUS/tracks
    label: str
    package: str
    duration_s: float
    artist: str = ""
    album: str = ""


def work_dir() -> Path:
    return Path(os.environ.get("CORPUS_WORK", "/tmp/trackprint_corpus_work"))


def load(corpus_dir: Path) -> list[Track] | None:
    """The manifest's tracks when the manifest exists and every file is there, else None."""
    manifest = Path(corpus_dir) / MANIFEST
    try:
        data = json.loads(manifest.read_text())
        tracks = [Track(**t) for t in data["tracks"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not tracks or not all(os.path.isfile(t.path) for t in tracks):
        return None
    return tracks


def _download(package: str, work: Path, log) -> Path | None:
    found = sorted(work.glob(f"{package}_*.deb"))
    if found:
        return found[0]
    log(f"corpus: downloading {package} (apt-get download)")
    for attempt in range(2):
        done = subprocess.run(["apt-get", "download", package], cwd=work, capture_output=True, text=True)
        found = sorted(work.glob(f"{package}_*.deb"))
        if done.returncode == 0 and found:
            return found[0]
        if attempt == 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
    log(f"corpus: {package}: apt-get download failed: {done.stderr.strip()[-300:]}")
    return None


def _tags(path: str) -> tuple[float, str, str]:
    import mutagen

    try:
        info = mutagen.File(path)
    except Exception:  # noqa: BLE001 - an unreadable file is simply left out
        return 0.0, "", ""
    if info is None or info.info is None:
        return 0.0, "", ""
    tags = info.tags or {}

    def first(key: str) -> str:
        try:
            value = tags.get(key) or tags.get(key.upper())
        except Exception:  # noqa: BLE001
            return ""
        return str(value[0]) if isinstance(value, list) and value else str(value or "")

    return float(getattr(info.info, "length", 0.0) or 0.0), first("artist"), first("album")


def _is_audio(path: Path) -> bool:
    if path.suffix.lower() in AUDIO_SUFFIXES:
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"OggS"
    except OSError:
        return False


def in_music_folder(relative: Path) -> bool:
    """Whether a file sits under a folder named like music (``music``, ``Music``, ``Musics``...), not
    among a game's sound effects and ambiences."""
    return any("music" in part.lower() for part in relative.parts[:-1])


def build(corpus_dir: Path, *, packages: dict[str, tuple[str, str]] | None = None, log=print,
          min_duration_s: float = MIN_DURATION_S, max_duration_s: float = float("inf"),
          min_per_label: int = MIN_PER_LABEL, music_folders_only: bool = False) -> list[Track]:
    """The corpus's tracks (see the module docstring); built once, then reused.

    The keywords select other sets from other packages (``trackprint eval-tempo``'s held-out sets):
    durations in [min_duration_s, max_duration_s], labels with at least ``min_per_label`` tracks,
    and with ``music_folders_only`` only files under a folder named like music
    (:func:`in_music_folder`, relative to the package's folder)."""
    corpus_dir = Path(corpus_dir).resolve()
    corpus_dir.mkdir(parents=True, exist_ok=True)
    existing = load(corpus_dir)
    if existing is not None:
        return existing
    packages = packages or PACKAGES
    work = work_dir()
    (work / "x").mkdir(parents=True, exist_ok=True)
    tracks: list[Track] = []
    for package, (label, folder) in packages.items():
        deb = _download(package, work, log)
        if deb is None:
            continue
        root = work / "x" / folder
        if not root.is_dir():
            subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "x")], check=True)
        found = []
        for src in sorted(p for p in root.rglob("*") if p.is_file() and p.stat().st_size > 0 and _is_audio(p)):
            if music_folders_only and not in_music_folder(src.relative_to(root)):
                continue
            duration, artist, album = _tags(str(src))
            if min_duration_s <= duration <= max_duration_s:
                found.append((src, duration, artist, album))
        if len(found) < min_per_label:
            longest = "" if max_duration_s == float("inf") else f" to {max_duration_s:.0f} s"
            log(f"corpus: {package}: only {len(found)} tracks of {min_duration_s:.0f} s{longest or ' or more'}: left out")
            continue
        dest_dir = corpus_dir / "tracks" / label
        dest_dir.mkdir(parents=True, exist_ok=True)
        for src, duration, artist, album in found:
            relative = src.relative_to(root)
            name = "_".join(relative.parts).replace(" ", "_")
            if not Path(name).suffix:
                name += ".ogg"
            dest = dest_dir / name
            if not dest.is_file() or dest.stat().st_size != src.stat().st_size:
                shutil.copyfile(src, dest)
            tracks.append(Track(str(dest), label, package, round(duration, 3), artist, album))
        log(f"corpus: {package}: {len(found)} tracks as label {label!r}")
    (corpus_dir / MANIFEST).write_text(json.dumps({"tracks": [asdict(t) for t in tracks]}, indent=1))
    return tracks
