"""Decoding files to float32 blocks, with typed errors (the engine's only file I/O).

Decoders: libsndfile through ``soundfile`` (libFLAC, libvorbis, libopus,
mpg123, PCM) for FLAC, WAV, AIFF, Ogg and MP3; FFmpeg through PyAV for MP4
(AAC, ALAC) and the rest. The container is chosen by :mod:`trackprint.pyengine.sniff`
from the file's bytes. Blocks are fixed-size (a multiple of the 100 ms
loudness sub-block) so memory is bounded by the block size, whatever the
length of the track.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

import numpy as np

from trackprint.pyengine import sniff
from trackprint.pyengine.features.frames import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from trackprint.errors import AnalysisError, ErrorCode

HEAD_BYTES = 1 << 16
TAIL_BYTES = 1 << 16
MAX_CHANNELS = 64
TRUNCATION_TOLERANCE_S = 0.25  # MP3/AAC priming and padding stay well inside this
DEFAULT_MAX_BYTES = 8 << 30
DEFAULT_MAX_DURATION_S = 12 * 3600.0

_SNDFILE_CONTAINERS = {"flac", "wav", "aiff", "ogg", "mp3", "w64", "caf"}
_SUBTYPE_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64}


@dataclass
class DecodedStream:
    """What the decoder knows before and after decoding."""

    container: str
    codec: str
    sample_rate: int
    channels: int
    declared_duration_s: float | None
    bits_per_sample: int | None
    frames_decoded: int = 0
    ends_cleanly: bool = True  # False: the container's last page/frame is missing
    blocks: Iterator[np.ndarray] = field(default=iter(()), repr=False)

    @property
    def decoded_duration_s(self) -> float:
        return self.frames_decoded / self.sample_rate


class _OffsetReader(io.RawIOBase):
    """A read-only view of a file starting at ``offset`` (skips an ID3v2 tag for libsndfile)."""

    def __init__(self, raw: BinaryIO, offset: int):
        self._raw, self._offset = raw, offset
        self._raw.seek(offset)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 0:
            return self._raw.seek(pos + self._offset) - self._offset
        return self._raw.seek(pos, whence) - self._offset

    def tell(self) -> int:
        return self._raw.tell() - self._offset

    def readinto(self, buffer) -> int:  # type: ignore[override]
        return self._raw.readinto(buffer)


def check_file(path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> os.stat_result:
    """Stat ``path`` and turn every problem into a typed error before any decoder sees it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise AnalysisError(ErrorCode.NOT_FOUND, "no such file", path=path, stage="open") from None
    except NotADirectoryError:
        raise AnalysisError(ErrorCode.NOT_FOUND, "a parent of the path is not a directory", path=path, stage="open") from None
    except PermissionError:
        raise AnalysisError(ErrorCode.IO_ERROR, "permission denied", path=path, stage="open") from None
    except OSError as exc:
        raise AnalysisError(ErrorCode.IO_ERROR, f"cannot stat: {exc.strerror}", path=path, stage="open") from None
    if stat.S_ISDIR(st.st_mode):
        raise AnalysisError(ErrorCode.NOT_A_FILE, "is a directory", path=path, stage="open")
    if not stat.S_ISREG(st.st_mode):
        raise AnalysisError(ErrorCode.NOT_A_FILE, "not a regular file", path=path, stage="open")
    if st.st_size == 0:
        raise AnalysisError(ErrorCode.EMPTY_FILE, "file is empty (0 bytes)", path=path, stage="open")
    if st.st_size > max_bytes:
        raise AnalysisError(
            ErrorCode.TOO_LARGE, f"{st.st_size} bytes is above the {max_bytes}-byte limit", path=path, stage="open"
        )
    return st


def _read_edges(handle: BinaryIO, size: int, path: str) -> tuple[bytes, bytes]:
    try:
        head = handle.read(HEAD_BYTES)
        handle.seek(max(0, size - TAIL_BYTES))
        tail = handle.read(TAIL_BYTES)
        handle.seek(0)
    except OSError as exc:
        raise AnalysisError(ErrorCode.IO_ERROR, f"read failed: {exc.strerror or exc}", path=path, stage="probe") from None
    if not head:
        raise AnalysisError(ErrorCode.EMPTY_FILE, "the first read returned nothing", path=path, stage="probe")
    return head, tail


