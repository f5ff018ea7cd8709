"""A file's tags (artist, album, title, numbers, genre, year, duration, MusicBrainz ids) with mutagen.

``read_tags(path)`` never raises: a file mutagen cannot open, a missing tag or a
malformed value is simply a None field. Formats (mutagen's "easy" interfaces, so
one key set covers them all):

| field | FLAC / Ogg Vorbis / Opus (Vorbis comments) | MP3 (ID3v2) | M4A (MP4 atoms) |
|---|---|---|---|
| artist | ARTIST | TPE1 | ``©ART`` |
| album_artist | ALBUMARTIST | TPE2 | aART |
| album | ALBUM | TALB | ``©alb`` |
| title | TITLE | TIT2 | ``©nam`` |
| track_number / disc_number | TRACKNUMBER / DISCNUMBER ("3" or "3/12") | TRCK / TPOS | trkn / disk |
| genre | GENRE | TCON | ``©gen`` |
| year | DATE (first 4 digits) | TDRC | ``©day`` |
| mb_recording_id | MUSICBRAINZ_TRACKID | UFID:http://musicbrainz.org | MusicBrainz Track Id |
| mb_release_id | MUSICBRAINZ_ALBUMID | TXXX:MusicBrainz Album Id | MusicBrainz Album Id |
| mb_artist_id | MUSICBRAINZ_ARTISTID | TXXX:MusicBrainz Artist Id | MusicBrainz Artist Id |

``duration_s`` is the stream length mutagen reads from the container. Several
values in one tag (two artists) are joined with ``"; "``. Text is stripped;
empty text is None.
"""

from __future__ import annotations

import functools
import logging
import os
import re

from trackprint.contracts import Tags

log = logging.getLogger("trackprint.tags")

# Tags field -> the key of mutagen's easy interfaces (EasyID3, EasyMP4, Vorbis comments)
TEXT_KEYS = {
    "artist": "artist",
    "album_artist": "albumartist",
    "album": "album",
    "title": "title",
    "genre": "genre",
    "mb_recording_id": "musicbrainz_trackid",
    "mb_release_id": "musicbrainz_albumid",
    "mb_artist_id": "musicbrainz_artistid",
}
MAX_TEXT = 1024  # a tag longer than this is cut (a broken tagger writing a whole file into TITLE)
_NUMBER = re.compile(r"\s*(\d+)")
_YEAR = re.compile(r"\s*(\d{4})")


def _text(values) -> str | None:
    if values is None:
        return None
    if isinstance(values, (str, bytes)):
        values = [values]
    parts = []
    for value in values:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        value = str(value).replace("\x00", "").strip()
        if value:
            parts.append(value)
    return "; ".join(parts)[:MAX_TEXT] or None


def _number(values, pattern=_NUMBER, limit: int = 100_000) -> int | None:
    """The leading whole number of the first value ("3/12" -> 3, "2001-05-01" -> 2001 with the year pattern)."""
    text = _text(values)
    if not text:
        return None
    match = pattern.match(text)
    if not match:
        return None
    value = int(match.group(1))
    return value if 0 < value < limit else None


def _get(tags, key):
    try:
        return tags.get(key) if tags is not None else None
    except Exception:  # an easy interface that cannot convert one frame: that field is empty
        return None


@functools.cache
def _kinds_by_container() -> dict[str, list]:
    """mutagen's file types for each container found by content (``pyengine.identity.detect_format``).

    ``mutagen.File`` scores two dozen file types on every call, which cost twice the parsing
    itself (0.19 ms against 0.08 ms per short FLAC); when the content already says which
    container it is, only its types are tried. Built once (the imports are mutagen's own).
    """
    from mutagen.aac import AAC
    from mutagen.aiff import AIFF
    from mutagen.easymp4 import EasyMP4
    from mutagen.flac import FLAC
    from mutagen.monkeysaudio import MonkeysAudio
    from mutagen.mp3 import EasyMP3
    from mutagen.oggflac import OggFLAC
    from mutagen.oggopus import OggOpus
    from mutagen.oggvorbis import OggVorbis
    from mutagen.wave import WAVE
    from mutagen.wavpack import WavPack

    return {"flac": [FLAC], "mp4": [EasyMP4], "mp3": [EasyMP3], "ogg": [OggVorbis, OggOpus, OggFLAC],
            "wav": [WAVE], "aiff": [AIFF], "wavpack": [WavPack], "ape": [MonkeysAudio], "aac": [AAC]}


def _open(path: str, container: str | None):
    """mutagen's easy file object of ``path``, or None; tries the hinted types first, then all of them
    (a file whose hinted type cannot read it gets mutagen's own choice, as without a hint)."""
    import mutagen

    kinds = _kinds_by_container().get(container) if container else None
    if kinds is not None:
        try:
            audio = mutagen.File(path, easy=True, options=kinds)
        except Exception:
            audio = None
        if audio is not None:
            return audio
    return mutagen.File(path, easy=True)


def read_tags(path: str | bytes | os.PathLike, container: str | None = None) -> Tags:
    """The tags of ``path``; every field None when the file has none or mutagen cannot read it.

    ``container``: the format found by content (the prefix of the file's content id), a hint that
    only saves time; the tags read are the same with or without it.
    """
    try:
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        audio = _open(path, container)
    except Exception as exc:  # mutagen.MutagenError, OSError, and whatever a broken header raises
        log.debug("%s: no tags read: %s", path, exc)
        return Tags()
    if audio is None:
        return Tags()
    try:
        tags = audio.tags
    except Exception:
        tags = None
    values: dict = {}
    for field, key in TEXT_KEYS.items():
        try:
            values[field] = _text(_get(tags, key))
        except Exception:
            values[field] = None
    try:
        values["track_number"] = _number(_get(tags, "tracknumber"))
        values["disc_number"] = _number(_get(tags, "discnumber"))
        values["year"] = _number(_get(tags, "date") or _get(tags, "originaldate") or _get(tags, "year"), _YEAR, 10_000)
    except Exception:
        pass
    try:
        length = float(audio.info.length)
        values["duration_s"] = round(length, 3) if length > 0 and length == length and length < 1e7 else None
    except Exception:
        values["duration_s"] = None
    return Tags(**{k: v for k, v in values.items() if v is not None})


def as_dict(tags: Tags | None) -> dict:
    """Every Tags field by name (None when absent), the columns of the ``track_tags`` table."""
    return {name: getattr(tags, name, None) if tags is not None else None for name in Tags.__struct_fields__}
