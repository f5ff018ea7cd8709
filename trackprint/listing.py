"""How ``query``, ``similar`` and ``playlist`` print tracks: a table, JSON lines, paths, or an M3U8 file.

One set of output flags (:func:`add_output_arguments`) and one printer (:func:`emit`)
for the three commands; M3U8 itself is :mod:`trackprint.playlists`.
"""

from __future__ import annotations

import json
import sys


def add_output_arguments(parser) -> None:
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object per line")
    out.add_argument("--paths", action="store_true", help="one path per line")
    out.add_argument("--m3u8", metavar="FILE", default=None,
                     help="write an M3U8 playlist to FILE (paths relative to --base)")
    parser.add_argument("--base", metavar="DIR", default=None,
                        help="with --m3u8: write paths relative to DIR (default: FILE's folder; Navidrome resolves "
                             "them from the playlist's folder, MPD from its music directory)")


def cache_dir(args):
    from trackprint.config import data_dir

    return data_dir(getattr(args, "data_dir", None)) / "cache"


def _short(text, width: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def emit(tracks: list[dict], args, *, distances: list[float] | None = None, heading: str | None = None,
         what: str) -> int:
    """Print or write ``tracks`` as the output flags say. Returns the exit status."""
    if getattr(args, "base", None) and not getattr(args, "m3u8", None):
        print(f"{what}: --base only applies to --m3u8", file=sys.stderr)
        return 2
    if args.m3u8:
        from trackprint.playlists import write_m3u8

        path = write_m3u8(args.m3u8, tracks, args.base)
        print(f"{what}: wrote {len(tracks)} tracks to {path}", file=sys.stderr)
        return 0
    if args.json:
        for i, track in enumerate(tracks):
            item = dict(track)
            item.pop("id", None)
            if distances is not None:
                item = {"distance": round(distances[i], 4), **item}
            print(json.dumps(item, ensure_ascii=False))
        return 0
    if args.paths:
        for track in tracks:
            print(track["path"])
        return 0
    if heading:
        print(heading)
    if not tracks:
        return 0
    head = (f"{'dist':>6}  " if distances is not None else "") + \
        f"{'BPM':>6} {'LUFS':>6} {'year':>4}  {'artist - title':<40} {'album':<24} path"
    print(head)
    for i, t in enumerate(tracks):
        name = f"{t.get('artist') or '?'} - {t.get('title') or '?'}" if (t.get("artist") or t.get("title")) else ""
        line = (f"{distances[i]:6.3f}  " if distances is not None else "") + \
            f"{t['tempo_bpm']:6.1f} {t['lufs']:6.1f} {t.get('year') or '':>4}  {_short(name, 40):<40} " \
            f"{_short(t.get('album'), 24):<24} {t['path']}"
        print(line)
    return 0
