"""The library boundary: which paths trackprint may read. One decision, used by every Python part.

A path is inside the library when, after resolving ``..`` and symlinks, it
lies under one of the roots. A symlink in the library that leads outside it
(to ``/etc/shadow``, say) is refused unless the user allows it
(``allow_symlinks_outside``): then the path is judged by where it is, not where
it leads. The Rust server applies the same rule to its ``--root``s
(``rust-server/src/paths.rs``).

Inside the library, some paths are not the user's music: trash folders,
macOS resource forks, NAS thumbnail folders, hidden files, whatever the user
excludes by glob or by a marker file in a folder. :meth:`Library.excluded`
is the one decision; the watcher never publishes such a path (nor walks into
such a folder) and tombstones one it had published (reason ``excluded``); the
analyzer treats an event for one the same way.
"""

from __future__ import annotations

import codecs
import fnmatch
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


# -- excludes --------------------------------------------------------------------------------------
# Names (of a file, or of a folder and so of everything below it) that are never music: hidden
# entries (which covers macOS "._x.flac" resource forks, ".Trash-1000", ".DS_Store"), Synology
# thumbnails, fsck's lost+found, Windows' recycle bin and volume information.
DEFAULT_EXCLUDES = (".*", "._*", ".Trash*", "@eaDir", "lost+found", "$RECYCLE.BIN", "System Volume Information")
DEFAULT_MARKER = ".trackprintignore"  # a folder holding a file of this name is excluded, with everything below


@dataclass(frozen=True)
class Library:
    """The configured library roots, the symlink policy and the excludes.

    ``excludes`` are the user's globs. A glob without ``/`` is matched against
    every name below the root (a matching folder excludes everything in it); a
    glob with ``/`` against the path relative to its root (``Podcasts/*``), or
    the absolute path when it starts with ``/``. ``default_excludes`` adds
    :data:`DEFAULT_EXCLUDES`; ``marker`` (empty: none) excludes a folder that
    holds a file of that name.
    """

    roots: tuple[str, ...]
    allow_symlinks_outside: bool = False
    excludes: tuple[str, ...] = ()
    marker: str = DEFAULT_MARKER
    default_excludes: bool = True

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

    def root_of(self, path: str) -> str | None:
        """The root ``path`` lies under, judged by the names (no symlinks resolved); None if none."""
        path = os.path.normpath(path)
        best = None
        for root in self.roots:
            root = os.path.normpath(root)
            if _under(path, root) and (best is None or len(root) > len(best)):
                best = root
        return best

    def excluded_entry(self, path: str, root: str | None = None) -> str | None:
        """Why the last name of ``path`` is excluded by a glob (None: it is not); its folders are not looked at.

        For a walk that prunes excluded folders as it goes (see :meth:`excluded` for any path)."""
        name = os.path.basename(path)
        if self.default_excludes:
            for glob in DEFAULT_EXCLUDES:
                if fnmatch.fnmatchcase(name, glob):
                    return f"{name!r} matches the default exclude {glob!r}"
        if not self.excludes:
            return None
        root = root or self.root_of(path)
        relative = os.path.relpath(path, root) if root else None
        for glob in self.excludes:
            if glob.startswith("/"):
                hit = fnmatch.fnmatchcase(path, glob)
            elif "/" in glob:
                hit = relative is not None and fnmatch.fnmatchcase(relative, glob.rstrip("/"))
            else:
                hit = fnmatch.fnmatchcase(name, glob)
            if hit:
                return f"{(relative or name)!r} matches the exclude {glob!r}"
        return None

    def marked(self, folder: str) -> str | None:
        """Why ``folder`` is excluded by the marker file (None: it holds none)."""
        if self.marker and os.path.lexists(os.path.join(folder, self.marker)):
            return f"{folder} holds the marker file {self.marker}"
        return None

    def excluded(self, path: str) -> str | None:
        """None when ``path`` is music to look at, else why it is excluded: its name or a folder's between
        its root and it matches an exclude, or one of those folders (the root included) holds the marker.
        Only names below the root count: a root may itself live in a hidden folder."""
        path = os.path.normpath(path)
        root = self.root_of(path)
        if root is None:  # not under a root: only the name itself can be judged
            return self.excluded_entry(path)
        current = root
        reason = self.marked(root)
        for part in os.path.relpath(path, root).split(os.sep) if path != root else ():
            if reason:
                return reason
            current = os.path.join(current, part)
            reason = self.excluded_entry(current, root) or self.marked(current)
        return reason


def library_from_env(roots: Iterable[str] = ()) -> Library:
    """``roots``, else the ``library`` setting (``$TRACKPRINT_LIBRARY`` or the settings file; see
    :mod:`trackprint.settings`), with the settings' symlink policy and excludes."""
    from trackprint import settings

    current = settings.current()
    given = [r for r in roots if r] or list(current.library)
    return Library(tuple(os.path.abspath(r) for r in given), bool(current.allow_symlinks_outside),
                   tuple(current.excludes), current.exclude_marker or "", bool(current.default_excludes))
