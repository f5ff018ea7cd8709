"""The watcher's memory of what it last published: a small SQLite file.

One row per file: path, root, size, mtime_ns, inode, dev, the kind last
published. Kept in memory too (a dict, an inode index and a folder index) so a
reconcile of a large library is a dict comparison, not a query per file, and
"the known files below this folder" (a directory event) costs that folder's
files, not the whole state.

Written in batches (:meth:`WatcherState.commit`, one transaction and one
``executemany`` per batch): the publisher commits after every window of
PubAcks, so a stop or a crash loses at most the batch in flight.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from dataclasses import dataclass

from trackprint.paths import to_fs, to_text


def default_state_path() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "trackprint", "watcher.sqlite")


@dataclass(slots=True)
class Entry:
    path: str
    root: str
    size: int
    mtime_ns: int
    inode: int
    dev: int
    kind: str


class WatcherState:
    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, root TEXT NOT NULL, size INTEGER NOT NULL,"
            " mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, dev INTEGER NOT NULL, kind TEXT NOT NULL)"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS roots (root TEXT PRIMARY KEY, dev INTEGER NOT NULL)")
        self.db.commit()
        self.files: dict[str, Entry] = {}
        self.unsaved: dict[str, Entry | None] = {}  # changed since the last commit (None: deleted)
        self.commit_error: str | None = None
        self.by_inode: dict[tuple[int, int], str] = {}
        self._files_in: dict[str, set[str]] = {}  # folder -> the known files directly in it
        self._subdirs: dict[str, set[str]] = {}  # folder -> its sub-folders that hold known files (at any depth)
        shared: dict = {}  # one object per distinct root, device and kind (200,000 rows, a handful of values)
        for path, root, size, mtime_ns, inode, dev, kind in self.db.execute(
                "SELECT path, root, size, mtime_ns, inode, dev, kind FROM files"):
            root = shared.get(root) or shared.setdefault(root, sys.intern(to_fs(root)))
            e = Entry(to_fs(path), root, size, mtime_ns, inode, shared.setdefault(("dev", dev), dev),
                      shared.setdefault(kind, kind))
            self.files[e.path] = e
            self.by_inode[(e.dev, e.inode)] = e.path
            self._index(e.path)
        self.root_devs: dict[str, int] = {to_fs(root): dev
                                          for root, dev in self.db.execute("SELECT root, dev FROM roots")}

    def get(self, path: str) -> Entry | None:
        return self.files.get(path)

    def under(self, folder: str) -> list[Entry]:
        """The known files below ``folder`` (at any depth), from the folder index: the cost of the answer."""
        folder = folder.rstrip(os.sep) or os.sep
        out = []
        stack = [folder]
        while stack:
            d = stack.pop()
            out.extend(self.files[p] for p in self._files_in.get(d, ()))
            stack.extend(self._subdirs.get(d, ()))
        return out

    def _known_folder(self, d: str) -> bool:
        return d in self._files_in or d in self._subdirs

    def _index(self, path: str) -> None:
        d = os.path.dirname(path)
        fresh = not self._known_folder(d)
        self._files_in.setdefault(d, set()).add(path)
        while fresh:  # link the new folder into its parent, up to the first folder already known
            parent = os.path.dirname(d)
            if parent == d:
                break
            fresh = not self._known_folder(parent)
            self._subdirs.setdefault(parent, set()).add(d)
            d = parent

    def _unindex(self, path: str) -> None:
        d = os.path.dirname(path)
        files = self._files_in.get(d)
        if files is None:
            return
        files.discard(path)
        if files:
            return
        del self._files_in[d]
        while not self._known_folder(d):  # an emptied folder leaves its parent, and so on up
            parent = os.path.dirname(d)
            if parent == d:
                break
            subdirs = self._subdirs.get(parent)
            if subdirs is None:
                break
            subdirs.discard(d)
            if subdirs:
                break
            del self._subdirs[parent]
            if parent in self._files_in:
                break
            d = parent

    def path_for_inode(self, dev: int, inode: int) -> str | None:
        return self.by_inode.get((dev, inode))

    def put(self, e: Entry) -> None:
        old = self.files.get(e.path)
        if old is not None and self.by_inode.get((old.dev, old.inode)) == e.path:
            del self.by_inode[(old.dev, old.inode)]
        if old is None:
            self._index(e.path)
        self.files[e.path] = e
        self.by_inode[(e.dev, e.inode)] = e.path
        self.unsaved[e.path] = e

    def delete(self, path: str) -> None:
        old = self.files.pop(path, None)
        if old is not None:
            self._unindex(path)
            if self.by_inode.get((old.dev, old.inode)) == path:
                del self.by_inode[(old.dev, old.inode)]
        self.unsaved[path] = None

    def set_root_dev(self, root: str, dev: int) -> None:
        self.root_devs[root] = dev
        try:
            self.db.execute("INSERT OR REPLACE INTO roots (root, dev) VALUES (?, ?)", (to_text(root), dev))
            self.db.commit()
        except sqlite3.Error:  # remembered in memory; written with a later root check
            self.db.rollback()

    def commit(self) -> bool:
        """Write what changed since the last commit. False when the disk refuses it (full, read-only):
        the changes stay in memory and are written by a later commit, so a full disk costs at most
        re-publishing (deduplicated by the stream), never the watcher."""
        if not self.unsaved:
            return True
        try:
            self.db.executemany("DELETE FROM files WHERE path = ?",
                                [(to_text(path),) for path, e in self.unsaved.items() if e is None])
            self.db.executemany(
                "INSERT OR REPLACE INTO files (path, root, size, mtime_ns, inode, dev, kind) VALUES (?,?,?,?,?,?,?)",
                [(to_text(e.path), to_text(e.root), e.size, e.mtime_ns, e.inode, e.dev, e.kind)
                 for e in self.unsaved.values() if e is not None])
            self.db.commit()
        except sqlite3.Error as exc:
            try:
                self.db.rollback()
            except sqlite3.Error:
                pass
            self.commit_error = f"{type(exc).__name__}: {exc}"
            return False
        self.unsaved.clear()
        self.commit_error = None
        return True

    def close(self) -> None:
        self.commit()
        self.db.close()
