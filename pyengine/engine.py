"""The Python engine: one file in, 25 numbers (or a typed error) out.

Glue between :mod:`trackprint.pyengine.decode` (file I/O) and :mod:`trackprint.pyengine.features`
(pure computation): stream decoded blocks into the accumulator, check the
deadline between blocks, and refuse to fingerprint a truncated stream.
Success is an :class:`~trackprint.contracts.EngineOutcome`; a failure is an
:class:`~trackprint.errors.AnalysisError` with its code and stage
(``trackprint.analyzer.engines.python_outcome`` turns it into an outcome).
"""

from __future__ import annotations

import time

from trackprint.pyengine import decode, sniff
from trackprint.pyengine.features import FingerprintAccumulator, frame_params
from trackprint.contracts import DecodeFacts, EngineOutcome, Fingerprint, Timings
from trackprint.errors import AnalysisError, ErrorCode
from trackprint.fingerprint import FINGERPRINT_VERSION
from trackprint.paths import Library

BLOCK_SUB_BLOCKS = 30  # 3 s per decoded block: bounded memory, few Python round trips


def block_frames(sample_rate: int) -> int:
    return frame_params(sample_rate).sub_block * BLOCK_SUB_BLOCKS


def analyze_file(
    path: str,
    *,
    library: Library | None = None,
    deadline: float | None = None,
    max_bytes: int = decode.DEFAULT_MAX_BYTES,
    max_duration_s: float = decode.DEFAULT_MAX_DURATION_S,
) -> EngineOutcome:
    """Fingerprint one file. Raises :class:`AnalysisError` with a typed code on any failure.

    ``deadline`` is a ``time.monotonic()`` value; work stops at the next block after it. With
    ``library``, a path outside its roots (or a symlink leading out of them) is ``outside_library``.
    """
    started = time.monotonic()
    refusal = library.refusal(path) if library is not None else None
    if refusal:
        raise AnalysisError(ErrorCode.OUTSIDE_LIBRARY, refusal, path=path, stage="open")
    st = decode.check_file(path, max_bytes)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise AnalysisError(ErrorCode.IO_ERROR, f"cannot open: {exc.strerror}", path=path, stage="open") from None
    with handle:
        stream = decode.open_stream(handle, path, st.st_size, block_frames, deadline=deadline)
        if stream.declared_duration_s and stream.declared_duration_s > max_duration_s:
            raise AnalysisError(
                ErrorCode.TOO_LARGE,
                f"declared duration {stream.declared_duration_s:.0f} s is above the {max_duration_s:.0f} s limit",
                path=path,
                stage="probe",
            )
        accumulator = FingerprintAccumulator(stream.sample_rate, stream.channels)
        decode_s = 0.0
        max_frames = max_duration_s * stream.sample_rate
        blocks = iter(stream.blocks)
        while True:
            before = time.monotonic()
            block = next(blocks, None)
            decode_s += time.monotonic() - before
            if block is None:
                break
            try:
                accumulator.add(block)
            except AnalysisError as exc:
                exc.path = path
                raise
            if stream.frames_decoded > max_frames:
                raise AnalysisError(
                    ErrorCode.TOO_LARGE, f"longer than the {max_duration_s:.0f} s limit", path=path, stage="decode"
                )
            if deadline is not None and time.monotonic() > deadline:
                raise AnalysisError(
                    ErrorCode.TIMEOUT,
                    f"deadline passed after {stream.decoded_duration_s:.1f} s of audio",
                    path=path,
                    stage="analyse",
                )
        _check_complete(stream, path)  # with the file open: it may read the container's structure
    try:
        fingerprint = accumulator.finish()
    except AnalysisError as exc:
        exc.path = path
        raise
    total = time.monotonic() - started
    facts = DecodeFacts(
        codec=stream.codec,
        container=stream.container,
        sample_rate=stream.sample_rate,
        channels=stream.channels,
        decoded_duration_s=round(stream.decoded_duration_s, 6),
        declared_duration_s=None if stream.declared_duration_s is None else round(stream.declared_duration_s, 6),
        bits_per_sample=stream.bits_per_sample,
    )
    timings = Timings(total_s=round(total, 6), decode_s=round(decode_s, 6), analysis_s=round(total - decode_s, 6))
    return EngineOutcome(path=path, engine="python", fingerprint=Fingerprint(**fingerprint),
                         fingerprint_version=FINGERPRINT_VERSION, decode=facts, timings=timings)


def _check_complete(stream: decode.DecodedStream, path: str) -> None:
    """``truncated`` when decoding ended short of what the container promised and the file is
    shorter than its structure declares (or its structure declares no length); ``corrupt`` when
    the file is whole but audio is missing (damaged frames or pages were skipped). The Rust
    engine's ``check_complete`` is the same rule."""
    declared, decoded = stream.declared_duration_s, stream.decoded_duration_s
    if declared is not None and decoded < declared - decode.TRUNCATION_TOLERANCE_S:
        reason = f"decoded {decoded:.2f} s of the {declared:.2f} s the {stream.container} header declares"
        if stream.extent() == sniff.EXTENT_WHOLE:
            raise AnalysisError(
                ErrorCode.CORRUPT,
                f"{reason}, though the file is as long as its {stream.container} structure declares: "
                "damaged audio was skipped",
                path=path,
                stage="decode",
            )
        raise AnalysisError(ErrorCode.TRUNCATED, reason, path=path, stage="decode")
    if not stream.ends_cleanly:
        raise AnalysisError(
            ErrorCode.TRUNCATED,
            f"{stream.container} stream ends without its end-of-stream page (decoded {decoded:.2f} s)",
            path=path,
            stage="decode",
        )
    expected = stream.ogg_expected_s
    if expected is not None and decoded < expected - decode.ogg_shortfall_allowed(expected):
        raise AnalysisError(
            ErrorCode.CORRUPT,
            f"decoded {decoded:.2f} s of the {expected:.2f} s its last Ogg page marks: damaged pages were skipped",
            path=path,
            stage="decode",
        )
    if stream.frames_decoded == 0:
        raise AnalysisError(ErrorCode.TOO_SHORT, "the stream holds no audio samples", path=path, stage="decode")
