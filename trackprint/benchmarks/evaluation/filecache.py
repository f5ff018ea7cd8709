"""The benchmark's per-file caches: one JSON file per descriptor and version under ``CORPUS/cache``, each
entry stamped with its file's size and mtime, so a changed file is analysed again and nothing else is."""

from __future__ import annotations

import json
import os
from pathlib import Path


def stamp(path: str) -> list:
    """What says a file is unchanged: [size, mtime in ns]."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def load(cache_file: Path) -> dict:
    """The cache's entries (none when it is missing or unreadable); creates its folder."""
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        return json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}


def stale(cache: dict, paths: list[str]) -> list[str]:
    """The paths whose entry is missing or stamped for another version of the file."""
    return [p for p in paths if cache.get(p, {}).get("stamp") != stamp(p)]


def save(cache_file: Path, cache: dict) -> None:
    """Write the cache atomically (a reader never sees half of it)."""
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(cache_file.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cache))
    os.replace(tmp, cache_file)
