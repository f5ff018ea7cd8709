"""Phase "publish": quiet files and gone paths become FileEvents on the events stream.

- A quiet file at a path the state does not know is ``moved`` when its
  (dev, inode) is in the state under a path that no longer exists and the size
  matches, else ``added``; a known path with another size/mtime/inode is
  ``changed``; an unchanged one publishes nothing.
- A gone path is ``removed`` only after one more quiet period: a move's
  destination usually shows up a moment after its source disappears, and it
  must get the chance to claim the inode first (one ``moved``, not
  ``removed`` + ``added``). Never for an offline root.
- The state (what was last published) changes only after the PubAck, so a
  failed publish leaves everything as it was and is retried on the next tick;
  a repeated publish is deduplicated by the stream (``FileEvent.msg_id``).
"""

from __future__ import annotations

import logging
import os

from trackprint import bus
from trackprint.contracts import FileEvent, encode
from trackprint.paths import to_text
from trackprint.watcher.health import count_published
from trackprint.watcher.quiescence import Quiescence
from trackprint.watcher.roots import LibraryRoots
from trackprint.watcher.state import Entry, WatcherState

log = logging.getLogger("trackprint.watcher")


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

    async def publish_quiet_files(self, now: float) -> None:
        for quiet in self.quiescence.quiet_files(now):
            if await self.publish_file(quiet.path, quiet.root, quiet.stat, quiet.origin):
                self.quiescence.done(quiet.path)

    async def publish_file(self, path: str, root: str, st: os.stat_result, origin: str) -> bool:
        """added / changed / moved for one quiet file; False when the publish failed (retry next tick)."""
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
        event = FileEvent(kind=kind, path=to_text(path), root=to_text(root), size=st.st_size,
                          mtime_ns=st.st_mtime_ns, inode=st.st_ino, old_path=to_text(old_path) if old_path else None,
                          origin=origin)
        if not await self._publish(event, "quiescent" if kind != "moved" else f"same inode as {old_path}"):
            return False
        if old_path:
            self.state.delete(old_path)
            self.quiescence.gone.pop(old_path, None)  # claimed by the move: no removal for it
        self.state.put(Entry(path, root, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, kind))
        return True

    async def publish_due_removals(self, now: float) -> None:
        """``removed`` for each path gone for longer than the removal delay (never under an offline root)."""
        gone = self.quiescence.gone
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
            event = FileEvent(kind="removed", path=to_text(path), root=to_text(root), size=old.size,
                              mtime_ns=old.mtime_ns, inode=old.inode, origin=origin)
            if await self._publish(event, "file is gone"):
                self.state.delete(path)
                del gone[path]

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
