"""Message contracts: what travels on the bus and what the CLI prints.

Pure data, no I/O. Encoded as JSON with msgspec so that any language can read
the streams (the Rust server speaks the same shapes). Every message carries a
``schema`` integer; decoders reject unknown message types loudly.

Streams (see ``trackprint/bus/__init__.py``):
- events:  :class:`FileEvent` (watcher -> analyzers)
- results: :data:`ResultMessage` = fingerprint | failure | removed | moved
  (analyzers -> persister)
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Literal, Union

import msgspec

from trackprint.errors import ErrorCode
from trackprint.fingerprint import DIMENSIONS, KNOWN_VERSIONS, RANGES, validate

SCHEMA = 1

EventKind = Literal["added", "changed", "moved", "removed"]
EngineName = Literal["rust", "python"]
# Why a file left the library: gone from the disk, or excluded by the settings (hidden, trash, a glob, a
# marker file) while still there. "included": an ``added`` for a path excluded moments before.
# "moved": the source's half of a move (a ``removed`` naming ``new_path``; the ``moved`` at the new path is
# the other half), so that each path's latest event says what became of it (bus: one message per file).
RemovalReason = Literal["gone", "excluded"]
EventReason = Literal["excluded", "included", "moved"]


class Fingerprint(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The 25 numbers, in the spec's order. Units and ranges: docs/fingerprint-spec.md."""

    sub_bass_pct: float
    bass_pct: float
    low_mid_pct: float
    mid_pct: float
    upper_mid_pct: float
    presence_pct: float
    air_pct: float
    lufs: float
    crest_db: float
    bass_mid_ratio: float
    tempo_bpm: float
    rhythm_stability: float
    transient_density: float
    silence_ratio: float
    spectral_centroid: float
    spectral_rolloff: float
    spectral_flatness: float
    harmonic_ratio: float
    pitch_stability: float
    chroma_energy: float
    dynamic_range_variation: float
    loudness_variation_std: float
    peak_consistency: float
    stereo_width: float
    phase_correlation: float

    def as_dict(self) -> dict[str, float]:
        return dict(zip(DIMENSIONS, msgspec.structs.astuple(self)))

    def problems(self) -> list[str]:
        # The struct holds exactly the 25 fields, and decoding made each a float: only the ranges are
        # left, and a NaN fails every comparison. The persister runs this for every result, hence this
        # quick pass; anything else (an int or a bool set from Python) gets the full check.
        if all(type(value) is float and low <= value <= high
               for value, (low, high) in zip(msgspec.structs.astuple(self), _BOUNDS)):
            return []
        return validate(self.as_dict())


assert Fingerprint.__struct_fields__ == DIMENSIONS
_BOUNDS = [RANGES[name] for name in DIMENSIONS]
assert all(map(math.isfinite, (bound for pair in _BOUNDS for bound in pair)))  # else inf would pass the quick check


class DecodeFacts(msgspec.Struct, kw_only=True):
    """What the decoder found. ``declared_duration_s`` is None when the container does not say."""

    codec: str  # e.g. "flac", "mp3", "vorbis", "opus", "pcm_s16le", "aac", "alac"
    container: str  # e.g. "flac", "wav", "aiff", "ogg", "mp3", "mp4"
    sample_rate: int
    channels: int
    decoded_duration_s: float
    declared_duration_s: float | None = None
    bits_per_sample: int | None = None


class Timings(msgspec.Struct, kw_only=True):
    """Seconds spent, wall clock. ``decode_s`` is inside ``total_s``; ``analysis_s`` is ``total_s -
    decode_s`` (the Rust engine decodes and analyses on two threads at once, so there it is what the
    features took beyond the decoding)."""

    total_s: float
    decode_s: float | None = None
    analysis_s: float | None = None


class EngineProblem(msgspec.Struct, kw_only=True):
    """Why an engine gave no fingerprint: the taxonomy's code, the stage, and the raw reason.

    The same three fields whichever engine failed (the Rust server's error
    body is exactly this), so a failure row never depends on the engine.
    """

    code: ErrorCode
    stage: str
    message: str  # the reason only: no path, no code (see trackprint.errors.describe)


