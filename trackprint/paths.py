"""Library roots: which paths trackprint may read."""

from __future__ import annotations

import os
from typing import Iterable


def canonical(path: str) -> str:
    """Absolute path with symlinks and ``..`` resolved."""
    return os.path.realpath(os.path.abspath(path))


def inside_roots(path: str, roots: Iterable[str]) -> bool:
    """True when ``path``, after resolving symlinks and ``..``, lies under one of ``roots``."""
    target = canonical(path)
    for root in roots:
        base = canonical(root)
        try:
            if os.path.commonpath([target, base]) == base:
                return True
        except ValueError:  # different drives / mixed absolute and relative
            continue
    return False
