"""Phase "quiescence": dirty -> waiting -> quiet (and dirty -> gone).

Scan and watch only say "look at this path". Each tick, every dirty path is
stat'ed: an existing file starts *waiting*; a path the state knows but the
disk no longer has becomes *gone* (removed later, by the publish phase, if
nothing claims it). A waiting file is *quiet*, ready to publish, once its size
and mtime have not changed for ``--quiet-s``: a file being copied is published
once, when complete. A file whose mtime is already older than that counts as
quiet since its mtime, so a start-up scan does not wait for nothing.
Paths under an offline root are left alone until it is back.

An existing file that the library excludes (``Library.excluded``) never
waits: unknown, it is dropped; published before (the settings changed, a
marker file appeared), it becomes *excluded*, and the publish phase removes
it with reason ``excluded``.
"""

from __future__ import annotations

import itertools
import logging
import os
import stat as statmod
from dataclasses import dataclass
from typing import Iterator

from trackprint.paths import Library
from trackprint.watcher.roots import LibraryRoots
from trackprint.watcher.state import WatcherState

log = logging.getLogger("trackprint.watcher")


@dataclass(slots=True)
class WaitingFile:
    """A file seen to exist, waiting for its size and mtime to stay put for the quiet period."""

    origin: str  # scan, watch or reconcile: what first marked it
    size: int | None = None
    mtime_ns: int | None = None
    last_change: float = 0.0


@dataclass
class QuietFile:
    path: str
    root: str
    stat: os.stat_result
    origin: str


class Quiescence:
    def __init__(self, roots: LibraryRoots, state: WatcherState, quiet_s: float, library: Library | None = None):
        self.roots = roots
        self.state = state
        self.quiet_s = quiet_s
        self.library = library
        self.excluded: dict[str, tuple[str, str]] = {}  # known path -> (why it is excluded, origin)
        self.dirty: dict[str, str] = {}  # path -> origin
        self.waiting: dict[str, WaitingFile] = {}
        self.gone: dict[str, tuple[float, str]] = {}  # path -> (first seen gone, origin)
        self._sorting: Iterator[tuple[str, str]] | None = None  # dirty paths taken out, not yet sorted
        self._sorting_left = 0

    def mark_dirty(self, path: str, origin: str) -> None:
        self.dirty.setdefault(path, origin)

    @property
    def dirty_count(self) -> int:
        """Dirty paths not sorted yet (marked, or taken out by a sort cut short by its limit)."""
        return len(self.dirty) + self._sorting_left

    def sort_dirty(self, now: float, limit: int | None = None) -> bool:
        """Every dirty path becomes waiting (it exists), gone (known, not on disk), or is dropped; at most
        ``limit`` of them per call (a start-up scan marks the whole library: the caller yields between
        calls). True when some are left for the next call."""
        if self._sorting is None:
            if not self.dirty:
                return False
            dirty, self.dirty = self.dirty, {}
            self._sorting, self._sorting_left = iter(dirty.items()), len(dirty)
        for path, origin in itertools.islice(self._sorting, limit):
            self._sorting_left -= 1
            root = self.roots.root_of(path)
            if root is None or root in self.roots.offline:
                continue  # a root coming back is reconciled as a whole
            try:
                st = os.stat(path)
            except FileNotFoundError:
                self.waiting.pop(path, None)
                if self.state.get(path) is not None:
                    self.gone.setdefault(path, (now, origin))
                continue
            except OSError as exc:
                log.warning("%s: stat: %s; will retry", path, exc)
                self.dirty[path] = origin
                continue
            if not statmod.S_ISREG(st.st_mode):
                continue
            self.gone.pop(path, None)
            if self.exclude(path, origin):
                continue
            if path not in self.waiting:
                self.waiting[path] = WaitingFile(origin, st.st_size, st.st_mtime_ns, min(now, st.st_mtime_ns / 1e9))
        if self._sorting_left <= 0:
            self._sorting, self._sorting_left = None, 0
            return bool(self.dirty)
        return True

    def quiet_files(self, now: float) -> Iterator[QuietFile]:
        """The waiting files that are quiet now, one at a time (the caller publishes each, then ``done``)."""
        for path in list(self.waiting):
            w = self.waiting.get(path)
            if w is None:
                continue
            root = self.roots.root_of(path)
            if root in self.roots.offline:
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                del self.waiting[path]
                if self.state.get(path) is not None:
                    self.gone.setdefault(path, (now, w.origin))
                continue
            except OSError as exc:
                log.warning("%s: stat: %s; will retry", path, exc)
                continue
            if (st.st_size, st.st_mtime_ns) != (w.size, w.mtime_ns):
                w.size, w.mtime_ns, w.last_change = st.st_size, st.st_mtime_ns, now
                log.debug("%s: quiescence: still changing", path)
                continue
            if now - w.last_change < self.quiet_s:
                continue
            if self.exclude(path, w.origin):  # excluded while it waited (a marker file, say)
                continue
            yield QuietFile(path, root, st, w.origin)

    def exclude(self, path: str, origin: str) -> bool:
        """True when the library excludes ``path``: it waits no more, and a known one is queued as excluded."""
        reason = self.library.excluded(path) if self.library is not None else None
        if reason is None:
            self.excluded.pop(path, None)
            return False
        self.waiting.pop(path, None)
        if self.state.get(path) is not None:
            self.excluded.setdefault(path, (reason, origin))
        else:
            log.debug("%s: excluded (%s): nothing to publish", path, reason)
        return True

    def done(self, path: str) -> None:
        """The quiet file is published (or had nothing new): it waits no more."""
        self.waiting.pop(path, None)
