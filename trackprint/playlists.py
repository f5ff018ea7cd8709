"""M3U8 playlists: the one place trackprint writes (and reads back) them.

What players expect (Navidrome, MPD, most others): UTF-8 text, ``#EXTM3U`` on
the first line, then per track ``#EXTINF:SECONDS,Artist - Title`` and the path
on the next line. Paths are written *relative to a base folder* with ``/``
separators, plain (no ``file://``, no URL encoding): Navidrome resolves them
against the playlist file's own folder, MPD against its music directory. So
``--base`` should be where the player will look from: the folder the playlist
is saved in (the default), or the music root for MPD's ``playlist_directory``
setups. A track outside the base gets ``../`` steps.

``#EXTINF``: the duration in whole seconds (the tags' duration, else the
decoded one; -1 when unknown) and "artist - title" from the tags (the file
name without its extension when a tag is missing).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping


@dataclass
class Entry:
    path: str  # absolute, as stored
    duration_s: float | None = None
    artist: str | None = None
    title: str | None = None

    @classmethod
    def of(cls, track: Mapping) -> "Entry":
        """From a dict of :func:`trackprint.query.find` (or a ``Match.track``)."""
        return cls(track["path"], track.get("duration_s"), track.get("artist"), track.get("title"))

    def label(self) -> str:
        stem = os.path.splitext(os.path.basename(self.path))[0]
        if self.artist and self.title:
            return f"{self.artist} - {self.title}"
        return self.title or stem


def _clean(text: str) -> str:
    return " ".join(text.splitlines())  # a newline inside a tag would end the line


def relative(path: str, base: str | os.PathLike) -> str:
    """``path`` relative to ``base``, with ``/`` separators."""
    return Path(os.path.relpath(path, os.path.abspath(base))).as_posix()


def render_m3u8(entries: Iterable[Entry | Mapping], base: str | os.PathLike) -> str:
    lines = ["#EXTM3U"]
    for entry in entries:
        if not isinstance(entry, Entry):
            entry = Entry.of(entry)
        seconds = int(round(entry.duration_s)) if entry.duration_s is not None and entry.duration_s >= 0 else -1
        lines.append(f"#EXTINF:{seconds},{_clean(entry.label())}")
        lines.append(_clean(relative(entry.path, base)))
    return "\n".join(lines) + "\n"


def write_m3u8(file: str | os.PathLike, entries: Iterable[Entry | Mapping], base: str | os.PathLike | None = None
               ) -> Path:
    """Write the playlist to ``file`` (atomically: a player never reads half a file); ``base`` defaults to
    the playlist's own folder. Returns the file's path."""
    file = Path(file)
    base = Path(base) if base is not None else file.absolute().parent
    text = render_m3u8(entries, base)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, file)
    return file


def read_m3u8(file: str | os.PathLike, base: str | os.PathLike | None = None) -> list[tuple[str, int, str]]:
    """(absolute path, seconds, label) of every entry, the paths resolved against ``base`` (default: the
    playlist's folder), the way a player imports it."""
    file = Path(file)
    base = Path(base) if base is not None else file.absolute().parent
    out, info = [], (-1, "")
    for line in file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line == "#EXTM3U":
            continue
        if line.startswith("#EXTINF:"):
            seconds, _, label = line[len("#EXTINF:"):].partition(",")
            info = (int(seconds), label)
            continue
        if line.startswith("#"):
            continue
        out.append((os.path.normpath(os.path.join(base, line)), *info))
        info = (-1, "")
    return out
