"""Phase "watch": the live watch (watchdog) and the inotify limit check.

Filesystem events only mark paths *dirty*: an event says "look here", never
what happened (a copy in progress, a rename pair, an editor's save dance all
look different from the final result). Quiescence and publishing decide.

watchdog's ``Observer`` uses inotify; ``--poll`` uses ``PollingObserver`` for
network shares, which send no change events. inotify needs one watch per
directory: when ``max_user_watches`` is below the library's directory count,
changes are silently missed, so that is checked and said loudly at start,
with the sysctl that fixes it.

The kernel is asked only for the events that can change what is published
(:data:`WATCH_MASK`: create, close-write, moved from/to, delete, attrib), never
for opens, reads or close-without-write: the analyzers read every file, and
with watchdog's default mask each read queued two events, which overflowed
the kernel's queue (``max_queued_events``, 16,384 by default) on large
libraries. An overflow that still happens is counted (``overflows``, in the
health report), said with its fix, and answered by a reconcile soon after.

Excluded paths (``Library.excluded``) mark nothing but the files already
published under them (which are then removed as ``excluded``); a directory
moved in is walked without entering excluded folders; a marker file that
appears or goes marks its folder's files, so they leave or come back.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from typing import Callable

from trackprint.paths import Library
from trackprint.watcher.roots import LibraryRoots
from trackprint.watcher.scan import MarkDirty, RootUnlistable, walk_audio_files
from trackprint.watcher.state import WatcherState

log = logging.getLogger("trackprint.watcher")

INOTIFY_LIMIT_PATH = "/proc/sys/fs/inotify/max_user_watches"
INOTIFY_QUEUE_PATH = "/proc/sys/fs/inotify/max_queued_events"
WATCHES_HEADROOM = 0.9  # other programs of the same user hold watches too: warn above 90% of the limit


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def sysctl_fix(name: str, value: int) -> str:
    """How to raise an inotify limit now and for good (a line a person can paste)."""
    return (f"sudo sysctl fs.inotify.{name}={value} (to keep it: echo fs.inotify.{name}={value} | "
            f"sudo tee /etc/sysctl.d/90-trackprint.conf)")


def inotify_limit_check(directories: int) -> dict:
    """{max_user_watches, max_queued_events, directories, enough} (warns when too low, with the fix);
    {} when the limit cannot be read."""
    limit = _read_int(INOTIFY_LIMIT_PATH)
    if limit is None:
        return {}
    enough = directories <= limit * WATCHES_HEADROOM
    if not enough:
        log.warning(
            "INOTIFY LIMIT TOO LOW: max_user_watches is %d but the library has %d directories (one watch each, "
            "and other programs use watches too): changes will be MISSED until the reconcile every few minutes. "
            "Raise it: %s; or run with --poll",
            limit, directories, sysctl_fix("max_user_watches", max(directories * 2, 524288)),
        )
    return {"max_user_watches": limit, "max_queued_events": _read_int(INOTIFY_QUEUE_PATH),
            "directories": directories, "enough": enough}


def _inotify_mask() -> int:
    from watchdog.observers.inotify_c import InotifyConstants as c

    return (c.IN_CREATE | c.IN_CLOSE_WRITE | c.IN_MOVED_FROM | c.IN_MOVED_TO | c.IN_DELETE | c.IN_DELETE_SELF
            | c.IN_ATTRIB)


def _event_filter() -> list:
    """The watchdog event classes the watcher handles (no opens, reads, close-nowrite, directory-modified)."""
    from watchdog import events as ev

    classes = [ev.FileCreatedEvent, ev.DirCreatedEvent, ev.FileMovedEvent, ev.DirMovedEvent, ev.FileDeletedEvent,
               ev.DirDeletedEvent, ev.FileClosedEvent, ev.FileModifiedEvent]
    if hasattr(ev, "FileAttribEvent"):  # watchdog >= 7 names IN_ATTRIB apart; older ones call it modified
        classes.append(ev.FileAttribEvent)
    return classes


def _observer_class():
    """watchdog's inotify observer asking the kernel for :func:`_inotify_mask` only.

    watchdog derives the kernel mask from the event filter, but maps "modified" to IN_MODIFY as well
    (every write(2) of a file being copied); the emitter below asks for exactly the mask. Should a
    watchdog version lack that hook, the plain observer with the event filter is used: still no open,
    read or close-nowrite events."""
    from watchdog.observers import Observer

    try:
        from watchdog.observers.inotify import InotifyEmitter, InotifyObserver
    except ImportError:  # not Linux
        return Observer
    if not (issubclass(Observer, InotifyObserver) and hasattr(InotifyEmitter, "get_event_mask_from_filter")):
        return Observer

    class ChangesOnlyEmitter(InotifyEmitter):
        def get_event_mask_from_filter(self):
            return _inotify_mask()

    class ChangesOnlyObserver(InotifyObserver):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if hasattr(self, "_emitter_class"):
                self._emitter_class = ChangesOnlyEmitter

    return ChangesOnlyObserver


class _OverflowCounter(logging.Handler):
    """watchdog handles IN_Q_OVERFLOW itself (it re-adds the watches) and only logs it: count those lines.

    One handler for the process, added once and never removed, telling every live :class:`LiveWatch`.
    A handler per watch, added at start and removed at stop, let a watch that was never stopped (its
    event loop closed) raise inside watchdog's ``logger.warning`` and so hide the overflow from the
    handlers after it. ``emit`` never raises: watchdog's reader thread must not die of a closed loop.
    """

    def __init__(self):
        super().__init__(logging.WARNING)
        self.watches: set[LiveWatch] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if not (record.name.endswith("inotify_c") and "overflow" in str(record.msg).lower()):
            return
        for watch in list(self.watches):
            try:
                watch._loop.call_soon_threadsafe(watch._overflowed)
            except Exception:  # noqa: BLE001 - a loop already closed: that watch is gone
                self.watches.discard(watch)


_overflow_counter: _OverflowCounter | None = None


def _count_overflows_for(watch: "LiveWatch") -> None:
    global _overflow_counter
    if _overflow_counter is None:
        _overflow_counter = _OverflowCounter()
        watchdog_log = logging.getLogger("watchdog.observers.inotify_c")
        watchdog_log.addHandler(_overflow_counter)
        if not watchdog_log.isEnabledFor(logging.WARNING):
            watchdog_log.setLevel(logging.WARNING)
    _overflow_counter.watches.add(watch)


def _stop_counting_overflows_for(watch: "LiveWatch") -> None:
    if _overflow_counter is not None:
        _overflow_counter.watches.discard(watch)


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
        self.overflows = 0  # kernel queue overflows (events lost): each is followed by a reconcile
        self.on_overflow: Callable[[], None] | None = None  # on the event loop, after each overflow

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.poll:
            from watchdog.observers.polling import PollingObserver as ObserverClass
        else:
            ObserverClass = _observer_class()
        self._loop = loop
        if not self.poll:
            _count_overflows_for(self)
        self.observer = ObserverClass()
        self._handler = self._make_handler()
        # started before the roots are scheduled: a running observer starts each watch at once, so a root
        # that cannot be watched (missing, inotify limit) fails alone in watch(), not the whole watcher
        self.observer.start()
        for root in self.roots.paths:
            if root not in self.roots.offline:
                self.watch(root)

    async def stop(self) -> None:
        _stop_counting_overflows_for(self)
        if self.observer is not None and self.observer.is_alive():
            self.observer.stop()
            await asyncio.get_running_loop().run_in_executor(None, self.observer.join, 5)

    def _overflowed(self) -> None:
        self.overflows += 1
        if self.on_overflow is not None:
            self.on_overflow()

    def watch(self, root: str) -> None:
        if self.observer is None or root in self.watches:
            return
        try:
            self.watches[root] = self.observer.schedule(self._handler, root, recursive=True,
                                                        event_filter=_event_filter())
        except OSError as exc:
            fix = ""
            if exc.errno == errno.ENOSPC:  # inotify_add_watch: the user's max_user_watches is used up
                limit = _read_int(INOTIFY_LIMIT_PATH) or 8192
                fix = f"; the inotify watch limit ({limit}) is reached: {sysctl_fix('max_user_watches', limit * 4)}"
            log.warning("%s: watch: cannot watch (%s)%s; relying on reconcile every %.0f s", root, exc, fix,
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
                if event.is_directory and event.event_type in ("modified", "attrib"):
                    return  # a folder's listing changed: the files' own events say which
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
