"""Databases with known tracks for the query, similar, playlist and beets tests, written through the persister.

- :func:`store_rows`: FingerprintResults with chosen values and tags, applied by ``Store.apply``
  (the persister's own write path), so every expected row is known exactly;
- :func:`store_files`: real files analysed by the Python engine, their tags read by
  :func:`trackprint.tags.read_tags`: what the analyzer would publish, stored the same way.
"""

from __future__ import annotations

import zlib

from trackprint.contracts import DecodeFacts, Fingerprint, FingerprintResult, Tags, Timings
from trackprint.fingerprint import DIMENSIONS, FINGERPRINT_VERSION, RANGES
from trackprint.persister.store import Meta, Store


def values_for(path: str, **chosen: float) -> dict[str, float]:
    """All 25 values: ``chosen`` ones as given, the others spread deterministically by the path inside RANGES."""
    seed = zlib.crc32(path.encode())
    out = {}
    for i, name in enumerate(DIMENSIONS):
        lo, hi = RANGES[name]
        hi = min(hi, lo + 100.0) if name not in ("spectral_centroid", "spectral_rolloff") else 8000.0
        frac = ((seed >> (i % 24)) % 97) / 97.0
        out[name] = lo + (hi - lo) * (0.2 + 0.6 * frac)
    out.update(chosen)
    return out


def result(path: str, values: dict[str, float], tags: Tags | None, seq: int, duration_s: float = 200.0,
           version: int = FINGERPRINT_VERSION) -> FingerprintResult:
    return FingerprintResult(
        path=path, fingerprint=Fingerprint(**values), fingerprint_version=version, engine="python",
        decode=DecodeFacts(codec="flac", container="flac", sample_rate=44100, channels=2,
                           decoded_duration_s=duration_s),
        timings=Timings(total_s=0.1), content_id=f"flac-{zlib.crc32(path.encode()):08x}", source_seq=seq, tags=tags)


def store_rows(db_url: str, rows: list[tuple[str, dict[str, float], Tags | None]]) -> None:
    store = Store(db_url)
    try:
        store.migrate()
        summary = store.apply([(result(path, values, tags, i + 1), Meta(i + 1))
                               for i, (path, values, tags) in enumerate(rows)])
        assert summary.persisted == len(rows), summary.outcomes
    finally:
        store.close()


def store_files(db_url: str, paths) -> dict[str, FingerprintResult]:
    """Analyse ``paths`` (Python engine), read their tags, persist: path -> the stored result."""
    from trackprint.analyzer.engines import python_outcome
    from trackprint.pyengine.identity import content_id
    from trackprint.tags import read_tags

    store = Store(db_url)
    out = {}
    try:
        store.migrate()
        batch = []
        for i, path in enumerate(paths):
            outcome = python_outcome(str(path))
            assert outcome.error is None, (path, outcome.error)
            message = FingerprintResult(path=str(path), fingerprint=outcome.fingerprint,
                                        fingerprint_version=outcome.fingerprint_version, engine="python",
                                        decode=outcome.decode, timings=outcome.timings,
                                        content_id=content_id(str(path)), source_seq=i + 1, tags=read_tags(path))
            batch.append((message, Meta(i + 1)))
            out[str(path)] = message
        assert store.apply(batch).persisted == len(batch)
    finally:
        store.close()
    return out
