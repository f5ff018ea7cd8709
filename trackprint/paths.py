"""The library boundary: which paths trackprint may read. One decision, used by every Python part.

A path is inside the library when, after resolving ``..`` and symlinks, it
lies under one of the roots. A symlink in the library that leads outside it
(to ``/etc/shadow``, say) is refused unless the user allows it
(``allow_symlinks_outside``): then the path is judged by where it is, not where
it leads. The Rust server applies the same rule to its ``--root``s
(``rust-server/src/paths.rs``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable


def canonical(path: str) -> str:
    """Absolute path with symlinks and ``..`` resolved."""
    return os.path.realpath(os.path.abspath(path))


def _under(target: str, base: str) -> bool:
    try:
        return os.path.commonpath([target, base]) == base
    except ValueError:  # different drives / mixed absolute and relative
        return False


def inside_roots(path: str, roots: Iterable[str], *, allow_symlinks_outside: bool = False) -> bool:
    """True when ``path`` lies under one of ``roots`` (see the module docstring for symlinks)."""
    target = os.path.normpath(os.path.abspath(path)) if allow_symlinks_outside else canonical(path)
    return any(_under(target, os.path.normpath(os.path.abspath(root)) if allow_symlinks_outside else canonical(root))
               for root in roots)


@dataclass(frozen=True)
class Library:
    """The configured library roots and the symlink policy."""

    roots: tuple[str, ...]
    allow_symlinks_outside: bool = False

    def refusal(self, path: str) -> str | None:
        """None when ``path`` may be read, else the reason (for an ``outside_library`` outcome)."""
        if not os.path.isabs(path):
            return "not an absolute path"
        if "\0" in path:
            return "the path contains a NUL byte (no file can have it)"
        if inside_roots(path, self.roots, allow_symlinks_outside=self.allow_symlinks_outside):
            return None
        if inside_roots(path, self.roots, allow_symlinks_outside=True):
            return "a symlink that leads outside the library roots (allow_symlinks_outside is off)"
        return "the path is outside the library roots"


def library_from_env(roots: Iterable[str] = ()) -> Library:
    """``roots``, else ``$TRACKPRINT_LIBRARY`` (separated by ``os.pathsep``); ``$TRACKPRINT_ALLOW_SYMLINKS_OUTSIDE=1``."""
    given = [r for r in roots if r] or [r for r in os.environ.get("TRACKPRINT_LIBRARY", "").split(os.pathsep) if r]
    allow = os.environ.get("TRACKPRINT_ALLOW_SYMLINKS_OUTSIDE", "") in ("1", "true", "yes")
    return Library(tuple(os.path.abspath(r) for r in given), allow)
