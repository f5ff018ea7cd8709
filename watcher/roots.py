"""Phase "roots": which library roots are online, checked at every tick.

A root is *offline* when it is missing, not a directory, unreadable, on
another device than when first seen (an unmounted drive leaves its empty
mount point behind), or empty while the state knows files under it. Nothing
is published for an offline root, above all no ``removed`` events: an
unmounted drive must never read as a deleted library. The device a root was
first seen on is kept in the state, so the check survives restarts.
"""

from __future__ import annotations

import logging
import os
import stat as statmod
from dataclasses import dataclass, field

from trackprint.watcher.state import WatcherState

log = logging.getLogger("trackprint.watcher")


@dataclass
class RootChanges:
    """What one refresh found: roots that just went offline, and roots that just came back."""

    went_offline: list[str] = field(default_factory=list)
    came_back: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # another directory now at the root's path (mv lib old; mv new lib)


class LibraryRoots:
    def __init__(self, roots: list[str], state: WatcherState):
        self.paths = [os.path.abspath(r) for r in roots]
        self.state = state
        self.offline: set[str] = set()
        self.offline_reasons: dict[str, str] = {}  # what the health report shows, per offline root
        self.identity: dict[str, tuple[int, int]] = {}  # root -> (dev, inode) of the directory being watched

    def root_of(self, path: str) -> str | None:
        for root in self.paths:
            if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
                return root
        return None

    def offline_reason(self, root: str) -> str | None:
        """None when the root is online, else why it is offline. Records the root's device when first seen."""
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

    def refresh(self) -> RootChanges:
        """Check every root; log (loudly) and return those whose online state changed."""
        changes = RootChanges()
        for root in self.paths:
            reason = self.offline_reason(root)
            if reason:
                self.offline_reasons[root] = reason
            else:
                self.offline_reasons.pop(root, None)
            if reason and root not in self.offline:
                self.offline.add(root)
                log.warning("LIBRARY ROOT OFFLINE: %s: %s; publishing nothing for it (no removals) until it is back",
                            root, reason)
                changes.went_offline.append(root)
            elif not reason and root in self.offline:
                self.offline.discard(root)
                log.warning("library root back online: %s; reconciling it", root)
                changes.came_back.append(root)
            if not reason:
                try:
                    st = os.stat(root)
                except OSError:
                    continue
                seen = self.identity.get(root)
                self.identity[root] = (st.st_dev, st.st_ino)
                if seen is not None and seen != (st.st_dev, st.st_ino) and root not in changes.came_back:
                    log.warning("library root %s is another directory than before (replaced or renamed); "
                                "watching the new one and reconciling it", root)
                    changes.replaced.append(root)
        return changes

    def mark_offline(self, root: str, reason: str, skipped: str) -> None:
        """A scan found the root offline: say so once and skip it (the next refresh re-checks it)."""
        if root not in self.offline:
            self.offline.add(root)
            log.warning("LIBRARY ROOT OFFLINE: %s: %s; skipping its %s", root, reason, skipped)
