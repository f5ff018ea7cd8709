"""The library boundary: which paths trackprint may read. One decision, used by every Python part.

A path is inside the library when, after resolving ``..`` and symlinks, it
lies under one of the roots. A symlink in the library that leads outside it
(to ``/etc/shadow``, say) is refused unless the user allows it
(``allow_symlinks_outside``): then the path is judged by where it is, not where
it leads. The Rust server applies the same rule to its ``--root``s
(``rust-server/src/paths.rs``).
"""

from __future__ import annotations

import codecs
import os
import re
from dataclasses import dataclass
from typing import Iterable

# -- paths as text ---------------------------------------------------------------------------------
# A Linux file name is bytes; messages (JSON), SQL text columns and the Rust server want valid UTF-8.
# The text form of a path keeps every valid UTF-8 name as it is and writes each byte that is not
# valid UTF-8 as "//xHH". A normalised absolute path never contains "//", so the form is reversible
# and cannot be confused with a real name.
_ESCAPE = re.compile(r"//x([0-9A-F]{2})")


def _escape_bytes(error: UnicodeError) -> tuple[str, int]:
    bad = error.object[error.start:error.end]  # type: ignore[attr-defined]
    return "".join(f"//x{b:02X}" for b in bad), error.end  # type: ignore[attr-defined]


codecs.register_error("trackprint-path", _escape_bytes)


def to_text(path: str) -> str:
    """The text form of a filesystem path (``str`` as ``os`` gives it, undecodable bytes as surrogates)."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "trackprint-path")


def to_fs(text: str) -> str:
    """The filesystem path of a text form (the inverse of :func:`to_text`)."""
    if "//x" not in text:
        return text
    data = bytearray()
    last = 0
    for match in _ESCAPE.finditer(text):
        data += text[last:match.start()].encode("utf-8")
        data.append(int(match.group(1), 16))
        last = match.end()
    data += text[last:].encode("utf-8")
    return os.fsdecode(bytes(data))


def canonical(path: str) -> str:
    """Absolute path with symlinks and ``..`` resolved."""
    return os.path.realpath(os.path.abspath(path))


def _under(target: str, base: str) -> bool:
    try:
        return os.path.commonpath([target, base]) == base
    except ValueError:  # different drives / mixed absolute and relative
        return False


def inside_roots(path: str, roots: Iterable[str], *, allow_symlinks_outside: bool = False) -> bool:
    """True when ``path`` lies under one of ``roots``: its canonical form under a root's canonical
    form, or (only with ``allow_symlinks_outside``) its lexical form under a root as given."""
    roots = list(roots)
    target = canonical(path)
    if any(_under(target, canonical(root)) for root in roots):
        return True
    return allow_symlinks_outside and _lexically_inside(path, roots)


def _lexically_inside(path: str, roots: Iterable[str]) -> bool:
    """``..`` applied to the text, no symlink followed."""
    target = os.path.normpath(os.path.abspath(path))
    return any(_under(target, os.path.normpath(os.path.abspath(root))) for root in roots)


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
        if _lexically_inside(path, self.roots):
            return "a symlink that leads outside the library roots (allow_symlinks_outside is off)"
        return "the path is outside the library roots"


def library_from_env(roots: Iterable[str] = ()) -> Library:
    """``roots``, else ``$TRACKPRINT_LIBRARY`` (separated by ``os.pathsep``); ``$TRACKPRINT_ALLOW_SYMLINKS_OUTSIDE=1``."""
    given = [r for r in roots if r] or [r for r in os.environ.get("TRACKPRINT_LIBRARY", "").split(os.pathsep) if r]
    allow = os.environ.get("TRACKPRINT_ALLOW_SYMLINKS_OUTSIDE", "") in ("1", "true", "yes")
    return Library(tuple(os.path.abspath(r) for r in given), allow)
