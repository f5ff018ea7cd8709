"""beets plugin: trackprint's 25 fingerprint values as flexible attributes, and ``beet tpsimilar``.

Install with ``pip install 'trackprint[beets]'`` (or put this folder on beets'
``pluginpath``) and enable it in beets' config::

    plugins: trackprint
    trackprint:
        db: sqlite:////home/me/.local/share/trackprint/trackprint.db   # default: trackprint's own setting
        auto: no      # yes: copy the values on import when trackprint already has the file

Commands:

- ``beet tpimport [QUERY]``: for every item (matching QUERY), by path, copy the
  values trackprint stored into ``tp_<name>`` flexible attributes (``tp_tempo_bpm``,
  ``tp_lufs``, ... every name of ``trackprint.fingerprint.DIMENSIONS``) and
  ``tp_version`` (the fingerprint version). The fields are declared FLOAT, so
  ranges work: ``beet ls tp_tempo_bpm:120..130 tp_lufs:-12..``.
- ``beet tpsimilar QUERY [-k N] [-a]``: the tracks that sound most like the
  items matching QUERY (several items: the root mean square of the distances to
  each), one per line as ``DISTANCE  ITEM`` (beets' item format; a track
  trackprint knows but beets does not is printed as its path). ``-a`` leaves
  out the seeds' albums.

The database is the one ``trackprint`` commands use (``trackprint config``
shows it) unless ``trackprint: db:`` names another.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from beets import ui
from beets.dbcore import types
from beets.plugins import BeetsPlugin


def _import_trackprint() -> None:
    """Import the trackprint package, not this file: with ``pluginpath`` naming this folder, beets also puts
    it on ``sys.path``, where this module's own name, ``trackprint``, would shadow the package."""
    here = os.path.dirname(os.path.abspath(__file__))
    shadow = sys.modules.get("trackprint")
    if shadow is not None and not hasattr(shadow, "__path__"):
        del sys.modules["trackprint"]
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    try:
        importlib.import_module("trackprint.fingerprint")
    finally:
        sys.path[:] = saved


_import_trackprint()
from trackprint.fingerprint import DIMENSIONS  # noqa: E402

FIELDS = {name: f"tp_{name}" for name in DIMENSIONS}


def _real(path) -> str:
    return os.path.realpath(os.fsdecode(path))


class TrackprintPlugin(BeetsPlugin):
    item_types = {**{field: types.FLOAT for field in FIELDS.values()}, "tp_version": types.INTEGER}

    def __init__(self, name: str | None = None):
        super().__init__(name or "trackprint")
        self.config.add({"db": None, "data_dir": None, "auto": False})
        if self.config["auto"].get(bool):
            self.register_listener("item_imported", self._imported_item)
            self.register_listener("album_imported", self._imported_album)

    # ---------------------------------------------------------------------- trackprint side
    def db_url(self) -> str:
        from trackprint.config import resolve_db

        args = argparse.Namespace(db=self.config["db"].get(), data_dir=self.config["data_dir"].get())
        return resolve_db(args)

    def fingerprints(self) -> dict[str, dict]:
        """Every fingerprinted track trackprint has, by real path."""
        from trackprint.query import find

        return {_real(row["path"]): row for row in find(self.db_url(), "")}

    @staticmethod
    def apply(item, row: dict) -> bool:
        """Copy ``row``'s values into ``item``; True when anything changed."""
        changed = False
        for name, field in FIELDS.items():
            value = float(row[name])
            try:
                same = field in item and abs(float(item[field]) - value) <= 1e-9 * max(1.0, abs(value))
            except (TypeError, ValueError):
                same = False
            if not same:
                item[field] = value
                changed = True
        try:
            same_version = "tp_version" in item and int(item["tp_version"]) == int(row["fingerprint_version"])
        except (TypeError, ValueError):
            same_version = False
        if not same_version:
            item["tp_version"] = int(row["fingerprint_version"])
            changed = True
        return changed

    # ---------------------------------------------------------------------- commands
    def commands(self):
        tpimport = ui.Subcommand("tpimport", help="copy trackprint's fingerprint values into tp_* fields")
        tpimport.func = self._tpimport
        tpsimilar = ui.Subcommand("tpsimilar", help="tracks that sound like the items of QUERY (trackprint)")
        tpsimilar.parser.add_option("-k", "--count", type="int", default=10, help="how many (default 10)")
        tpsimilar.parser.add_option("-a", "--exclude-seed-albums", action="store_true", default=False,
                                    help="leave out the tracks of the seeds' albums")
        tpsimilar.func = self._tpsimilar
        return [tpimport, tpsimilar]

    def _tpimport(self, lib, opts, args) -> None:
        try:
            known = self.fingerprints()
        except Exception as exc:
            raise ui.UserError(f"trackprint: cannot read {self.db_url()}: {exc}") from None
        updated = unchanged = missing = 0
        with lib.transaction():
            for item in lib.items(args):
                row = known.get(_real(item.path))
                if row is None:
                    missing += 1
                elif self.apply(item, row):
                    item.store()
                    updated += 1
                else:
                    unchanged += 1
        ui.print_(f"trackprint: {updated} items updated, {unchanged} unchanged, {missing} not fingerprinted (yet)")

    def _tpsimilar(self, lib, opts, args) -> None:
        from trackprint.search import NothingToCompare, similar_to

        seeds = [os.fsdecode(item.path) for item in lib.items(args)]
        if not seeds:
            raise ui.UserError("trackprint: no item matches the query")
        if opts.count < 1:
            raise ui.UserError("trackprint: -k must be 1 or more")
        try:
            found = similar_to(self.db_url(), seeds, opts.count, exclude_seed_albums=opts.exclude_seed_albums)
        except NothingToCompare as exc:
            raise ui.UserError(f"trackprint: {exc}") from None
        except Exception as exc:
            raise ui.UserError(f"trackprint: {exc}") from None
        by_path = {_real(item.path): item for item in lib.items()}
        for match in found.matches:
            item = by_path.get(_real(match.path))
            ui.print_(f"{match.distance:6.3f}  {format(item) if item is not None else match.path}")

    # ---------------------------------------------------------------------- on import
    def _imported_item(self, lib, item) -> None:
        self._copy([item])

    def _imported_album(self, lib, album) -> None:
        self._copy(list(album.items()))

    def _copy(self, items) -> None:
        try:
            known = self.fingerprints()
        except Exception as exc:  # trackprint not set up: importing goes on
            self._log.warning("trackprint: cannot read the database: {}", exc)
            return
        for item in items:
            row = known.get(_real(item.path))
            if row is not None and self.apply(item, row):
                item.store()
