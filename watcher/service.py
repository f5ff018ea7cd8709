"""The watcher: filesystem -> quiescent FileEvents on the events stream.

This module only orders the phases (see watcher/README.md); each phase is a
module of its own:

- ``roots``: which library roots are online (offline: nothing is published for them);
- ``scan``: the start-up scan and the periodic reconcile walk mark differences dirty;
- ``watch``: watchdog marks changed paths dirty as they happen;
- ``quiescence``: dirty -> waiting -> quiet, or gone;
- ``publish``: quiet files and long-gone paths become events; the state follows the PubAcks;
- ``health``: the report to the status KV bucket, and the metrics.

Connecting, signals, the progress line and the clean close come from the
service skeleton (``trackprint.service``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field

from trackprint.paths import Library, library_from_env
from trackprint.service import Service, host_name
from trackprint.watcher.health import HealthReporter
from trackprint.watcher.publish import EventPublisher
from trackprint.watcher.quiescence import Quiescence
from trackprint.watcher.roots import LibraryRoots
from trackprint.watcher.scan import LibraryScan, audio_name_test
from trackprint.watcher.state import WatcherState, default_state_path
from trackprint.watcher.watch import LiveWatch, inotify_limit_check, sysctl_fix

log = logging.getLogger("trackprint.watcher")

DEFAULT_EXTENSIONS = ("flac", "mp3", "ogg", "opus", "wav", "aiff", "aif", "m4a", "aac", "wv", "ape")
TICK_S = 0.5  # how often dirty paths are resolved and quiet files published
TICK_BUDGET_S = 2.0  # a tick with a backlog publishes this long, then lets the loop run (progress, stop)
SORT_CHUNK = 2000  # dirty paths stat'ed between two yields to the event loop
OVERFLOW_RECONCILE_S = 5.0  # after an inotify overflow (events lost), reconcile this soon


@dataclass
class WatcherConfig:
    roots: list[str]
    nats: str = "nats://127.0.0.1:4222"
    poll: bool = False
    quiet_s: float = 3.0
    reconcile_s: float = 300.0
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    state_path: str = field(default_factory=default_state_path)
    library: Library | None = None  # the excludes; None: from the settings (trackprint.settings), for these roots


class Watcher(Service):
    name = "watcher"
    work_in_hand = "the current tick"
    default_log_level = logging.INFO  # one line per published event is the watcher's main output

    def __init__(self, config: WatcherConfig, js=None):
        super().__init__(config.nats, js=js)
        self.config = config
        self.host = host_name()
        self.state = WatcherState(config.state_path)
        self.is_audio = audio_name_test(config.extensions)
        self.roots = LibraryRoots(config.roots, self.state)
        self.library = config.library or library_from_env(self.roots.paths)
        if not config.poll:
            from trackprint import settings

            config.poll = bool(settings.current().poll)  # --poll, or poll = true in the settings
        self.quiescence = Quiescence(self.roots, self.state, config.quiet_s, self.library)
        self.scan = LibraryScan(self.roots, self.state, self.is_audio, self.quiescence.mark_dirty, self.library)
        self.live_watch = LiveWatch(self.roots, self.state, self.is_audio, self.quiescence.mark_dirty,
                                    poll=config.poll, reconcile_s=config.reconcile_s, library=self.library)
        self.inotify: dict = {}  # the inotify limit check's outcome, for the health report
        self.publisher: EventPublisher | None = None  # with the bus, in setup
        self.health_reporter: HealthReporter | None = None
        self._next_reconcile = 0.0
        self.started_at = time.time()
        self.scan_walked_at: float | None = None  # the start-up walk of every root is done
        self.scan_completed_at: float | None = None  # ... and everything it found is published
        self.directories = 0
        self._last_overflow_warning = 0.0
        self._reported_idle_state: tuple[bool, bool] | None = None  # (scan complete, nothing waiting) last said

    # -------------------------------------------------------------- the skeleton's hooks
    async def setup(self, js) -> None:
        # a move's destination may be seen a tick after its source vanished; it must turn quiet and
        # claim the inode (one `moved`) before the source counts as `removed`
        self.publisher = EventPublisher(js, self.state, self.roots, self.quiescence,
                                        removal_delay_s=self.config.quiet_s + 2 * TICK_S)
        self.publisher.should_stop = lambda: self.stopping
        self.publisher.after_batch = self.report_health
        self.health_reporter = HealthReporter(js, self.host)
        self.live_watch.on_overflow = self._on_overflow
        self.live_watch.start(asyncio.get_running_loop())  # before the scan: nothing changes unseen in between
        await self.startup_scan()
        self._next_reconcile = time.monotonic() + self.config.reconcile_s

    async def step(self) -> None:
        more = await self.tick()
        if self.stopping:
            return
        if time.monotonic() >= self._next_reconcile:
            await self.scan.scan_all_async("reconcile", lambda: self.stopping)
            self._next_reconcile = time.monotonic() + self.config.reconcile_s
        if not more:
            await self.sleep(TICK_S)

    def progress(self) -> str:
        published = self.publisher.published_by_kind if self.publisher else {}
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(published.items()))
        scan = ("scan complete" if self.scan_completed_at else
                "scan publishing" if self.scan_walked_at else "scan walking")
        return (f"published {sum(published.values())}{f' ({kinds})' if kinds else ''}, "
                f"{self.quiescence.dirty_count + len(self.quiescence.waiting)} waiting for quiescence, "
                f"{len(self.roots.offline)} roots offline, "
                f"{self.publisher.excluded if self.publisher else 0} removed as excluded, {scan}, "
                f"{self.live_watch.overflows} inotify overflows")

    async def teardown(self) -> None:
        await self.live_watch.stop()
        self.state.close()

    # -------------------------------------------------------------- the phases, in order
    async def startup_scan(self) -> None:
        """Walk every root (in a worker thread: a stop is answered meanwhile) and mark the differences."""
        directories = await self.scan.scan_all_async("scan", lambda: self.stopping)
        if directories is None:
            return  # stopping: the next start scans again
        self.scan_walked_at = time.time()
        self.directories = directories
        log.info("start-up scan: %d directories walked in %.1f s, %d paths to look at", directories,
                 self.scan_walked_at - self.started_at, self.quiescence.dirty_count)
        if not self.config.poll:
            self.inotify = inotify_limit_check(directories)

    def _on_overflow(self) -> None:
        """The kernel dropped events: reconcile soon (coalesced), and say how to avoid it (once a minute)."""
        self._next_reconcile = min(self._next_reconcile, time.monotonic() + OVERFLOW_RECONCILE_S)
        if time.monotonic() - self._last_overflow_warning >= 60:
            self._last_overflow_warning = time.monotonic()
            queue = self.inotify.get("max_queued_events") or "?"
            log.warning("INOTIFY QUEUE OVERFLOW (%d so far): the kernel dropped file events (max_queued_events is "
                        "%s); reconciling in %.0f s. If it recurs, raise it: %s", self.live_watch.overflows, queue,
                        OVERFLOW_RECONCILE_S, sysctl_fix("max_queued_events", 262144))

    def scan_root_into_dirty(self, root: str, origin: str) -> int:
        """One root's scan or reconcile (origin names which); the directories walked."""
        return self.scan.scan_root(root, origin)

    def refresh_roots(self) -> None:
        changes = self.roots.refresh()
        for root in changes.went_offline:
            self.live_watch.unwatch(root)  # its events would only be noise until it is back
        for root in changes.came_back:
            self.live_watch.watch(root)
            self.scan_root_into_dirty(root, "reconcile")  # whatever changed while it was away
        for root in changes.replaced:  # the old watch follows the old directory: watch the one now there
            self.live_watch.unwatch(root)
            self.live_watch.watch(root)
            self.scan_root_into_dirty(root, "reconcile")

    async def tick(self) -> bool:
        """One pass: roots, dirty -> waiting, publish. True when work is left for an immediate next tick (a
        backlog larger than one tick's budget); the stop flag is asked between chunks and batches."""
        self.refresh_roots()
        now = time.time()
        deadline = time.monotonic() + TICK_BUDGET_S
        more = False
        while self.quiescence.sort_dirty(now, SORT_CHUNK):
            await asyncio.sleep(0)  # a start-up scan marks the whole library: let events and signals in
            if self.stopping or time.monotonic() >= deadline:
                more = True
                break
        if not self.stopping:
            more = await self.publisher.publish_quiet_files(now, deadline) or more
        if not self.stopping:
            await self.publisher.publish_exclusions(now)
        if not self.stopping:
            await self.publisher.publish_due_removals(now)
        self.publisher.commit()
        self._check_scan_complete()
        await self.report_health()
        return more

    async def report_health(self, force: bool = False) -> None:
        health = self.health()
        # `up --exit-when-idle` stops on the last report: say at once when "is anything left?" changes
        idle_state = (health["scan_complete"], health["waiting_for_quiescence"] == 0)
        if idle_state != self._reported_idle_state:
            self._reported_idle_state = idle_state
            force = True
        await self.health_reporter.report_if_due(time.time(), health, offline_roots=len(self.roots.offline),
                                                 force=force)

    def _check_scan_complete(self) -> None:
        """Once the start-up walk is done and nothing it (or anything since) marked is left to publish, the
        scan is complete: the marker `up --exit-when-idle` waits for. Left out: what cannot progress by
        itself (offline roots, held mass deletions, missing mounts)."""
        if self.scan_completed_at is not None or self.scan_walked_at is None:
            return
        q = self.quiescence
        if q.dirty_count:
            return
        if any(not self._blocked(p) for p in q.waiting) or any(not self._blocked(p) for p in q.excluded) \
                or any(not self._blocked(p) for p in q.gone):
            return
        self.scan_completed_at = time.time()
        log.info("start-up scan complete: everything found is published (%d events in %.1f s)",
                 self.publisher.published, self.scan_completed_at - self.started_at)
        self.health_reporter.due_now()

    def _blocked(self, path: str) -> bool:
        root = self.roots.root_of(path)
        if root is None or root in self.roots.offline or root in self.publisher.held_deletions:
            return True
        return any(path.startswith(m.rstrip(os.sep) + os.sep) for m in self.publisher.missing_mounts)

    def health(self) -> dict:
        """What `trackprint status` shows about this watcher (published to the status KV bucket)."""
        return {
            "host": self.host,
            "roots": self.roots.paths,
            "offline": dict(self.roots.offline_reasons),
            "pid": os.getpid(),
            "started_at": self.started_at,
            # the start-up scan walked every root and everything it found is published (up --exit-when-idle)
            "scan_complete": self.scan_completed_at is not None,
            "scan": {"walked_at": self.scan_walked_at, "completed_at": self.scan_completed_at,
                     "directories": self.directories, "files": sum(self.scan.last_files.values())},
            "inotify": {**self.inotify, "overflows": self.live_watch.overflows} if not self.config.poll else {},
            "poll": self.config.poll,
            "published": self.publisher.published if self.publisher else 0,
            "published_by_kind": dict(self.publisher.published_by_kind) if self.publisher else {},
            "duplicates": self.publisher.duplicates if self.publisher else 0,
            "waiting_for_quiescence": self.quiescence.dirty_count + len(self.quiescence.waiting),
            "missing_mounts": dict(self.publisher.missing_mounts) if self.publisher else {},
            "held_deletions": dict(self.publisher.held_deletions) if self.publisher else {},
            "updated_at": time.time(),
        }
