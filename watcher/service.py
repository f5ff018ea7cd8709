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
import socket
import time
from dataclasses import dataclass, field

from trackprint.paths import Library, library_from_env
from trackprint.service import Service
from trackprint.watcher.health import HealthReporter
from trackprint.watcher.publish import EventPublisher
from trackprint.watcher.quiescence import Quiescence
from trackprint.watcher.roots import LibraryRoots
from trackprint.watcher.scan import LibraryScan, audio_name_test
from trackprint.watcher.state import WatcherState, default_state_path
from trackprint.watcher.watch import LiveWatch, inotify_limit_check

DEFAULT_EXTENSIONS = ("flac", "mp3", "ogg", "opus", "wav", "aiff", "aif", "m4a", "aac", "wv", "ape")
TICK_S = 0.5  # how often dirty paths are resolved and quiet files published


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
        self.host = socket.gethostname()
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

    # -------------------------------------------------------------- the skeleton's hooks
    async def setup(self, js) -> None:
        # a move's destination may be seen a tick after its source vanished; it must turn quiet and
        # claim the inode (one `moved`) before the source counts as `removed`
        self.publisher = EventPublisher(js, self.state, self.roots, self.quiescence,
                                        removal_delay_s=self.config.quiet_s + 2 * TICK_S)
        self.health_reporter = HealthReporter(js, self.host)
        self.live_watch.start(asyncio.get_running_loop())  # before the scan: nothing changes unseen in between
        self.startup_scan()
        self._next_reconcile = time.monotonic() + self.config.reconcile_s

    async def step(self) -> None:
        await self.tick()
        if time.monotonic() >= self._next_reconcile:
            self.scan.scan_all("reconcile")
            self._next_reconcile = time.monotonic() + self.config.reconcile_s
        await self.sleep(TICK_S)

    def progress(self) -> str:
        published = self.publisher.published_by_kind if self.publisher else {}
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(published.items()))
        return (f"published {sum(published.values())}{f' ({kinds})' if kinds else ''}, "
                f"{len(self.quiescence.waiting)} waiting for quiescence, {len(self.roots.offline)} roots offline, "
                f"{self.publisher.excluded if self.publisher else 0} removed as excluded")

    async def teardown(self) -> None:
        await self.live_watch.stop()
        self.state.close()

    # -------------------------------------------------------------- the phases, in order
    def startup_scan(self) -> None:
        directories = self.scan.scan_all("scan")
        if not self.config.poll:
            self.inotify = inotify_limit_check(directories)

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

    async def tick(self) -> None:
        self.refresh_roots()
        now = time.time()
        self.quiescence.sort_dirty(now)
        await self.publisher.publish_quiet_files(now)
        await self.publisher.publish_exclusions(now)
        await self.publisher.publish_due_removals(now)
        self.publisher.commit()
        await self.health_reporter.report_if_due(now, self.health(), offline_roots=len(self.roots.offline))

    def health(self) -> dict:
        """What `trackprint status` shows about this watcher (published to the status KV bucket)."""
        return {
            "host": self.host,
            "roots": self.roots.paths,
            "offline": dict(self.roots.offline_reasons),
            "inotify": self.inotify,
            "poll": self.config.poll,
            "published": self.publisher.published if self.publisher else 0,
            "published_by_kind": dict(self.publisher.published_by_kind) if self.publisher else {},
            "waiting_for_quiescence": len(self.quiescence.waiting),
            "missing_mounts": dict(self.publisher.missing_mounts) if self.publisher else {},
            "held_deletions": dict(self.publisher.held_deletions) if self.publisher else {},
            "updated_at": time.time(),
        }