class EngineOutcome(msgspec.Struct, kw_only=True):
    """What an engine says about one file: a fingerprint, or a typed error (exactly one of them).

    The one shape of an analysis outcome in every process: the Python engine
    returns it, the Rust server's JSON decodes into it (``{"path",
    "fingerprint", "fingerprint_version", "engine", "decode", "timings"}`` or
    ``{"error": {"code", "stage", "message"}}``), and
    ``trackprint.analyzer.engines`` adds ``fallback_reason`` when the Python
    engine stood in for Rust.
    """

    path: str = ""
    engine: EngineName | None = None
    fingerprint: Fingerprint | None = None
    fingerprint_version: int | None = None
    decode: DecodeFacts | None = None
    timings: Timings | None = None
    error: EngineProblem | None = None
    fallback_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Tags(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The file's own tags, read with mutagen at analysis time (``trackprint/tags.py``).

    Every field is optional: a missing or unreadable tag is None, never a failure. ``duration_s`` is
    the container's declared length; the MusicBrainz ids are the recording (track), the release
    (album) and the artist.
    """

    artist: str | None = None
    album_artist: str | None = None
    album: str | None = None
    title: str | None = None
    track_number: int | None = None
    disc_number: int | None = None
    genre: str | None = None
    year: int | None = None
    duration_s: float | None = None
    mb_recording_id: str | None = None
    mb_release_id: str | None = None
    mb_artist_id: str | None = None


class FileEvent(msgspec.Struct, kw_only=True, tag="file_event", tag_field="type"):
    """A change in the library seen by the watcher, published once the file is quiescent."""

    kind: EventKind
    path: str  # absolute, as seen by the watcher host
    root: str  # the library root the path is under
    size: int | None = None
    mtime_ns: int | None = None
    inode: int | None = None
    old_path: str | None = None  # only for kind == "moved"
    new_path: str | None = None  # only for kind == "removed" with reason "moved": where the file went
    origin: Literal["scan", "watch", "reconcile", "manual"] = "watch"
    reason: EventReason | None = None  # "excluded" for a removed file still on disk; see EventReason
    observed_at: float = msgspec.field(default_factory=time.time)
    schema: int = SCHEMA

    def msg_id(self) -> str:
        """Deterministic ``Nats-Msg-Id``: the same observation published twice is deduplicated.

        Built from what identifies the observation (kind, paths, size, mtime),
        not from when it was observed, so a rescan of an unchanged file yields
        the same id.
        """
        parts = (self.kind, self.path, self.old_path, self.size, self.mtime_ns)
        parts += (self.reason,) if self.reason else ()  # without one, the ids of earlier releases
        parts += (self.new_path,) if self.new_path else ()
        key = "\x1f".join(str(part) for part in parts)
        return "ev-" + hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()


class FingerprintResult(msgspec.Struct, kw_only=True, tag="fingerprint", tag_field="type"):
    """A successful analysis (or the reuse of one for identical audio content)."""

    path: str
    fingerprint: Fingerprint
    fingerprint_version: int
    engine: EngineName
    decode: DecodeFacts
    timings: Timings
    content_id: str  # audio-content identity, see pyengine/identity.py
    size: int | None = None
    mtime_ns: int | None = None
    inode: int | None = None
    source_seq: int = 0  # stream sequence of the FileEvent this answers (0: not from the bus)
    reused: bool = False  # True when copied from an earlier analysis of the same content
    fallback_reason: str | None = None  # why the Python engine ran instead of Rust
    host: str | None = None
    analyzed_at: float = msgspec.field(default_factory=time.time)
    schema: int = SCHEMA
    tags: Tags | None = None  # read fresh for every result, reuses included (a retag keeps the audio)


class AnalysisFailure(msgspec.Struct, kw_only=True, tag="failure", tag_field="type"):
    """A typed reason why a file has no fingerprint."""

    path: str
    code: ErrorCode
    message: str
    stage: str = "analyse"
    attempts: int = 1
    engine: EngineName | None = None
    size: int | None = None
    mtime_ns: int | None = None
    source_seq: int = 0
    host: str | None = None
    failed_at: float = msgspec.field(default_factory=time.time)
    schema: int = SCHEMA


class TrackRemoved(msgspec.Struct, kw_only=True, tag="removed", tag_field="type"):
    """The file is gone: the persister writes a tombstone, never a hard delete."""

    path: str
    source_seq: int = 0
    reason: RemovalReason = "gone"  # "excluded": the file is there but the settings exclude it
    observed_at: float = msgspec.field(default_factory=time.time)
    schema: int = SCHEMA


class TrackMoved(msgspec.Struct, kw_only=True, tag="moved", tag_field="type"):
    """Same file, new path: the fingerprint follows it without re-analysis."""

    old_path: str
    path: str
    size: int | None = None
    mtime_ns: int | None = None
    inode: int | None = None
    source_seq: int = 0
    observed_at: float = msgspec.field(default_factory=time.time)
    schema: int = SCHEMA


ResultMessage = Union[FingerprintResult, AnalysisFailure, TrackRemoved, TrackMoved]

_event_decoder = msgspec.json.Decoder(FileEvent)
_result_decoder = msgspec.json.Decoder(ResultMessage)
_encoder = msgspec.json.Encoder()


def encode(message: msgspec.Struct) -> bytes:
    return _encoder.encode(message)


def decode_event(data: bytes) -> FileEvent:
    """Decode a FileEvent; raises ``msgspec.ValidationError``/``DecodeError`` when malformed."""
    return _event_decoder.decode(data)


def decode_result(data: bytes) -> ResultMessage:
    """Decode a results-stream message; raises ``msgspec.ValidationError``/``DecodeError`` when malformed.

    Structural validation only; call :func:`result_problems` for the
    semantic checks (finite values in range, known version).
    """
    return _result_decoder.decode(data)


MAX_SEQUENCE = 2**63 - 1  # a stream sequence is a uint64 that SQL BIGINT must hold


def result_problems(message: ResultMessage) -> list[str]:
    """Semantic problems of a decoded result (empty list when it may be stored)."""
    problems: list[str] = []
    if not 0 <= message.source_seq <= MAX_SEQUENCE:
        problems.append(f"source_seq {message.source_seq} is not a stream sequence")
    for name in ("path", "old_path"):
        value = getattr(message, name, None)
        if value is not None and not value.startswith("/"):
            problems.append(f"{name} {value!r} is not an absolute path")
    if isinstance(message, FingerprintResult):
        problems += message.fingerprint.problems()
        if message.fingerprint_version not in KNOWN_VERSIONS:
            problems.append(f"unknown fingerprint_version {message.fingerprint_version}")
    return problems
