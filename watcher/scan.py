"""Phase "scan": the start-up scan and the periodic reconcile walk.

Both compare the disk with the state (what was last published) and mark every
difference *dirty*; nothing is published from here. The start-up scan finds
what changed while the watcher was down; the reconcile (every
``--reconcile-s``) catches whatever the live watch missed. A directory that
cannot be listed keeps its files as they were: a permission problem must not
read as a deletion.

Excluded names and folders (``trackprint.paths.Library.excluded``: hidden,
trash, NAS thumbnails, the user's globs, a folder holding the marker file)
are not walked into; a known file found excluded is marked dirty like a
vanished one, and quiescence turns it into an ``excluded`` removal.

The service runs the walk itself in a worker thread (:meth:`LibraryScan.scan_root_async`): a
library of 200,000 files takes seconds to walk, and the event loop must keep
answering a stop meanwhile; the walk checks the stop flag between folders. That
walk compares with the state as it goes (reading it only: nothing writes the
state while a scan runs, the publisher runs in the same loop after it), so
unchanged files cost a reference each, not a copy of their path and stat.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Callable

from trackprint.paths import Library
from trackprint.watcher.roots import LibraryRoots
from trackprint.watcher.state import WatcherState

log = logging.getLogger("trackprint.watcher")

MarkDirty = Callable[[str, str], None]  # (path, origin)


def audio_name_test(extensions) -> Callable[[str], bool]:
    """``is_audio(name)``: whether a file name has one of ``extensions`` (case-insensitive, dot optional)."""
    suffixes = {"." + e.lower().lstrip(".") for e in extensions}
    return lambda name: os.path.splitext(name)[1].lower() in suffixes


class RootUnlistable(Exception):
    """The root itself could not be listed during a walk: the root is offline."""


class WalkStopped(Exception):
    """The walk was asked to stop (the service is stopping): its result would be partial."""


@dataclass
class AudioTree:
    """One walk of a root: its audio files (path -> (size, mtime_ns, inode): small, a library can hold
    hundreds of thousands), the paths that could not be read, how many directories."""

    files: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    unchanged: set[str] = field(default_factory=set)  # with ``known``: found as the state has them (its strings)
    unreadable: set[str] = field(default_factory=set)
    directories: int = 0
    excluded: int = 0  # names and folders left out (not walked into)

    def found(self, path: str) -> bool:
        return path in self.files or path in self.unchanged

    @property
    def count(self) -> int:
        return len(self.files) + len(self.unchanged)

    def covers_unreadable(self, path: str) -> bool:
        """Whether ``path`` is, or is below, something the walk could not read (so its absence means nothing)."""
        return any(path == u or path.startswith(u + os.sep) for u in self.unreadable)


def walk_audio_files(root: str, is_audio: Callable[[str], bool], library: Library | None = None,
                     library_root: str | None = None, should_stop: Callable[[], bool] | None = None,
                     known: Callable[[str], object] | None = None) -> AudioTree:
    """Every audio file under ``root`` (symlinks not followed) that ``library`` does not exclude, without
    entering excluded folders; raises RootUnlistable when ``root`` itself fails. ``library_root``: the
    library root ``root`` lies in (itself by default), for globs relative to it. ``should_stop`` is asked
    between folders; when it says so the walk raises WalkStopped. With ``known`` (the state's ``get``), a
    file whose size, mtime and inode are as known goes into ``unchanged`` as the state's own path string:
    an unchanged library of 200,000 files costs a set of references, not a second copy of every path."""
    tree = AudioTree()
    library_root = library_root or root
    stack = [root]
    while stack:
        if should_stop is not None and should_stop():
            raise WalkStopped(root)
        d = stack.pop()
        tree.directories += 1
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError as exc:
            if d == root:
                raise RootUnlistable(f"cannot list the root: {exc}") from exc
            log.warning("%s: scan: cannot list directory: %s; its files are left as they were", d, exc)
            tree.unreadable.add(d)
            continue
        if library is not None and library.marker and any(e.name == library.marker for e in entries):
            log.debug("%s: scan: excluded (holds the marker file %s)", d, library.marker)
            tree.excluded += 1
            continue
        for e in entries:
            if library is not None and library.excluded_entry(e.path, library_root):
                tree.excluded += 1
                continue
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file() and is_audio(e.name):
                    st = e.stat()
                    old = known(e.path) if known is not None else None
                    if old is not None and (old.size, old.mtime_ns, old.inode) == (st.st_size, st.st_mtime_ns,
                                                                                    st.st_ino):
                        tree.unchanged.add(old.path)
                    else:
                        tree.files[e.path] = (st.st_size, st.st_mtime_ns, st.st_ino)
            except OSError as exc:
                log.warning("%s: scan: cannot stat: %s", e.path, exc)
                tree.unreadable.add(e.path)
    return tree


class LibraryScan:
    """Walks online roots and marks what differs from the state dirty."""

    def __init__(self, roots: LibraryRoots, state: WatcherState, is_audio: Callable[[str], bool],
                 mark_dirty: MarkDirty, library: Library | None = None):
        self.roots = roots
        self.state = state
        self.is_audio = is_audio
        self.mark_dirty = mark_dirty
        self.library = library
        self.last_files: dict[str, int] = {}  # root -> audio files found by its last walk

    def scan_root(self, root: str, origin: str) -> int:
        """Mark the differences under one root dirty (origin "scan" or "reconcile"); the directories walked."""
        reason = self.roots.offline_reason(root)
        if reason:
            self.roots.mark_offline(root, reason, origin)
            return 0
        try:
            tree = walk_audio_files(root, self.is_audio, self.library)
        except RootUnlistable as exc:
            self.roots.mark_offline(root, str(exc), origin)
            return 0
        return self._mark_differences(root, origin, tree)

    async def scan_root_async(self, root: str, origin: str, should_stop: Callable[[], bool]) -> int | None:
        """:meth:`scan_root` with the walk in a worker thread (the event loop keeps running); None when
        ``should_stop`` cut it short (nothing marked)."""
        reason = self.roots.offline_reason(root)
        if reason:
            self.roots.mark_offline(root, reason, origin)
            return 0
        try:
            tree = await asyncio.get_running_loop().run_in_executor(
                None, lambda: walk_audio_files(root, self.is_audio, self.library, should_stop=should_stop,
                                               known=self.state.get))
        except RootUnlistable as exc:
            self.roots.mark_offline(root, str(exc), origin)
            return 0
        except WalkStopped:
            return None
        return self._mark_differences(root, origin, tree)

    def _mark_differences(self, root: str, origin: str, tree: AudioTree) -> int:
        marked = 0
        for path, (size, mtime_ns, inode) in tree.files.items():
            e = self.state.get(path)
            if e is None or e.size != size or e.mtime_ns != mtime_ns or e.inode != inode:
                self.mark_dirty(path, origin)
                marked += 1
        for e in self.state.under(root):
            if not tree.found(e.path) and not tree.covers_unreadable(e.path):
                # gone from the disk, or excluded now: quiescence decides whether it is removed, and why
                self.mark_dirty(e.path, origin)
                marked += 1
        log.info("%s: %s: %d audio files in %d directories (%d names excluded), %d to look at", root, origin,
                 tree.count, tree.directories, tree.excluded, marked)
        self.last_files[root] = tree.count
        return tree.directories

    def scan_all(self, origin: str) -> int:
        """Every root (offline ones are skipped and said so); the directories walked in total."""
        return sum(self.scan_root(root, origin) for root in self.roots.paths)

    async def scan_all_async(self, origin: str, should_stop: Callable[[], bool]) -> int | None:
        """:meth:`scan_all`, each walk in a worker thread; None when a stop cut it short."""
        directories = 0
        for root in self.roots.paths:
            walked = await self.scan_root_async(root, origin, should_stop)
            if walked is None:
                return None
            directories += walked
        return directories
