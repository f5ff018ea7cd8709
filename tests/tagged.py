"""A real tagged library for tests: audio from tests/audio.py, tags written by mutagen (FLAC, MP3, M4A, Ogg).

:func:`tag_file` writes tags through mutagen's easy interfaces (Vorbis comments,
EasyID3, EasyMP4), the way taggers do. :func:`write_tagged_library` writes a small
library of distinct tracks (artists, albums, genres, years, MusicBrainz ids) whose
sounds differ in tempo, loudness and pitch, and returns what it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.audio import SR, click_track, noisy_tone, write_audio

EASY_KEYS = {
    "artist": "artist", "album_artist": "albumartist", "album": "album", "title": "title", "genre": "genre",
    "year": "date", "track_number": "tracknumber", "disc_number": "discnumber",
    "mb_recording_id": "musicbrainz_trackid", "mb_release_id": "musicbrainz_albumid",
    "mb_artist_id": "musicbrainz_artistid",
}


def tag_file(path, **tags) -> None:
    """Write ``tags`` (Tags field names; ints allowed) into ``path`` with mutagen, replacing those keys."""
    import mutagen
    from mutagen.easyid3 import EasyID3
    from mutagen.id3 import ID3NoHeaderError

    path = Path(path)
    if path.suffix.lower() == ".mp3":
        try:
            audio = EasyID3(str(path))
        except ID3NoHeaderError:
            audio = EasyID3()
    else:
        audio = mutagen.File(str(path), easy=True)
        if audio.tags is None:
            audio.add_tags()
    for name, value in tags.items():
        key = EASY_KEYS[name]
        if value is None:
            if key in audio:
                del audio[key]
        else:
            audio[key] = [str(value)]
    if path.suffix.lower() == ".mp3":
        audio.save(str(path))
    else:
        audio.save()


@dataclass
class Track:
    path: Path
    tags: dict = field(default_factory=dict)
    bpm: float = 0.0
    db: float = 0.0


# (file name, tags, bpm of the clicks, level of the tone in dBFS, tone Hz)
LIBRARY = [
    ("radiohead-airbag.flac", dict(artist="Radiohead", album="OK Computer", title="Airbag", genre="Rock",
                                   year=1997, track_number=1, album_artist="Radiohead",
                                   mb_release_id="0b6b4ba0-d36f-47bd-b4ea-6a5b91842d29"), 120, -8, 220),
    ("radiohead-paranoid.mp3", dict(artist="Radiohead", album="OK Computer", title="Paranoid Android",
                                    genre="Rock", year=1997, track_number=2, album_artist="Radiohead",
                                    mb_recording_id="6e8a3b2c-5a1b-4b7e-9a62-0a1c3c7c8d11"), 124, -9, 247),
    ("coltrane-naima.m4a", dict(artist="John Coltrane", album="Giant Steps", title="Naima", genre="Jazz",
                                year=1960, track_number=6), 70, -20, 330),
    ("coltrane-steps.flac", dict(artist="John Coltrane", album="Giant Steps", title="Giant Steps", genre="Jazz",
                                 year=1960, track_number=1, mb_artist_id="b625448e-bf4a-41c3-a421-72ad46cdb831"),
     150, -14, 392),
    ("bjork-joga.mp3", dict(artist="Björk", album="Homogenic", title="Jóga", genre="Electronic", year=1997,
                            track_number=3), 90, -12, 440),
    ("unknown.m4a", dict(), 128, -10, 262),
]


def write_tagged_library(folder, duration_s: float = 3.0, sr: int = SR) -> list[Track]:
    """The :data:`LIBRARY` tracks in ``folder``: a click track at the tempo plus a tone, stereo, tagged."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (name, tags, bpm, db, hz) in enumerate(LIBRARY):
        clicks = click_track(bpm, duration_s, sr, db=db)
        tone = noisy_tone(hz, duration_s, sr, amplitude=10 ** ((db - 6) / 20), noise=0.002, seed=i)
        x = clicks + tone
        path = write_audio(folder / name, np.stack([x, 0.8 * x], axis=1).astype(np.float32), sr)
        if tags:
            tag_file(path, **tags)
        out.append(Track(path, tags, bpm, db))
    return out
