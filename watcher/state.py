"""The watcher's memory of what it last published: a small SQLite file.

One row per file: path, root, size, mtime_ns, inode, dev, the kind last
published. Kept in memory too (a dict and an inode index) so a reconcile of a
large library is a dict comparison, not a query per file.
"""

from __future__ import annotations

import os
import sqlite3

from trackprint.paths import to_fs, to_text
from dataclasses import dataclass


def default_state_path() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "trackprint", "watcher.sqlite")


@dataclass
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
        for path, root, *rest in self.db.execute("SELECT path, root, size, mtime_ns, inode, dev, kind FROM files"):
            e = Entry(to_fs(path), to_fs(root), *rest)
            self.files[e.path] = e
            self.by_inode[(e.dev, e.inode)] = e.path
        self.root_devs: dict[str, int] = {to_fs(root): dev
                                          for root, dev in self.db.execute("SELECT root, dev FROM roots")}

    def get(self, path: str) -> Entry | None:
        return self.files.get(path)

    def under(self, root: str) -> list[Entry]:
        prefix = root.rstrip(os.sep) + os.sep
        return [e for e in self.files.values() if e.path.startswith(prefix)]

    def path_for_inode(self, dev: int, inode: int) -> str | None:
        return self.by_inode.get((dev, inode))

    def put(self, e: Entry) -> None:
        old = self.files.get(e.path)
        if old is not None and self.by_inode.get((old.dev, old.inode)) == e.path:
            del self.by_inode[(old.dev, old.inode)]
        self.files[e.path] = e
        self.by_inode[(e.dev, e.inode)] = e.path
        self.unsaved[e.path] = e

    def delete(self, path: str) -> None:
        old = self.files.pop(path, None)
        if old is not None and self.by_inode.get((old.dev, old.inode)) == path:
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
            for path, e in self.unsaved.items():
                if e is None:
                    self.db.execute("DELETE FROM files WHERE path = ?", (to_text(path),))
                else:
                    self.db.execute(
                        "INSERT OR REPLACE INTO files (path, root, size, mtime_ns, inode, dev, kind) "
                        "VALUES (?,?,?,?,?,?,?)",
                        (to_text(e.path), to_text(e.root), e.size, e.mtime_ns, e.inode, e.dev, e.kind))
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
