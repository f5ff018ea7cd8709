"""Engine selection for ``analyze``: the Rust server, with per-file Python fallback."""

from __future__ import annotations

from typing import Any, Iterator

from trackprint.errors import ErrorCode


def analyze_with_rust(paths: list[str], jobs: int, server: str | None, *, fallback: bool) -> Iterator[dict[str, Any]]:
    """Until the Rust server exists: ``auto`` means Python, ``rust`` fails clearly for every path."""
    from trackprint.commands.analyze import _results, failure

    if fallback:
        yield from _results(paths, "python", jobs, server)
        return
    for path in paths:
        yield failure(
            path,
            ErrorCode.ENGINE_UNAVAILABLE,
            f"{path}: analyse: engine_unavailable: the Rust engine (trackprint-server) is not built in this "
            "version; use --engine python or --engine auto",
            "rust",
        )
