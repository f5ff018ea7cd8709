"""A small tmpfs (tests run as root): a real small or full disk for a data directory."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path


@contextlib.contextmanager
def tmpfs(where: Path, size: str):
    """Mount a tmpfs of ``size`` (e.g. "2g", "64m") at ``where`` for the block; unmount after."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path) -> Path:
    """Write a ballast file until the filesystem of ``folder`` is full (ENOSPC); delete it to free the space."""
    ballast = folder / "ballast"
    with open(ballast, "ab", buffering=0) as out:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError:  # ENOSPC at this granularity: go finer
                continue
    return ballast
