"""A small tmpfs (tests run as root): a real small or full disk for a data directory."""

from __future__ import annotations

import contextlib
import os
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


def fill(folder: Path, leave_bytes: int = 0) -> Path:
    """Write a ballast file until the filesystem of ``folder`` has at most ``leave_bytes`` free."""
    ballast = folder / "ballast"
    chunk = b"\0" * (1 << 20)
    with open(ballast, "ab") as out:
        while os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize > leave_bytes + len(chunk):
            try:
                out.write(chunk)
                out.flush()
            except OSError:
                break
    return ballast
