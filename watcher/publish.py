"""Phase "publish": quiet files and gone paths become FileEvents on the events stream.

- A quiet file at a path the state does not know is ``moved`` when its
  (dev, inode) is in the state under a path that no longer exists and the size
  matches, else ``added``; a known path with another size/mtime/inode is
  ``changed``; an unchanged one publishes nothing.
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
"""

from __future__ import annotations

import logging
import os
import time

from trackprint import bus
from trackprint.contracts import FileEvent, encode
from trackprint.paths import to_text
from trackprint.watcher.health import count_published
from trackprint.watcher.quiescence import Quiescence
from trackprint.watcher.roots import LibraryRoots
from trackprint.watcher.state import Entry, WatcherState

log = logging.getLogger("trackprint.watcher")

MASS_DELETION_MIN = 10  # fewer removals at once are never held
MASS_DELETION_SHARE = 0.5  # more than this share of a root's known files gone at once is held
RECENTLY_EXCLUDED_S = 600.0  # longer than the events stream's duplicate window


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

    async def publish_quiet_files(self, now: float) -> None:
        for quiet in self.quiescence.quiet_files(now):
            if await self.publish_file(quiet.path, quiet.root, quiet.stat, quiet.origin):
                self.quiescence.done(quiet.path)

    async def publish_file(self, path: str, root: str, st: os.stat_result, origin: str) -> bool:
        """added / changed / moved for one quiet file; False when the publish failed (retry next tick)."""
        old = self.state.get(path)
        old_path = None
        reason = None
        if old is None:
            candidate = self.state.path_for_inode(st.st_dev, st.st_ino)
            if candidate and candidate != path and not os.path.lexists(candidate) and \
                    self.state.get(candidate).size == st.st_size:
                old_path = candidate
            kind = "moved" if old_path else "added"
            excluded_at = self.recently_excluded.pop(path, None)
            if kind == "added" and excluded_at is not None and time.time() - excluded_at < RECENTLY_EXCLUDED_S:
                reason = "included"
        elif (old.size, old.mtime_ns, old.inode) == (st.st_size, st.st_mtime_ns, st.st_ino):
            return True  # nothing new
        else:
            kind = "changed"
        event = FileEvent(kind=kind, path=to_text(path), root=to_text(root), size=st.st_size,
                          mtime_ns=st.st_mtime_ns, inode=st.st_ino, old_path=to_text(old_path) if old_path else None,
                          origin=origin, reason=reason)
        if not await self._publish(event, "quiescent" if kind != "moved" else f"same inode as {old_path}"):
            return False
        if old_path:
            self.state.delete(old_path)
            self.quiescence.gone.pop(old_path, None)  # claimed by the move: no removal for it
        self.state.put(Entry(path, root, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, kind))
        return True

    async def publish_exclusions(self, now: float) -> None:
        """``removed`` (reason ``excluded``) for each known file the library now excludes."""
        excluded = self.quiescence.excluded
        for path in list(excluded):
            why, origin = excluded[path]
            root = self.roots.root_of(path)
            old = self.state.get(path)
            if old is None or root is None:
                del excluded[path]
                continue
            if root in self.roots.offline:
                continue
            event = FileEvent(kind="removed", path=to_text(path), root=to_text(root), size=old.size,
                              mtime_ns=old.mtime_ns, inode=old.inode, origin=origin, reason="excluded")
            if await self._publish(event, f"excluded: {why}"):
                self.state.delete(path)
                self.quiescence.gone.pop(path, None)
                del excluded[path]
                self.recently_excluded[path] = time.time()
                self.excluded += 1
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
            for path, old, origin in removals:
                event = FileEvent(kind="removed", path=to_text(path), root=to_text(root), size=old.size,
                                  mtime_ns=old.mtime_ns, inode=old.inode, origin=origin)
                if await self._publish(event, "file is gone"):
                    self.state.delete(path)
                    del gone[path]

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

    async def _publish(self, event: FileEvent, reason: str) -> bool:
        try:
            payload = encode(event)
        except (UnicodeError, ValueError, TypeError) as exc:  # one file's problem, never the watcher's
            log.error("%s: publish %s: cannot encode the event (%s: %s); this file is skipped", event.path,
                      event.kind, type(exc).__name__, exc)
            return False
        try:
            ack = await bus.publish(self.js, bus.event_subject(event.kind), payload, event.msg_id())
        except bus.BusError as exc:
            log.error("%s: publish %s: FAILED (%s); will retry", event.path, event.kind, exc)
            return False
        self.published += 1
        self.published_by_kind[event.kind] = self.published_by_kind.get(event.kind, 0) + 1
        count_published(event.kind)
        log.info("%s: published %s (%s; origin %s; seq %d%s)", event.path, event.kind, reason, event.origin,
                 ack.seq, ", duplicate" if ack.duplicate else "")
        return True
