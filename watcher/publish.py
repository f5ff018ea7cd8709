"""Phase "publish": quiet files and gone paths become FileEvents on the events stream.

- A quiet file at a path the state does not know is ``moved`` when its
  (dev, inode) is in the state under a path that no longer exists and the size
  matches, else ``added``; a known path with another size/mtime/inode is
  ``changed``; an unchanged one publishes nothing. A move is published as two
  events, one per path: first the source's tombstone (``removed``, reason
  ``moved``, naming ``new_path``), then the ``moved`` at the destination. The
  bus keeps only each file's latest event, so the source's last word must be
  its own (else a replay would bring it back).
- A gone path is ``removed`` only after one more quiet period: a move's
  destination usually shows up a moment after its source disappears, and it
  must get the chance to claim the inode first (one ``moved``, not
  ``removed`` + ``added``). Never for an offline root.
- A known file that the library now excludes (quiescence's ``excluded``) is
  ``removed`` with reason ``excluded`` at once (the file is there: no delay,
  no mass-deletion hold, it was a person's decision); should it be included
  again within the stream's duplicate window, its ``added`` carries reason
  ``included`` so that it is not taken for the first ``added``.
- The state (what was last published) changes only after the PubAck, so a
  failed publish leaves everything as it was and is retried on the next tick;
  a repeated publish is deduplicated by the stream (``FileEvent.msg_id``).
- Events go out in batches of :data:`BATCH`, up to ``bus.PUBLISH_WINDOW``
  PubAcks outstanding at once (``bus.publish_many``); a batch never holds two
  events of one path, and a path's next event waits for the batch before it,
  so a path's events are never reordered. After each batch the state is
  committed and the service's stop flag is asked: a stop in the middle of a
  backlog of 200,000 files takes one batch, and a restart publishes only what
  was not acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Awaitable, Callable

from trackprint import bus
from trackprint.contracts import FileEvent, encode
from trackprint.paths import to_text
from trackprint.watcher.health import count_published
from trackprint.watcher.quiescence import QuietFile, Quiescence
from trackprint.watcher.roots import LibraryRoots
from trackprint.watcher.state import Entry, WatcherState

log = logging.getLogger("trackprint.watcher")

MASS_DELETION_MIN = 10  # fewer removals at once are never held
MASS_DELETION_SHARE = 0.5  # more than this share of a root's known files gone at once is held
RECENTLY_EXCLUDED_S = 600.0  # longer than the events stream's duplicate window
BATCH = 512  # events published together; the state is committed and the stop flag checked after each batch


def missing_mount(path: str, dev: int, root: str) -> str | None:
    """The directory below ``root`` whose file system went away, when ``path`` (on device ``dev``) is gone
    because its mount is: the nearest existing ancestor is on another device than the file was."""
    parent = os.path.dirname(path)
    while parent and not os.path.isdir(parent):
        parent = os.path.dirname(parent)
    try:
        if os.stat(parent).st_dev == dev:
            return None
    except OSError:
        return None
    if parent == root or not parent.startswith(root.rstrip(os.sep) + os.sep):
        return None  # the root itself changed device: the roots phase calls that offline
    return parent


class EventPublisher:
    def __init__(self, js, state: WatcherState, roots: LibraryRoots, quiescence: Quiescence, *,
                 removal_delay_s: float):
        self.js = js
        self.state = state
        self.roots = roots
        self.quiescence = quiescence
        self.removal_delay_s = removal_delay_s
        self.published = 0
        self.published_by_kind: dict[str, int] = {}
        self.missing_mounts: dict[str, str] = {}  # directory -> why its files count as unmounted, not deleted
        self.held_deletions: dict[str, dict] = {}  # root -> removals waiting for a person's confirmation
        self.held_since: dict[str, float] = {}
        self.recently_excluded: dict[str, float] = {}  # path -> when its excluded removal was published
        self.excluded = 0  # removals published because the library excludes the file
        self.duplicates = 0  # PubAcks that said "duplicate": published before (a crash before its state commit)
        self.window = bus.PUBLISH_WINDOW
        self.should_stop: Callable[[], bool] = lambda: False  # the service's stop flag, asked between batches
        self.after_batch: Callable[[], Awaitable[None]] | None = None  # e.g. the health report, when due

    async def publish_quiet_files(self, now: float, deadline: float | None = None) -> bool:
        """Publish the quiet files, a batch of :data:`BATCH` at a time with up to ``bus.PUBLISH_WINDOW``
        PubAcks outstanding; after each batch the state is committed and ``after_batch`` runs (the health
        report). Returns True when it stopped early with quiet files left: a stop was asked
        (``should_stop``), the monotonic ``deadline`` passed, or a batch had failures (retried later)."""
        batch: list[QuietFile] = []
        for quiet in self.quiescence.quiet_files(now):
            batch.append(quiet)
            if len(batch) < BATCH:
                continue
            if not await self._publish_quiet_batch(batch):
                return True
            batch = []
            await self._after_batch()
            if self.should_stop() or (deadline is not None and time.monotonic() >= deadline):
                return True
        if batch:
            if not await self._publish_quiet_batch(batch):
                return True
            await self._after_batch()
        return False

    async def _after_batch(self) -> None:
        self.commit()
        if self.after_batch is not None:
            await self.after_batch()
        await asyncio.sleep(0)  # let the watch's events and a stop signal in

    async def _publish_quiet_batch(self, batch: list[QuietFile]) -> bool:
        """One batch: the events decided from the state as it is, published together, the state updated for
        each PubAck (in the batch's order). False when some publishes failed (they stay waiting)."""
        planned: list[tuple[QuietFile, FileEvent, str | None, str]] = []
        claimed: set[str] = set()  # old paths claimed by a move in this batch: one move each
        for quiet in batch:
            plan = self._plan_file(quiet.path, quiet.root, quiet.stat, quiet.origin, claimed)
            if plan is None:
                self.quiescence.done(quiet.path)  # nothing new
            else:
                event, old_path, why = plan
                planned.append((quiet, event, old_path, why))
        # A move is two events, the source's tombstone first: each path's latest event (the one the stream
        # keeps per file) then says what became of it, and the destination's own outcome is the newer one.
        moves = [(self._tombstone(event), f"moved to {event.path}") for _, event, old_path, _ in planned if old_path]
        tombstoned = await self._publish_events(moves)
        sent = iter(tombstoned)
        planned = [p for p in planned if not p[2] or next(sent)]  # a move waits for its tombstone's PubAck
        results = await self._publish_events([(event, why) for _, event, _, why in planned])
        for (quiet, event, old_path, _), ok in zip(planned, results):
            if not ok:
                continue
            st = quiet.stat
            if old_path:
                self.state.delete(old_path)
                self.quiescence.gone.pop(old_path, None)  # claimed by the move: no removal for it
            self.state.put(Entry(quiet.path, quiet.root, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, event.kind))
            self.quiescence.done(quiet.path)
        return all(results) and all(tombstoned)

    @staticmethod
    def _tombstone(moved: FileEvent) -> FileEvent:
        """The source's half of a move: ``removed`` with reason ``moved``, naming where the file went."""
        return FileEvent(kind="removed", path=moved.old_path or "", root=moved.root, size=moved.size,
                         mtime_ns=moved.mtime_ns, inode=moved.inode, origin=moved.origin, reason="moved",
                         new_path=moved.path)

    async def publish_file(self, path: str, root: str, st: os.stat_result, origin: str) -> bool:
        """added / changed / moved for one quiet file; False when the publish failed (retry next tick)."""
        return await self._publish_quiet_batch([QuietFile(path, root, st, origin)])

    def _plan_file(self, path: str, root: str, st: os.stat_result, origin: str,
                   claimed: set[str]) -> tuple[FileEvent, str | None, str] | None:
        """The event for one quiet file (with the old path of a move, and why), or None: nothing new."""
        old = self.state.get(path)
        old_path = None
        reason = None
        if old is None:
            candidate = self.state.path_for_inode(st.st_dev, st.st_ino)
            if candidate and candidate != path and candidate not in claimed and not os.path.lexists(candidate) \
                    and self.state.get(candidate).size == st.st_size:
                old_path = candidate
                claimed.add(candidate)
            kind = "moved" if old_path else "added"
            excluded_at = self.recently_excluded.pop(path, None)
            if kind == "added" and excluded_at is not None and time.time() - excluded_at < RECENTLY_EXCLUDED_S:
                reason = "included"
        elif (old.size, old.mtime_ns, old.inode) == (st.st_size, st.st_mtime_ns, st.st_ino):
            return None
        else:
            kind = "changed"
        event = FileEvent(kind=kind, path=to_text(path), root=to_text(root), size=st.st_size,
                          mtime_ns=st.st_mtime_ns, inode=st.st_ino, old_path=to_text(old_path) if old_path else None,
                          origin=origin, reason=reason)
        return event, old_path, "quiescent" if kind != "moved" else f"same inode as {old_path}"

    async def publish_exclusions(self, now: float) -> None:
        """``removed`` (reason ``excluded``) for each known file the library now excludes."""
        excluded = self.quiescence.excluded
        planned: list[tuple[str, FileEvent, str]] = []
        for path in list(excluded):
            why, origin = excluded[path]
            root = self.roots.root_of(path)
            old = self.state.get(path)
            if old is None or root is None:
                del excluded[path]
                continue
            if root in self.roots.offline:
                continue
            planned.append((path, FileEvent(kind="removed", path=to_text(path), root=to_text(root), size=old.size,
                                            mtime_ns=old.mtime_ns, inode=old.inode, origin=origin, reason="excluded"),
                            f"excluded: {why}"))
        for start in range(0, len(planned), BATCH):
            chunk = planned[start:start + BATCH]
            results = await self._publish_events([(event, why) for _, event, why in chunk])
            for (path, _, _), ok in zip(chunk, results):
                if ok:
                    self.state.delete(path)
                    self.quiescence.gone.pop(path, None)
                    del excluded[path]
                    self.recently_excluded[path] = time.time()
                    self.excluded += 1
            await self._after_batch()
            if not all(results) or self.should_stop():
                break
        if self.recently_excluded:
            self.recently_excluded = {p: t for p, t in self.recently_excluded.items()
                                      if time.time() - t < RECENTLY_EXCLUDED_S}

    async def publish_due_removals(self, now: float) -> None:
        """``removed`` for each path gone for longer than the removal delay, unless the absence means
        something else: an offline root, a file system no longer mounted below the root, or a mass
        deletion that waits for a person's confirmation (see :meth:`_hold_mass_deletions`)."""
        gone = self.quiescence.gone
        due: dict[str, list[tuple[str, Entry, str]]] = {}
        for path in list(gone):
            since, origin = gone[path]
            root = self.roots.root_of(path)
            if root in self.roots.offline or self.roots.offline_reason(root):
                continue  # re-checked here: a root can vanish between the roots phase and now
            old = self.state.get(path)
            if old is None:
                del gone[path]  # claimed by a move meanwhile
                continue
            if os.path.lexists(path):
                del gone[path]  # back (or replaced): look at it again
                self.quiescence.mark_dirty(path, origin)
                continue
            if now - since < self.removal_delay_s:
                continue  # give a move's destination the chance to claim the inode
            mount = missing_mount(path, old.dev, root)
            if mount is not None:
                if mount not in self.missing_mounts:
                    log.warning("MOUNT MISSING under %s: %s held files of device %d that is no longer mounted "
                                "there; publishing no removals for them until it is back", root, mount, old.dev)
                self.missing_mounts[mount] = f"files of device {old.dev} are gone: unmounted?"
                continue
            due.setdefault(root, []).append((path, old, origin))
        self.missing_mounts = {m: r for m, r in self.missing_mounts.items() if not os.path.ismount(m)}
        for root, removals in due.items():
            if await self._hold_mass_deletions(root, len(removals)):
                continue
            for start in range(0, len(removals), BATCH):
                chunk = removals[start:start + BATCH]
                results = await self._publish_events([
                    (FileEvent(kind="removed", path=to_text(path), root=to_text(root), size=old.size,
                               mtime_ns=old.mtime_ns, inode=old.inode, origin=origin), "file is gone")
                    for path, old, origin in chunk])
                for (path, _, _), ok in zip(chunk, results):
                    if ok:
                        self.state.delete(path)
                        gone.pop(path, None)
                await self._after_batch()
                if not all(results) or self.should_stop():
                    return

    async def _hold_mass_deletions(self, root: str, count: int) -> bool:
        """True (hold them) when ``count`` removals would take most of a root at once: a drive replaced by
        another folder, a half-finished sync. They wait until a person confirms with
        ``trackprint confirm-deletions ROOT`` (a key in the status KV bucket); status shows the hold."""
        known = len(self.state.under(root))
        if count < MASS_DELETION_MIN or count <= MASS_DELETION_SHARE * known:
            self.held_deletions.pop(root, None)
            return False
        if await self._confirmed(root):
            log.warning("%s: %d removals confirmed by a person; publishing them", root, count)
            self.held_deletions.pop(root, None)
            return False
        if root not in self.held_deletions:
            log.warning("MASS DELETION HELD under %s: %d of %d known files are gone at once; no removals are "
                        "published until confirmed with `trackprint confirm-deletions %s`", root, count, known, root)
        self.held_deletions[root] = {"count": count, "known": known}
        return True

    async def _confirmed(self, root: str) -> bool:
        try:
            kv = await bus.status_kv(self.js)
            entry = await kv.get(bus.deletion_confirmation_key(root))
        except Exception:  # no key: not confirmed
            return False
        try:
            confirmed_at = float(entry.value)
        except ValueError:
            return False
        return confirmed_at >= self.held_since.setdefault(root, time.time()) - 3600

    def commit(self) -> None:
        """Write the state changes of this tick: all of them follow a PubAck."""
        failing = self.state.commit_error
        if not self.state.commit():
            if not failing:
                log.error("watcher state %s: cannot write (%s); keeping %d changes in memory and retrying every "
                          "tick (free disk space)", self.state.path, self.state.commit_error, len(self.state.unsaved))
        elif failing:
            log.warning("watcher state written again after: %s", failing)

    async def _publish_events(self, events: list[tuple[FileEvent, str]]) -> list[bool]:
        """Publish the events together (``bus.publish_many``: a window of PubAcks outstanding); whether each
        was acknowledged. The caller never puts two events of one path in the same call."""
        encoded: list[bytes | None] = []
        for event, _ in events:
            try:
                encoded.append(encode(event))
            except (UnicodeError, ValueError, TypeError) as exc:  # one file's problem, never the watcher's
                log.error("%s: publish %s: cannot encode the event (%s: %s); this file is skipped", event.path,
                          event.kind, type(exc).__name__, exc)
                encoded.append(None)
        sendable = [(bus.event_subject(event.path), payload, event.msg_id())
                    for (event, _), payload in zip(events, encoded) if payload is not None]
        acks = iter(await bus.publish_many(self.js, sendable, window=self.window) if sendable else [])
        ok: list[bool] = []
        failures: list[tuple[str, Exception]] = []
        for (event, reason), payload in zip(events, encoded):
            if payload is None:
                ok.append(False)
                continue
            ack = next(acks)
            if isinstance(ack, Exception):
                failures.append((event.path, ack))
                ok.append(False)
                continue
            ok.append(True)
            if ack.duplicate:
                self.duplicates += 1
            if event.reason != "moved":  # a move's tombstone is the other half of the move counted as moved
                self.published += 1
                self.published_by_kind[event.kind] = self.published_by_kind.get(event.kind, 0) + 1
                count_published(event.kind)
            log.info("%s: published %s (%s; origin %s; seq %d%s)", event.path, event.kind, reason, event.origin,
                     ack.seq, ", duplicate" if ack.duplicate else "")
        if failures:
            path, exc = failures[0]
            more = f" (and {len(failures) - 1} more publishes failed like it)" if len(failures) > 1 else ""
            log.error("%s: publish: FAILED (%s)%s; will retry", path, exc, more)
        return ok
