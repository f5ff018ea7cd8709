"""Phase "watch": the live watch (watchdog) and the inotify limit check.

Filesystem events only mark paths *dirty*: an event says "look here", never
what happened (a copy in progress, a rename pair, an editor's save dance all
look different from the final result). Quiescence and publishing decide.

watchdog's ``Observer`` uses inotify; ``--poll`` uses ``PollingObserver`` for
network shares, which send no change events. inotify needs one watch per
directory: when ``max_user_watches`` is below the library's directory count,
changes are silently missed, so that is checked and said loudly at start.

Excluded paths (``Library.excluded``) mark nothing but the files already
published under them (which are then removed as ``excluded``); a directory
moved in is walked without entering excluded folders; a marker file that
appears or goes marks its folder's files, so they leave or come back.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Callable

from trackprint.paths import Library
from trackprint.watcher.roots import LibraryRoots
from trackprint.watcher.scan import MarkDirty, RootUnlistable, walk_audio_files
from trackprint.watcher.state import WatcherState

log = logging.getLogger("trackprint.watcher")

INOTIFY_LIMIT_PATH = "/proc/sys/fs/inotify/max_user_watches"


def inotify_limit_check(directories: int) -> dict:
    """{max_user_watches, directories, enough} (warns when too low); {} when the limit cannot be read."""
    try:
        with open(INOTIFY_LIMIT_PATH) as fh:
            limit = int(fh.read().strip())
    except (OSError, ValueError):
        return {}
    if limit < directories:
        log.warning(
            "inotify max_user_watches is %d but the library has %d directories: changes will be MISSED. "
            "Use --poll, or raise it: sudo sysctl fs.inotify.max_user_watches=%d",
            limit, directories, max(directories * 2, 524288),
        )
    return {"max_user_watches": limit, "directories": directories, "enough": limit >= directories}


class LiveWatch:
    """One recursive watch per online root; each filesystem event marks paths dirty on the event loop."""

    def __init__(self, roots: LibraryRoots, state: WatcherState, is_audio: Callable[[str], bool],
                 mark_dirty: MarkDirty, *, poll: bool, reconcile_s: float, library: Library | None = None):
        self.library = library
        self.roots = roots
        self.state = state
        self.is_audio = is_audio
        self.mark_dirty = mark_dirty
        self.poll = poll
        self.reconcile_s = reconcile_s
        self.observer = None
        self.watches: dict[str, object] = {}  # root -> watchdog ObservedWatch
        self._handler = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.poll:
            from watchdog.observers.polling import PollingObserver as ObserverClass
        else:
            from watchdog.observers import Observer as ObserverClass
        self._loop = loop
        self.observer = ObserverClass()
        self._handler = self._make_handler()
        # started before the roots are scheduled: a running observer starts each watch at once, so a root
        # that cannot be watched (missing, inotify limit) fails alone in watch(), not the whole watcher
        self.observer.start()
        for root in self.roots.paths:
            if root not in self.roots.offline:
                self.watch(root)

    async def stop(self) -> None:
        if self.observer is not None and self.observer.is_alive():
            self.observer.stop()
            await asyncio.get_running_loop().run_in_executor(None, self.observer.join, 5)

    def watch(self, root: str) -> None:
        if self.observer is None or root in self.watches:
            return
        try:
            self.watches[root] = self.observer.schedule(self._handler, root, recursive=True)
        except OSError as exc:
            log.warning("%s: watch: cannot watch (%s); relying on reconcile every %.0f s", root, exc,
                        self.reconcile_s)

    def unwatch(self, root: str) -> None:
        watch = self.watches.pop(root, None)
        if watch is not None and self.observer is not None:
            try:
                self.observer.unschedule(watch)
            except Exception as exc:  # the root vanished under the observer
                log.debug("unschedule %s: %s", root, exc)

    def _make_handler(self):
        from watchdog.events import FileSystemEventHandler

        live_watch = self

        class MarkDirtyOnChange(FileSystemEventHandler):
            def on_any_event(self, event):
                if event.event_type in ("opened", "closed_no_write"):
                    return  # reads (e.g. the analyzer's) change nothing
                live_watch._on_event(event)

        return MarkDirtyOnChange()

    def _on_event(self, event) -> None:
        """On the observer's thread: hand each path of the event to the event loop."""
        is_dir = event.is_directory
        for p in (event.src_path, getattr(event, "dest_path", None)):
            if p:
                self._loop.call_soon_threadsafe(self.mark_changed, os.fsdecode(p), is_dir)

    def mark_changed(self, path: str, is_dir: bool) -> None:
        """Mark what a change at ``path`` may affect dirty: the file, or everything known or found below a directory."""
        root = self.roots.root_of(path)
        if root is None or root in self.roots.offline:
            return
        if path == root:
            return  # the root itself: the roots phase decides whether it is online
        library = self.library
        if library is not None and library.marker and os.path.basename(path) == library.marker and not is_dir:
            path, is_dir = os.path.dirname(path), True  # a marker came or went: its whole folder leaves or returns
        if library is not None and library.excluded(path):
            for e in [self.state.get(path), *self.state.under(path)]:  # published before: removed as excluded
                if e is not None:
                    self.mark_dirty(e.path, "watch")
            return
        if is_dir or os.path.isdir(path):
            for e in self.state.under(path):  # a directory moved away or deleted: its known files
                self.mark_dirty(e.path, "watch")
            if os.path.isdir(path):  # a directory moved in: its files (no events come for them)
                try:
                    tree = walk_audio_files(path, self.is_audio, library, root)
                except RootUnlistable as exc:
                    log.warning("%s: watch: %s; the reconcile will look again", path, exc)
                    return
                for p in tree.files:
                    self.mark_dirty(p, "watch")
            return
        if self.is_audio(path):
            self.mark_dirty(path, "watch")
