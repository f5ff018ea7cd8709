"""Decoding files to float32 blocks, with typed errors (the engine's only file I/O).

Decoders: libsndfile through ``soundfile`` (libFLAC, libvorbis, mpg123,
PCM) for FLAC, WAV, AIFF, W64, PCM CAF, mono or stereo Ogg Vorbis and MP3
with a Xing/Info/VBRI frame count. FFmpeg through PyAV for the rest: what
libsndfile refuses (MP4 AAC/ALAC, ALAC/AAC in CAF, Ogg FLAC, ADTS AAC,
WavPack, APE) and what it reads wrong: Ogg Opus (it trusts every page's
granule position and called a real ffmpeg-transcoded file malformed), MP3
without a frame count (it stops at a length estimated from the first
frames) and Ogg Vorbis beyond stereo (it keeps the Vorbis channel order).
The decoder is chosen from the container and codec
:mod:`trackprint.pyengine.sniff` recognises in the file's bytes, never by
its name, and never by trying one decoder after another.

Tags are skipped by seeking: the decoders read the file through
:class:`_AudioSpan`, a read-only view of the audio's bytes alone (after the
leading ID3v2 tags, stacked and of any size; before the trailing ID3v1, APEv2
and Lyrics3v2 tags), whose offsets start at the audio's first byte. Every
read through it checks the analysis deadline. Blocks are fixed-size (a
multiple of the 100 ms loudness sub-block) so memory is bounded by the block
size, whatever the length of the track.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator

import numpy as np

from trackprint.pyengine import sniff
from trackprint.pyengine.features.frames import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from trackprint.errors import AnalysisError, ErrorCode

HEAD_BYTES = 1 << 16
TAIL_BYTES = 1 << 16
MAX_CHANNELS = 64
TRUNCATION_TOLERANCE_S = 0.25  # MP3/AAC priming and padding stay well inside this
# An Ogg stream may decode this share of its length short of its last page's granule and still be whole
# (rust-server/src/decode/mod.rs): symphonia's Vorbis decoder stopped 0.32 s short on a real 378-s file that
# FFmpeg and libsndfile decode in full. A loss that small cannot move the fingerprint; a damaged page in a
# short file, what the check is for, loses far more.
OGG_SHORTFALL_SHARE = 0.005


def ogg_shortfall_allowed(expected_s: float) -> float:
    """How far short of ``expected_s`` seconds an Ogg stream may decode and still be whole."""
    return max(TRUNCATION_TOLERANCE_S, OGG_SHORTFALL_SHARE * expected_s)
DEFAULT_MAX_BYTES = 8 << 30
DEFAULT_MAX_DURATION_S = 12 * 3600.0

_SNDFILE_CONTAINERS = {"flac", "wav", "aiff", "w64", "mp3"}  # and Ogg Vorbis, PCM CAF
# Containers with no length of their own: FFmpeg estimates one from the first frames' bit rate (raw ADTS: 61.5 s
# for a 60-s file, which made a whole file look cut). An MP3's declared length is its Xing/VBRI count (sniff).
_LENGTH_FROM_BITRATE = {"aac", "mp3"}
_CHECKSUMMED_CODECS = {"wavpack", "ape"}  # FFmpeg verifies their per-block checksums only when asked
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
    # Ogg with a complete end-of-stream page: the stream's length by its last page's granule
    # position, seconds (pre-skip removed for Opus); decoding less means pages were lost
    ogg_expected_s: float | None = None
    blocks: Iterator[np.ndarray] = field(default=iter(()), repr=False)
    # the container's declared byte length against the file (sniff.byte_extent), read on demand
    extent: Callable[[], str | int] = field(default=lambda: sniff.EXTENT_UNKNOWN, repr=False)

    @property
    def decoded_duration_s(self) -> float:
        return self.frames_decoded / self.sample_rate


class _AudioSpan(io.RawIOBase):
    """A read-only view of bytes ``[start, end)`` of ``raw``: the audio without the tags around it.

    ``seek``/``tell`` count from ``start`` and the view ends at ``end``, so a decoder sees a file
    that starts with its own header and ends with its last frame (leading tags are skipped by
    seeking, never read). The decoders call ``read``/``seek`` from C (libsndfile through cffi
    callbacks, FFmpeg through PyAV's I/O context), where an exception is printed and swallowed or
    turned into an FFmpeg error; so a read never raises: a read past the ``deadline``
    (``time.monotonic()`` value) or a failing one records :attr:`failure` and answers end of file,
    and :meth:`check` raises it once the decoder returns.
    """

    def __init__(self, raw: BinaryIO, start: int, end: int, path: str, deadline: float | None, stage: str):
        super().__init__()
        self._raw, self._start, self._end, self._pos = raw, start, max(start, end), start
        self._path, self._deadline, self.stage = path, deadline, stage
        self.failure: AnalysisError | None = None
        self._read_to_end = False

    def __repr__(self) -> str:  # decoders quote their file object in errors: never a path or bytes
        return "the audio stream"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos - self._start

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {io.SEEK_SET: self._start, io.SEEK_CUR: self._pos, io.SEEK_END: self._end}.get(whence)
        if base is not None:
            self._pos = max(self._start, base + pos)
        return self._pos - self._start

    def at_end(self) -> bool:
        """True once the decoder has read up to the audio's last byte (even if it seeked back since:
        libFLAC looking for sync again in a cut file)."""
        return self._read_to_end

    def _allowed(self, n: int | None) -> int:
        if self.failure is not None:
            return 0
        if self._deadline is not None and time.monotonic() > self._deadline:
            self.failure = AnalysisError(
                ErrorCode.TIMEOUT, "deadline passed while reading the file", path=self._path, stage=self.stage
            )
            return 0
        left = max(0, self._end - self._pos)
        return left if n is None or n < 0 else min(n, left)

    def read(self, n: int | None = -1) -> bytes:
        n = self._allowed(n)
        if n == 0:
            return b""
        try:
            self._raw.seek(self._pos)
            data = self._raw.read(n)
        except OSError as exc:
            self.failure = _io_error(exc, self._path, self.stage)
            return b""
        self._pos += len(data)
        self._read_to_end |= self._pos >= self._end
        return data

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        n = self._allowed(len(view))
        if n == 0:
            return 0
        try:
            self._raw.seek(self._pos)
            got = self._raw.readinto(view[:n]) or 0
        except OSError as exc:
            self.failure = _io_error(exc, self._path, self.stage)
            return 0
        self._pos += got
        self._read_to_end |= self._pos >= self._end
        return got

    def check(self) -> None:
        """Raise the deadline or OS failure a read met (the decoder only saw an end of file)."""
        if self.failure is not None:
            raise self.failure


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


# libsndfile decodes these (container, codec) pairs; FFmpeg the rest. libsndfile refuses ALAC in
# CAF and Ogg FLAC (FFmpeg's muxers write both), does not read MP4, ADTS, WavPack or APE, and fails
# on Opus pages whose granule runs ahead of their packets (see the module docstring).
_SNDFILE_OGG_CODECS = {"vorbis"}
_SNDFILE_CAF_FORMATS = {"lpcm", "ulaw", "alaw"}
# the libavformat demuxer for each container FFmpeg reads (never guessed from the bytes by FFmpeg)
_FFMPEG_DEMUXERS = {"mp3": "mp3", "mp4": "mov", "caf": "caf", "ogg": "ogg", "aac": "aac", "wavpack": "wv", "ape": "ape", "w64": "w64"}


def _decoded_by_sndfile(found: sniff.Sniffed, head: bytes) -> bool:
    if found.container == "mp3":
        # without a Xing/Info/VBRI frame count libsndfile stops at mpg123's estimate from the first frames'
        # bit rate: a real VBR file (LAME without its tag) ended at 74 s of 150. FFmpeg reads every frame.
        return sniff.mp3_declared_seconds(head, 0) is not None
    if found.container == "ogg":
        # beyond stereo libsndfile keeps the Vorbis channel order; FFmpeg gives the WAV order the loudness
        # weights assume, as the Rust engine does (it reads such Vorbis with FFmpeg too)
        return found.codec in _SNDFILE_OGG_CODECS and (sniff.vorbis_channels(head) or 0) <= 2
    if found.container == "caf":
        return sniff.caf_format(head) in _SNDFILE_CAF_FORMATS
    return found.container in _SNDFILE_CONTAINERS


def open_stream(handle: BinaryIO, path: str, size: int, block_frames_for_rate,
                deadline: float | None = None) -> DecodedStream:
    """Recognise and open the audio in ``handle``; ``block_frames_for_rate(sr)`` sizes the blocks.

    Every read, from the tag headers on, checks ``deadline`` (a ``time.monotonic()`` value):
    past it, ``timeout``."""
    whole = _AudioSpan(handle, 0, size, path, deadline, "probe")
    if not whole.read(1):
        whole.check()
        raise AnalysisError(ErrorCode.EMPTY_FILE, "the first read returned nothing", path=path, stage="probe")
    start = sniff.leading_id3v2_size(whole, size)  # stacked ID3v2 tags of any size: header to header
    whole.check()
    end = sniff.audio_end(whole, start, size)  # ID3v1 / APEv2 / Lyrics3v2 behind the audio
    whole.check()
    whole.seek(start)
    head = whole.read(min(HEAD_BYTES, end - start))
    whole.seek(max(start, end - TAIL_BYTES))
    tail = whole.read(end - max(start, end - TAIL_BYTES))
    whole.check()
    found = sniff.sniff_audio(head, start)
    if found is None:
        # the reason never quotes the file's bytes: they could be anything (a symlink to a secret)
        raise AnalysisError(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"not a recognised audio format (no known container signature in the first {len(head)} bytes)",
            path=path,
            stage="probe",
        )
    if found.container == "mp3":  # libsndfile wants the first frame at the start (junk after a tag)
        first = sniff.mpeg_first_frame(head, 4096) or 0
        start, head = start + first, head[first:]
    if found.container == "flac" and sniff.flac_metadata_end(head) == end - start:
        # a FLAC stream of headers only: empty if its STREAMINFO declares no samples, else cut after them
        if sniff.flac_declared_frames(head, 0) is None:
            raise AnalysisError(ErrorCode.TOO_SHORT, "the flac stream has its headers but no audio frames",
                                path=path, stage="probe")
        raise AnalysisError(ErrorCode.TRUNCATED, "the flac stream ends after its headers, before any audio frame",
                            path=path, stage="probe")
    span = _AudioSpan(handle, start, end, path, deadline, "probe")
    ogg_tail = sniff.ogg_tail_state(tail) if found.container == "ogg" else None

    def extent() -> str | int:
        def read_at(pos: int, n: int) -> bytes:
            n = max(0, min(n, end - start - pos))
            try:
                handle.seek(start + pos)
                return handle.read(n) if n else b""
            except OSError:
                return b""

        return sniff.byte_extent(found.container, end - start, ogg_tail, read_at)

    try:
        if _decoded_by_sndfile(found, head):
            stream = _open_sndfile(span, path, found, head, block_frames_for_rate)
        else:
            stream = _open_ffmpeg(span, path, found, block_frames_for_rate)
    except AnalysisError as exc:
        raise cut_or_corrupt(exc, extent, found.container, end - start) from None
    stream.extent = extent
    stream.blocks = _cut_or_corrupt_blocks(stream.blocks, extent, found.container, end - start)
    if found.container == "ogg":
        stream.ends_cleanly = sniff.ogg_ends_cleanly(tail)
        granule = sniff.ogg_last_granule(tail)
        if granule is not None and found.codec == "opus":
            pre_skip = sniff.opus_pre_skip(head)
            stream.ogg_expected_s = max(0, granule - pre_skip) / 48_000 if pre_skip is not None else None
        elif granule is not None and stream.sample_rate:
            stream.ogg_expected_s = granule / stream.sample_rate
    span.stage = "decode"
    return stream


def cut_or_corrupt(exc: AnalysisError, extent: Callable[[], str | int], container: str, length: int) -> AnalysisError:
    """A decoder's ``corrupt`` on a file shorter than its container's structure declares is
    ``truncated``: the damage is the missing end (``docs/fingerprint-spec.md``, "Outcomes")."""
    if exc.code is not ErrorCode.CORRUPT:
        return exc
    declared = extent()
    if isinstance(declared, int):
        return AnalysisError(
            ErrorCode.TRUNCATED,
            f"{exc.message}: the file ends {declared - length} bytes short of what its {container} structure declares",
            path=exc.path,
            stage=exc.stage,
        )
    return exc


def _cut_or_corrupt_blocks(blocks: Iterator[np.ndarray], extent, container: str, length: int) -> Iterator[np.ndarray]:
    try:
        yield from blocks
    except AnalysisError as exc:
        raise cut_or_corrupt(exc, extent, container, length) from None


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


def _open_sndfile(span: _AudioSpan, path, found: sniff.Sniffed, head: bytes, block_frames_for_rate) -> DecodedStream:
    import soundfile

    try:
        sound = soundfile.SoundFile(span)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as exc:
        span.check()
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
    stream.blocks = _sndfile_blocks(sound, stream, path, block_frames_for_rate(sound.samplerate), span)
    return stream


def _decode_failure(exc: Exception, span: _AudioSpan, stream: DecodedStream, path: str) -> AnalysisError:
    """A decoder error with every byte of the audio read and less audio than declared is a cut file
    (``truncated``, e.g. libFLAC's "lost sync" in a partial last frame), unless the container's
    structure says the file is whole (an MP3 whose Xing byte count is all there: its frames are
    damaged); otherwise ``corrupt``. A deadline or OS failure met by a read comes first (the
    decoder only saw an end of file)."""
    if span.failure is not None:
        return span.failure
    declared = stream.declared_duration_s
    if (span.at_end() and (declared is None or stream.decoded_duration_s < declared - TRUNCATION_TOLERANCE_S)
            and stream.extent() != sniff.EXTENT_WHOLE):
        return AnalysisError(
            ErrorCode.TRUNCATED,
            f"the {stream.container} stream ends mid-frame after {stream.decoded_duration_s:.2f} s"
            + (f" of the {declared:.2f} s its header declares" if declared else "") + f" ({exc})",
            path=path,
            stage="decode",
        )
    return AnalysisError(ErrorCode.CORRUPT, f"decoding failed: {exc}", path=path, stage="decode")


def _sndfile_blocks(sound, stream: DecodedStream, path: str, block_frames: int, span: _AudioSpan) -> Iterator[np.ndarray]:
    import soundfile

    try:
        with sound:
            while True:
                try:
                    block = sound.read(block_frames, dtype="float32", always_2d=True)
                except soundfile.LibsndfileError as exc:
                    raise _decode_failure(exc, span, stream, path) from None
                except OSError as exc:
                    raise _io_error(exc, path) from None
                span.check()
                if len(block) == 0:
                    return
                stream.frames_decoded += len(block)
                yield block
                if len(block) < block_frames:
                    return
    except (soundfile.LibsndfileError, RuntimeError) as exc:  # closing a broken stream
        raise _decode_failure(exc, span, stream, path) from None


def _io_error(exc: OSError, path: str, stage: str = "decode") -> AnalysisError:
    reason = errno.errorcode.get(exc.errno or 0, "") if exc.errno else ""
    return AnalysisError(ErrorCode.IO_ERROR, f"read failed: {exc.strerror or exc} {reason}".strip(), path=path, stage=stage)


def _open_ffmpeg(span: _AudioSpan, path, found: sniff.Sniffed, block_frames_for_rate) -> DecodedStream:
    import av

    try:
        container = av.open(span, mode="r", format=_FFMPEG_DEMUXERS.get(found.container))
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        span.check()
        raise AnalysisError(
            ErrorCode.CORRUPT, f"{found.container} container cannot be opened: {exc}", path=path, stage="probe"
        ) from None
    audio = [s for s in container.streams if s.type == "audio"]
    if not audio:
        container.close()
        raise AnalysisError(ErrorCode.UNSUPPORTED_FORMAT, f"{found.container} file has no audio stream", path=path, stage="probe")
    source = audio[0]
    decoder = _decoder_for(source)
    codec = decoder.name.removeprefix("lib").removesuffix("float")  # libopus -> opus, mp3float -> mp3
    if codec in _CHECKSUMMED_CODECS:  # a damaged block is corrupt, not decoded as sound (the Rust engine does the same)
        decoder.options = {"err_detect": "crccheck"}
    # the stream's parameters: a decoder of our choosing learns them from the first frame
    rate, channels = source.codec_context.sample_rate or source.rate or 0, source.codec_context.channels
    _validate_format(path, rate, channels)
    stream = DecodedStream(
        container=found.container,
        codec=codec,
        sample_rate=rate,
        channels=channels,
        declared_duration_s=_declared_seconds(found.container, container, source),
        bits_per_sample=getattr(decoder, "bits_per_raw_sample", None) or None,
    )
    stream.blocks = _ffmpeg_blocks(container, source, decoder, stream, path, block_frames_for_rate(rate), span)
    return stream


def _declared_seconds(kind: str, container, source) -> float | None:
    """The length the container states; None where FFmpeg's figure is only a bit-rate estimate."""
    if kind in _LENGTH_FROM_BITRATE:
        return None
    if source.duration is not None and source.time_base is not None:
        return float(source.duration * source.time_base)
    return container.duration / 1_000_000 if container.duration else None


# FFmpeg's decoder per codec where its default is not the one to use (with the options it needs):
# * Opus: libopus, the reference decoder (the Rust engine's), with float output; FFmpeg's own Opus decoder
#   agrees on CELT (music) but not on SILK (speech-rate encodes), ~20 dB apart. The wrapper applies the
#   OpusHead's pre-skip, output gain and family-1 channel order, and the demuxer's end trimming.
# * MPEG layer I/II: the float decoders; the default fixed-point ones clip at full scale (a real MP2 peaks
#   at 1.09 in the float decoders, libsndfile's and the Rust engine's).
_FFMPEG_DECODERS = {
    "opus": ("libopus", {"request_sample_fmt": "flt"}),
    "mp2": ("mp2float", {}),
    "mp1": ("mp1float", {}),
}


def _decoder_for(source):
    """The stream's own decoding context, or the one :data:`_FFMPEG_DECODERS` names for its codec, opened."""
    import av

    choice = _FFMPEG_DECODERS.get(source.codec_context.name)
    if choice is None:
        return source.codec_context
    name, options = choice
    decoder = av.codec.CodecContext.create(name, "r")
    decoder.extradata = source.codec_context.extradata
    decoder.options = options
    decoder.open()
    return decoder


def _decoded_frames(container, source, decoder):
    """Every decoded frame of ``source``, through ``decoder`` when it is not the stream's own context."""
    if decoder is source.codec_context:
        yield from container.decode(source)
        return
    for packet in container.demux(source):
        yield from decoder.decode(packet)  # the demuxer's last, empty packet flushes the decoder


def _ffmpeg_blocks(container, source, decoder, stream: DecodedStream, path: str, block_frames: int,
                   span: _AudioSpan) -> Iterator[np.ndarray]:
    import av

    pending: list[np.ndarray] = []
    pending_frames = 0
    try:
        with container:
            for frame in _decoded_frames(container, source, decoder):
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
        span.check()
        raise AnalysisError(ErrorCode.CORRUPT, f"decoding failed: {exc}", path=path, stage="decode") from None
    except OSError as exc:
        raise _io_error(exc, path) from None
    span.check()
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
