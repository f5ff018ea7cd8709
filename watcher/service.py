"""The watcher: filesystem -> quiescent FileEvents on the events stream.

Phases (see watcher/README.md): start-up scan, live watch (watchdog), and a
periodic reconcile; all three only mark paths *dirty*. A 0.5 s tick resolves
dirty paths against the state (what was last published), waits for
quiescence, and publishes added / changed / moved / removed. Removals wait one
quiet period more than additions so that a move's destination can claim its
inode first. A root that is missing, on another device than before, empty
while the state knows files under it, or unreadable is *offline*: nothing is
published for it (no removals) until it is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import stat as statmod
import time
from dataclasses import dataclass, field

from trackprint import bus
from trackprint.contracts import FileEvent, encode
from trackprint.watcher.state import Entry, WatcherState, default_state_path

log = logging.getLogger("trackprint.watcher")

DEFAULT_EXTENSIONS = ("flac", "mp3", "ogg", "opus", "wav", "aiff", "aif", "m4a", "aac", "wv", "ape")
TICK_S = 0.5
REPORT_EVERY_S = 5.0  # health report to the status KV bucket (offline roots, inotify limit)

try:
    from prometheus_client import Counter, Gauge

    M_PUBLISHED = Counter("trackprint_watcher_events_total", "File events published", ["kind"])
    M_OFFLINE = Gauge("trackprint_watcher_offline_roots", "Library roots currently offline")
    M_PENDING = Gauge("trackprint_watcher_waiting_files", "Files waiting to be quiescent")
except Exception:  # pragma: no cover - prometheus_client is a dependency
    M_PUBLISHED = M_OFFLINE = M_PENDING = None


@dataclass
class Pending:
    origin: str
    size: int | None = None
    mtime_ns: int | None = None
    last_change: float = 0.0


@dataclass
class WatcherConfig:
    roots: list[str]
    nats: str = "nats://127.0.0.1:4222"
    poll: bool = False
    quiet_s: float = 3.0
    reconcile_s: float = 300.0
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    state_path: str = field(default_factory=default_state_path)


class RootOffline(Exception):
    pass


class Watcher:
    def __init__(self, config: WatcherConfig, js=None):
        self.config = config
        self.roots = [os.path.abspath(r) for r in config.roots]
        self.exts = {"." + e.lower().lstrip(".") for e in config.extensions}
        self.state = WatcherState(config.state_path)
        self.js = js
        self.dirty: dict[str, str] = {}  # path -> origin
        self.pending: dict[str, Pending] = {}
        self.gone: dict[str, tuple[float, str]] = {}  # path -> (first seen gone, origin)
        self.offline: set[str] = set()
        self.offline_reasons: dict[str, str] = {}
        self.inotify: dict[str, object] = {}
        self.published_by_kind: dict[str, int] = {}
        self._last_report = 0.0
        self.observer = None
        self.watches: dict[str, object] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.published = 0
        self.host = socket.gethostname()
        self._stop = asyncio.Event()

    # ----------------------------------------------------------------- helpers
    def is_audio(self, path: str) -> bool:
        return os.path.splitext(path)[1].lower() in self.exts

    def root_of(self, path: str) -> str | None:
        for root in self.roots:
            if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
                return root
        return None

    def check_root(self, root: str) -> str | None:
        """None when online, else the reason it is offline."""
        try:
            st = os.stat(root)
        except OSError as exc:
            return f"cannot stat the root: {exc.strerror or exc}"
        if not statmod.S_ISDIR(st.st_mode):
            return "the root is not a directory"
        known_dev = self.state.root_devs.get(root)
        if known_dev is not None and known_dev != st.st_dev:
            return f"the root is on another device than before ({st.st_dev} != {known_dev}): unmounted?"
        try:
            with os.scandir(root) as it:
                empty = next(it, None) is None
        except OSError as exc:
            return f"cannot list the root: {exc.strerror or exc}"
        if empty and self.state.under(root):
            return "the root is empty but files were published under it: unmounted drive?"
        if known_dev is None:
            self.state.set_root_dev(root, st.st_dev)
        return None

    def update_roots(self) -> None:
        for root in self.roots:
            reason = self.check_root(root)
            if reason:
                self.offline_reasons[root] = reason
            else:
                self.offline_reasons.pop(root, None)
            if reason and root not in self.offline:
                self.offline.add(root)
                log.warning("LIBRARY ROOT OFFLINE: %s: %s; publishing nothing for it (no removals) until it is back",
                            root, reason)
                self._unwatch(root)
            elif not reason and root in self.offline:
                self.offline.discard(root)
                log.warning("library root back online: %s; reconciling it", root)
                self._watch(root)
                self.scan_root_into_dirty(root, "reconcile")

    # -------------------------------------------------------------- scanning
    def walk(self, root: str) -> tuple[dict[str, os.stat_result], set[str], int]:
        """All audio files under root; the set of directories that failed (their files stay unknown)."""
        files: dict[str, os.stat_result] = {}
        failed: set[str] = set()
        ndirs = 0
        stack = [root]
        while stack:
            d = stack.pop()
            ndirs += 1
            try:
                with os.scandir(d) as it:
                    entries = list(it)
            except OSError as exc:
                if d == root:
                    raise RootOffline(f"cannot list the root: {exc}") from exc
                log.warning("%s: scan: cannot list directory: %s; its files are left as they were", d, exc)
                failed.add(d)
                continue
            for e in entries:
                try:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file() and self.is_audio(e.name):
                        files[e.path] = e.stat()
                except OSError as exc:
                    log.warning("%s: scan: cannot stat: %s", e.path, exc)
                    failed.add(e.path)
        return files, failed, ndirs

    def scan_root_into_dirty(self, root: str, origin: str) -> int:
        reason = self.check_root(root)
        if reason:
            if root not in self.offline:
                self.offline.add(root)
                log.warning("LIBRARY ROOT OFFLINE: %s: %s; skipping its %s", root, reason, origin)
            return 0
        try:
            files, failed, ndirs = self.walk(root)
        except RootOffline as exc:
            self.offline.add(root)
            log.warning("LIBRARY ROOT OFFLINE: %s: %s; skipping its %s", root, exc, origin)
            return 0
        for path, st in files.items():
            e = self.state.get(path)
            if e is None or e.size != st.st_size or e.mtime_ns != st.st_mtime_ns or e.inode != st.st_ino:
                self.dirty.setdefault(path, origin)
        for e in self.state.under(root):
            if e.path not in files and not any(e.path == f or e.path.startswith(f + os.sep) for f in failed):
                self.dirty.setdefault(e.path, origin)
        log.info("%s: %s: %d audio files in %d directories, %d to look at", root, origin, len(files), ndirs,
                 len(self.dirty))
        return ndirs

    def startup_scan(self) -> None:
        total_dirs = 0
        for root in self.roots:
            total_dirs += self.scan_root_into_dirty(root, "scan")
        self.check_inotify_limit(total_dirs)

    def check_inotify_limit(self, ndirs: int) -> None:
        if self.config.poll:
            return
        try:
            with open("/proc/sys/fs/inotify/max_user_watches") as fh:
                limit = int(fh.read().strip())
        except (OSError, ValueError):
            return
        self.inotify = {"max_user_watches": limit, "directories": ndirs, "enough": limit >= ndirs}
        if limit < ndirs:
            log.warning(
                "inotify max_user_watches is %d but the library has %d directories: changes will be MISSED. "
                "Use --poll, or raise it: sudo sysctl fs.inotify.max_user_watches=%d",
                limit, ndirs, max(ndirs * 2, 524288),
            )

    # ---------------------------------------------------------------- watching
    def _on_fs_event(self, event) -> None:  # observer thread
        paths = [event.src_path, getattr(event, "dest_path", None)]
        is_dir = event.is_directory
        for p in paths:
            if p:
                p = os.fsdecode(p)
                self.loop.call_soon_threadsafe(self._mark, p, is_dir)

    def _mark(self, path: str, is_dir: bool) -> None:
        root = self.root_of(path)
        if root is None or root in self.offline:
            return
        if path == root:
            return  # the root itself: update_roots decides
        if is_dir or os.path.isdir(path):
            for e in self.state.under(path):
                self.dirty.setdefault(e.path, "watch")
            if os.path.isdir(path):
                for dirpath, _dirs, names in os.walk(path):
                    for n in names:
                        if self.is_audio(n):
                            self.dirty.setdefault(os.path.join(dirpath, n), "watch")
            return
        if self.is_audio(path):
            self.dirty.setdefault(path, "watch")

    def _handler(self):
        from watchdog.events import FileSystemEventHandler

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                if event.event_type in ("opened", "closed_no_write"):
                    return
                watcher._on_fs_event(event)

        return Handler()

    def start_observer(self) -> None:
        if self.config.poll:
            from watchdog.observers.polling import PollingObserver as ObserverClass
        else:
            from watchdog.observers import Observer as ObserverClass
        self.observer = ObserverClass()
        self._handler_obj = self._handler()
        for root in self.roots:
            if root not in self.offline:
                self._watch(root)
        self.observer.start()

    def _watch(self, root: str) -> None:
        if self.observer is None or root in self.watches:
            return
        try:
            self.watches[root] = self.observer.schedule(self._handler_obj, root, recursive=True)
        except OSError as exc:
            log.warning("%s: watch: cannot watch (%s); relying on reconcile every %.0f s", root, exc,
                        self.config.reconcile_s)

    def _unwatch(self, root: str) -> None:
        watch = self.watches.pop(root, None)
        if watch is not None and self.observer is not None:
            try:
                self.observer.unschedule(watch)
            except Exception as exc:
                log.debug("unschedule %s: %s", root, exc)

    # --------------------------------------------------------------- resolving
    async def tick(self) -> None:
        self.update_roots()
        now = time.time()
        dirty, self.dirty = self.dirty, {}
        for path, origin in dirty.items():
            root = self.root_of(path)
            if root is None or root in self.offline:
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                self.pending.pop(path, None)
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
            p = self.pending.get(path)
            if p is None:
                # a file whose mtime is older than the quiet period counts as quiet since its mtime
                self.pending[path] = Pending(origin, st.st_size, st.st_mtime_ns, min(now, st.st_mtime_ns / 1e9))
        await self._resolve_pending(now)
        await self._resolve_gone(now)
        self.state.commit()
        if now - self._last_report >= REPORT_EVERY_S:
            self._last_report = now
            await self.report()

    def health(self) -> dict:
        """What `trackprint status` shows about this watcher (published to the status KV bucket)."""
        return {
            "host": self.host,
            "roots": self.roots,
            "offline": dict(self.offline_reasons),
            "inotify": self.inotify,
            "poll": self.config.poll,
            "published": self.published,
            "published_by_kind": dict(self.published_by_kind),
            "waiting_for_quiescence": len(self.pending),
            "updated_at": time.time(),
        }

    async def report(self) -> None:
        health = self.health()
        if M_OFFLINE is not None:
            M_OFFLINE.set(len(self.offline))
            M_PENDING.set(len(self.pending))
        try:
            kv = await bus.status_kv(self.js)
            await kv.put(f"watcher.{self.host}", json.dumps(health).encode())
        except Exception as exc:  # health reporting must never stop the watching
            log.debug("status report failed: %s", exc)

    async def _resolve_pending(self, now: float) -> None:
        for path in list(self.pending):
            p = self.pending[path]
            root = self.root_of(path)
            if root in self.offline:
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                del self.pending[path]
                if self.state.get(path) is not None:
                    self.gone.setdefault(path, (now, p.origin))
                continue
            except OSError as exc:
                log.warning("%s: stat: %s; will retry", path, exc)
                continue
            if (st.st_size, st.st_mtime_ns) != (p.size, p.mtime_ns):
                p.size, p.mtime_ns, p.last_change = st.st_size, st.st_mtime_ns, now
                log.debug("%s: quiescence: still changing", path)
                continue
            if now - p.last_change < self.config.quiet_s:
                continue
            if await self._publish_file(path, root, st, p.origin):
                del self.pending[path]

    async def _publish_file(self, path: str, root: str, st: os.stat_result, origin: str) -> bool:
        old = self.state.get(path)
        old_path = None
        if old is None:
            candidate = self.state.path_for_inode(st.st_dev, st.st_ino)
            if candidate and candidate != path and not os.path.lexists(candidate) and \
                    self.state.get(candidate).size == st.st_size:
                old_path = candidate
            kind = "moved" if old_path else "added"
        elif (old.size, old.mtime_ns, old.inode) == (st.st_size, st.st_mtime_ns, st.st_ino):
            return True  # nothing new
        else:
            kind = "changed"
        event = FileEvent(kind=kind, path=path, root=root, size=st.st_size, mtime_ns=st.st_mtime_ns,
                          inode=st.st_ino, old_path=old_path, origin=origin)
        if not await self._publish(event, "quiescent" if kind != "moved" else f"same inode as {old_path}"):
            return False
        if old_path:
            self.state.delete(old_path)
            self.gone.pop(old_path, None)
        self.state.put(Entry(path, root, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, kind))
        return True

    async def _resolve_gone(self, now: float) -> None:
        for path in list(self.gone):
            since, origin = self.gone[path]
            root = self.root_of(path)
            if root in self.offline or self.check_root(root):
                continue  # never removals for an offline root
            if self.state.get(path) is None:
                del self.gone[path]
                continue
            if os.path.lexists(path):
                del self.gone[path]
                self.dirty.setdefault(path, origin)
                continue
            if now - since < self.config.quiet_s + 2 * TICK_S:
                continue  # give a move's destination the chance to claim the inode
            old = self.state.get(path)
            event = FileEvent(kind="removed", path=path, root=root, size=old.size, mtime_ns=old.mtime_ns,
                              inode=old.inode, origin=origin)
            if await self._publish(event, "file is gone"):
                self.state.delete(path)
                del self.gone[path]

    async def _publish(self, event: FileEvent, reason: str) -> bool:
        try:
            ack = await bus.publish(self.js, bus.event_subject(event.kind), encode(event), event.msg_id())
        except bus.BusError as exc:
            log.error("%s: publish %s: FAILED (%s); will retry", event.path, event.kind, exc)
            return False
        self.published += 1
        self.published_by_kind[event.kind] = self.published_by_kind.get(event.kind, 0) + 1
        if M_PUBLISHED is not None:
            M_PUBLISHED.labels(event.kind).inc()
        log.info("%s: published %s (%s; origin %s; seq %d%s)", event.path, event.kind, reason, event.origin,
                 ack.seq, ", duplicate" if ack.duplicate else "")
        return True

    # -------------------------------------------------------------------- run
    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        nc = None
        if self.js is None:
            nc = await bus.connect(self.config.nats, "trackprint-watcher")
            self.js = nc.jetstream()
            await bus.ensure_topology(self.js)
        try:
            self.start_observer()
            self.startup_scan()
            next_reconcile = time.monotonic() + self.config.reconcile_s
            while not self._stop.is_set():
                await self.tick()
                if time.monotonic() >= next_reconcile:
                    for root in self.roots:
                        self.scan_root_into_dirty(root, "reconcile")
                    next_reconcile = time.monotonic() + self.config.reconcile_s
                try:
                    await asyncio.wait_for(self._stop.wait(), TICK_S)
                except asyncio.TimeoutError:
                    pass
        finally:
            if self.observer is not None:
                self.observer.stop()
                await asyncio.get_running_loop().run_in_executor(None, self.observer.join, 5)
            self.state.close()
            if nc is not None:
                await bus.close(nc)
