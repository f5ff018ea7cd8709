"""Reading fingerprints back out of the database (for ``similar`` and ``export``)."""

from __future__ import annotations

from typing import Iterator

from sqlalchemy import create_engine, select

from trackprint.db import normalize_url
from trackprint.fingerprint import DIMENSIONS, FINGERPRINT_VERSION


def iter_fingerprints(db_url: str, *, include_stale: bool = True) -> Iterator[dict]:
    """Active (not tombstoned) tracks with a fingerprint: path, version, stale flag, engine, 25 values."""
    from trackprint.persister.models import track_fingerprints, tracks

    t, f = tracks.c, track_fingerprints.c
    query = (
        select(t.path, f.fingerprint_version, f.engine, f.duration_s, f.analyzed_at, *[f[name] for name in DIMENSIONS])
        .select_from(tracks.join(track_fingerprints, f.track_id == t.id))
        .where(t.state == "active")
        .order_by(t.path)
    )
    if not include_stale:
        query = query.where(f.fingerprint_version == FINGERPRINT_VERSION)
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            for row in conn.execute(query):
                m = row._mapping
                yield {
                    "path": m["path"],
                    "fingerprint_version": m["fingerprint_version"],
                    "stale": m["fingerprint_version"] != FINGERPRINT_VERSION,
                    "engine": m["engine"],
                    "duration_s": m["duration_s"],
                    "analyzed_at": m["analyzed_at"].isoformat() if m["analyzed_at"] else None,
                    **{name: m[name] for name in DIMENSIONS},
                }
    finally:
        engine.dispose()
