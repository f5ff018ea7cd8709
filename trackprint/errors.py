"""The one error taxonomy shared by both engines, the services and the CLI.

Every failure anywhere in trackprint is reported as an :class:`ErrorCode` plus
a human message that names the file, the stage and the reason. The codes are a
stable contract: the Rust server answers with the same strings, the persister
stores them in ``analysis_failures.code`` and people query them.
"""

from __future__ import annotations

import enum


class ErrorCode(str, enum.Enum):
    """Why a file has no fingerprint. Never merge two codes: people filter on them."""

    NOT_FOUND = "not_found"  # the path does not exist (any more)
    NOT_A_FILE = "not_a_file"  # a directory, socket, device...
    EMPTY_FILE = "empty_file"  # zero bytes (or the first read returned nothing)
    UNSUPPORTED_FORMAT = "unsupported_format"  # not audio, or a codec this engine cannot decode
    CORRUPT = "corrupt"  # the bytes are damaged: the stream cannot be opened or decoded, a frame failed its checksum
    TRUNCATED = "truncated"  # the file ends before the end its container declares (it was cut)
    # (the rule between the two, shared by both engines: docs/fingerprint-spec.md, "Outcomes")
    TOO_SHORT = "too_short"  # less audio than the spec's minimum duration
    OUTSIDE_LIBRARY = "outside_library"  # path escapes the configured library roots
    TIMEOUT = "timeout"  # the analysis deadline passed
    INTERNAL = "internal"  # a bug: always reported with a traceback in the logs
    # Added codes (see docs/fingerprint-spec.md "Outcomes"):
    TOO_LARGE = "too_large"  # file size or duration above the configured cap
    IO_ERROR = "io_error"  # the operating system failed a read (EIO, dead mount)
    BUSY = "busy"  # the Rust server is saturated (HTTP 503); transient
    ENGINE_UNAVAILABLE = "engine_unavailable"  # the requested engine cannot run
    INVALID_MESSAGE = "invalid_message"  # a bus message failed validation

    @property
    def is_transient(self) -> bool:
        """True when retrying the same file later may succeed."""
        return self in _TRANSIENT


_TRANSIENT = {ErrorCode.TIMEOUT, ErrorCode.BUSY, ErrorCode.IO_ERROR, ErrorCode.ENGINE_UNAVAILABLE}


class AnalysisError(Exception):
    """A typed, expected failure to fingerprint one file.

    ``stage`` is where it happened (``open``, ``probe``, ``decode``,
    ``analyse``...), so a log line reads "FILE: decode: corrupt: REASON".
    """

    def __init__(self, code: ErrorCode, message: str, *, path: str | None = None, stage: str = "analyse"):
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.path = path
        self.stage = stage

    def __str__(self) -> str:
        return describe(self.path, self.stage, self.code, self.message)


def describe(path: str | None, stage: str, code: ErrorCode | str, reason: str) -> str:
    """The one human spelling of a failure: "PATH: STAGE: CODE: REASON" (logs, the CLI, status)."""
    where = f"{path}: " if path else ""
    return f"{where}{stage}: {ErrorCode(code).value}: {reason}"