def open_stream(handle: BinaryIO, path: str, size: int, block_frames_for_rate) -> DecodedStream:
    """Recognise and open the audio in ``handle``; ``block_frames_for_rate(sr)`` sizes the blocks."""
    head, tail = _read_edges(handle, size, path)
    try:
        found, head = sniff.sniff_file(handle, size)  # head: the first bytes after any ID3v2 tags
    except OSError as exc:
        raise AnalysisError(ErrorCode.IO_ERROR, f"read failed: {exc.strerror or exc}", path=path, stage="probe") from None
    if found is None:
        # the reason never quotes the file's bytes: they could be anything (a symlink to a secret)
        raise AnalysisError(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"not a recognised audio format (no known container signature in the first {len(head)} bytes)",
            path=path,
            stage="probe",
        )
    if found.container in _SNDFILE_CONTAINERS:
        stream = _open_sndfile(handle, path, found, head, block_frames_for_rate)
        if found.container == "ogg":
            stream.ends_cleanly = sniff.ogg_ends_cleanly(tail)
        return stream
    return _open_ffmpeg(handle, path, found, block_frames_for_rate)


def _validate_format(path: str, sample_rate: int, channels: int) -> None:
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AnalysisError(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz",
            path=path,
            stage="probe",
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise AnalysisError(ErrorCode.CORRUPT, f"stream declares {channels} channels", path=path, stage="probe")


def _open_sndfile(handle, path, found: sniff.Sniffed, head: bytes, block_frames_for_rate) -> DecodedStream:
    import soundfile

    source = _OffsetReader(handle, found.audio_offset) if found.audio_offset and found.container != "mp3" else handle
    try:
        sound = soundfile.SoundFile(source)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AnalysisError(
            ErrorCode.CORRUPT, f"{found.container} stream cannot be opened: {exc}", path=path, stage="probe"
        ) from None
    _validate_format(path, sound.samplerate, sound.channels)
    subtype = sound.subtype or ""
    codec = {"VORBIS": "vorbis", "OPUS": "opus", "MPEG_LAYER_III": "mp3", "MPEG_LAYER_II": "mp2", "MPEG_LAYER_I": "mp1"}.get(
        subtype, "flac" if found.container == "flac" else subtype.lower() or found.container
    )
    if found.container in ("wav", "aiff", "w64", "caf") and subtype.startswith(("PCM", "FLOAT", "DOUBLE")):
        codec = "pcm_" + subtype.lower().replace("pcm_", "s").replace("float", "f32").replace("double", "f64")
    declared_frames = None
    if found.container == "flac":
        declared_frames = sniff.flac_declared_frames(head, 0)
    elif found.container == "wav":
        declared_frames = sniff.wav_declared_frames(head, 0)
    elif found.container == "aiff":
        declared_frames = sniff.aiff_declared_frames(head, 0)
    declared = declared_frames / sound.samplerate if declared_frames else None
    if found.container == "mp3":
        declared = sniff.mp3_declared_seconds(head, 0)
    stream = DecodedStream(
        container=found.container,
        codec=codec,
        sample_rate=sound.samplerate,
        channels=sound.channels,
        declared_duration_s=declared,
        bits_per_sample=_SUBTYPE_BITS.get(subtype),
    )
    stream.blocks = _sndfile_blocks(sound, stream, path, block_frames_for_rate(sound.samplerate), handle)
    return stream


def _at_end_of_file(handle) -> bool:
    """True when the decoder has consumed every byte of ``handle`` (position restored)."""
    try:
        pos = handle.tell()
        end = handle.seek(0, io.SEEK_END)
        handle.seek(pos)
        return pos >= end
    except (OSError, ValueError):
        return False


def _decode_failure(exc: Exception, handle, stream: DecodedStream, path: str) -> AnalysisError:
    """A decoder error with every byte read and less audio than declared is a cut file
    (``truncated``, e.g. libFLAC's "lost sync" in a partial last frame); otherwise ``corrupt``."""
    declared = stream.declared_duration_s
    if _at_end_of_file(handle) and (declared is None or stream.decoded_duration_s < declared - TRUNCATION_TOLERANCE_S):
        return AnalysisError(
            ErrorCode.TRUNCATED,
            f"the {stream.container} stream ends mid-frame after {stream.decoded_duration_s:.2f} s"
            + (f" of the {declared:.2f} s its header declares" if declared else "") + f" ({exc})",
            path=path,
            stage="decode",
        )
    return AnalysisError(ErrorCode.CORRUPT, f"decoding failed: {exc}", path=path, stage="decode")


def _sndfile_blocks(sound, stream: DecodedStream, path: str, block_frames: int, handle) -> Iterator[np.ndarray]:
    import soundfile

    try:
        with sound:
            while True:
                try:
                    block = sound.read(block_frames, dtype="float32", always_2d=True)
                except soundfile.LibsndfileError as exc:
                    raise _decode_failure(exc, handle, stream, path) from None
                except OSError as exc:
                    raise _io_error(exc, path) from None
                if len(block) == 0:
                    return
                stream.frames_decoded += len(block)
                yield block
                if len(block) < block_frames:
                    return
    except (soundfile.LibsndfileError, RuntimeError) as exc:  # closing a broken stream
        raise _decode_failure(exc, handle, stream, path) from None


def _io_error(exc: OSError, path: str) -> AnalysisError:
    reason = errno.errorcode.get(exc.errno or 0, "") if exc.errno else ""
    return AnalysisError(ErrorCode.IO_ERROR, f"read failed: {exc.strerror or exc} {reason}".strip(), path=path, stage="decode")


def _open_ffmpeg(handle, path, found: sniff.Sniffed, block_frames_for_rate) -> DecodedStream:
    import av

    handle.seek(0)
    try:
        container = av.open(handle, mode="r")
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise AnalysisError(
            ErrorCode.CORRUPT, f"{found.container} container cannot be opened: {exc}", path=path, stage="probe"
        ) from None
    audio = [s for s in container.streams if s.type == "audio"]
    if not audio:
        container.close()
        raise AnalysisError(ErrorCode.UNSUPPORTED_FORMAT, f"{found.container} file has no audio stream", path=path, stage="probe")
    source = audio[0]
    codec = source.codec_context.name
    rate, channels = source.codec_context.sample_rate or source.rate or 0, source.codec_context.channels
    _validate_format(path, rate, channels)
    declared = None
    if source.duration is not None and source.time_base is not None:
        declared = float(source.duration * source.time_base)
    elif container.duration:
        declared = container.duration / 1_000_000
    stream = DecodedStream(
        container=found.container,
        codec=codec,
        sample_rate=rate,
        channels=channels,
        declared_duration_s=declared,
        bits_per_sample=getattr(source.codec_context, "bits_per_raw_sample", None) or None,
    )
    stream.blocks = _ffmpeg_blocks(container, source, stream, path, block_frames_for_rate(rate))
    return stream


def _ffmpeg_blocks(container, source, stream: DecodedStream, path: str, block_frames: int) -> Iterator[np.ndarray]:
    import av

    pending: list[np.ndarray] = []
    pending_frames = 0
    try:
        with container:
            for frame in container.decode(source):
                samples = frame.to_ndarray()
                if frame.format.is_planar:
                    samples = samples.T
                else:
                    samples = samples.reshape(-1, stream.channels)
                samples = _to_float32(samples, frame.format.name)
                if samples.shape[1] != stream.channels:
                    raise AnalysisError(ErrorCode.CORRUPT, "channel count changed mid-stream", path=path, stage="decode")
                pending.append(samples)
                pending_frames += len(samples)
                while pending_frames >= block_frames:
                    joined = np.concatenate(pending)
                    out, rest = joined[:block_frames], joined[block_frames:]
                    pending, pending_frames = ([rest] if len(rest) else []), len(rest)
                    stream.frames_decoded += len(out)
                    yield out
    except av.error.FFmpegError as exc:
        raise AnalysisError(ErrorCode.CORRUPT, f"decoding failed: {exc}", path=path, stage="decode") from None
    except OSError as exc:
        raise _io_error(exc, path) from None
    if pending_frames:
        out = np.concatenate(pending)
        stream.frames_decoded += len(out)
        yield out


def _to_float32(samples: np.ndarray, sample_format: str) -> np.ndarray:
    """Integer PCM to +-1.0 full scale by its own bit depth (never by i32::MAX for 16-bit data)."""
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / 32768.0
    if samples.dtype == np.int32:
        return (samples.astype(np.float64) / 2147483648.0).astype(np.float32)
    if samples.dtype == np.uint8:
        return (samples.astype(np.float32) - 128.0) / 128.0
    return samples.astype(np.float32, copy=False)
