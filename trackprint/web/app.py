"""The HTTP API and the page: one Starlette application (see :mod:`trackprint.web` for the schema).

Read-only: no endpoint writes to the database, the bus or the files, and no endpoint analyses a file (a
path that is not in the library is ``not_found``; ``trackprint similar`` on the command line analyses
such a file on the spot, an HTTP request never makes the server read an arbitrary path).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from trackprint.fingerprint import DIMENSIONS
from trackprint.web.library import Library, Snapshot, folder_of
from trackprint.web.live import Live

SCHEMA = "trackprint.api/1"
STATIC = Path(__file__).parent / "static"
DEFAULT_LIMIT, MAX_LIMIT = 50, 1000
DEFAULT_K, MAX_K = 10, 200
DEFAULT_LENGTH, MAX_LENGTH = 20, 500
MAP_POINTS, MAX_MAP_POINTS = 20_000, 1_000_000


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse({"schema": SCHEMA, **body}, status_code=status,
                        headers={"Cache-Control": "no-store"})


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be an integer, got {text!r}") from None
    if not low <= value <= high:
        raise ApiError(400, "bad_request", f"{name} must be between {low} and {high}, got {value}")
    return value


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise ApiError(400, "bad_request", f"the query parameter {name!r} is required")
    return value


def _features(values) -> dict[str, float]:
    return {name: float(values[d]) for d, name in enumerate(DIMENSIONS)}


def _position(snap: Snapshot, path: str) -> int:
    i = snap.index.get(path)
    if i is None:
        from trackprint.paths import canonical

        i = snap.index.get(canonical(path))
    if i is None:
        raise ApiError(404, "not_found", f"{path}: not a fingerprinted track of this library (current "
                                         "fingerprint version); /api/tracks?q=... finds paths")
    return i


def _match(snap: Snapshot, path: str, distance: float, track: dict) -> dict[str, Any]:
    """One similar or playlist track: its path, distance, tags (None when absent), folder and map group."""
    from trackprint.web.library import _title

    i = snap.index.get(path)
    return {"path": path, "distance": round(float(distance), 6),
            "title": _title(track.get("artist"), track.get("title")),
            **{tag: track.get(tag) for tag in ("artist", "album", "genre", "year")},
            "group": snap.group(i) if i is not None else folder_of(path), "folder": folder_of(path)}


def _flag(request: Request, name: str) -> bool:
    text = request.query_params.get(name, "").lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise ApiError(400, "bad_request", f"{name} must be 1/true or 0/false, got {text!r}")


def _float(request: Request, name: str) -> float | None:
    text = request.query_params.get(name)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be a number, got {text!r}") from None
    if not value >= 0:
        raise ApiError(400, "bad_request", f"{name} must be 0 or more, got {text!r}")
    return value


def create_app(db_url: str, *, nats_url: str | None = None, data_dir: Path | None = None,
               run_state: Callable[[], dict] | None = None, federate: dict[str, str] | None = None) -> Starlette:
    """The application for one database; ``data_dir`` (the watcher's state, run.json, the lock) and
    ``nats_url`` make the progress and the bus part of /api/status; ``federate`` maps service names to
    their own /metrics URLs (see :mod:`trackprint.web.metrics`)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    from trackprint.web.metrics import FederatedCollector, LibraryCollector

    library = Library(db_url)
    live = Live(db_url, nats_url, data_dir, run_state=run_state)
    registry = CollectorRegistry(auto_describe=False)

    def bus_report() -> dict:
        return live.report().get("bus") or {}

    registry.register(LibraryCollector(db_url, bus_report))
    if federate:
        registry.register(FederatedCollector(federate))

    def snapshot() -> Snapshot:
        from sqlalchemy.exc import SQLAlchemyError

        from trackprint.persister.db import DatabaseMissing
        from trackprint.status import unreadable

        try:
            return library.snapshot()
        except (DatabaseMissing, SQLAlchemyError) as exc:
            raise ApiError(503, "no_database", unreadable(exc, db_url) or str(exc)) from None

    def api(handler):
        from trackprint.search import NothingToCompare, SeedNotFound

        def endpoint(request: Request) -> Response:
            try:
                return handler(request)
            except ApiError as exc:
                return _json({"error": {"code": exc.code, "message": exc.message}}, exc.status)
            except (SeedNotFound, NothingToCompare) as exc:  # tombstoned since the library was read
                return _json({"error": {"code": "not_found", "message": str(exc)}}, 404)
        endpoint.__name__ = handler.__name__
        return endpoint

    # -- endpoints --------------------------------------------------------------------------------------------
    def status(request: Request) -> Response:
        return _json(live.report())

    def tracks(request: Request) -> Response:
        q = request.query_params.get("q", "").strip()
        limit = _int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        sort = request.query_params.get("sort") or None
        snapshot()  # 503 when there is no database yet
        items, how = _find(db_url, q, limit, sort, library.engine())
        return _json({"query": q, "query_language": how, "sort": sort, "limit": limit, "count": len(items),
                      "items": items})

    def similar(request: Request) -> Response:
        from trackprint.search import similar_to

        snap = snapshot()
        seeds = [snap.paths[_position(snap, p)] for p in request.query_params.getlist("path")]
        if not seeds:
            raise ApiError(400, "bad_request", "the query parameter 'path' is required (repeat it for several seeds)")
        k = _int(request, "k", DEFAULT_K, 1, MAX_K)
        exclude = _flag(request, "exclude_seed_albums")
        found = similar_to(db_url, seeds, k, exclude_seed_albums=exclude, engine=library.engine())
        return _json({"path": seeds[0], "seeds": found.seeds, "k": k, "exclude_seed_albums": exclude,
                      "library_size": len(snap),
                      "distance": "rms of robust z-scores, equal weight per feature group (trackprint.similarity; 0 identical, "
                                  "~1 one typical spread apart); several seeds: rms of the distances to each",
                      "items": [_match(snap, m.path, m.distance, m.track) for m in found.matches]})

    def one(request: Request) -> Response:
        snap = snapshot()
        i = _position(snap, _required(request, "path"))
        values = snap.matrix[i]
        percentiles = snap.percentiles(values)
        return _json({
            "path": snap.paths[i], "engine": snap.engines[i], "duration_s": snap.durations[i],
            "title": snap.titles[i], "genre": snap.genres[i], "folder": folder_of(snap.paths[i]),
            "library_size": len(snap),
            "features": [{"name": name, "value": float(values[d]), "percentile": round(float(percentiles[d]), 2),
                          "library_median": float(snap.center[d]), "z": round(float(snap.z[i, d]), 4)}
                         for d, name in enumerate(DIMENSIONS)],
        })

    def playlist(request: Request) -> Response:
        from trackprint.search import smooth_playlist

        snap = snapshot()
        seed = snap.paths[_position(snap, _required(request, "seed"))]
        length = _int(request, "length", DEFAULT_LENGTH, 1, MAX_LENGTH)
        tempo, loudness = _float(request, "max_tempo_step"), _float(request, "max_loudness_step")
        chain = smooth_playlist(db_url, seed, length, max_tempo_step=tempo, max_loudness_step=loudness,
                                engine=library.engine())
        items = [{**_match(snap, m.path, m.distance, m.track), "distance_to_previous": round(m.distance, 6)}
                 for m in chain]
        for item in items:
            del item["distance"]
        return _json({"seed": seed, "length": length, "max_tempo_step": tempo, "max_loudness_step": loudness,
                      "method": "nearest-neighbour chain (each next track the nearest not yet played, within the "
                                "tempo and loudness steps)", "count": len(items), "items": items})

    def map_(request: Request) -> Response:
        snap = snapshot()
        limit = _int(request, "max_points", MAP_POINTS, 1, MAX_MAP_POINTS)
        coords, explained = snap.projection()
        groups: dict[str, int] = {}
        for j in range(len(snap)):
            group = snap.group(j)
            groups[group] = groups.get(group, 0) + 1
        # a large library: an even sample of the points (in path order), the same on every call
        shown = range(len(snap)) if len(snap) <= limit else np.linspace(0, len(snap) - 1, limit).astype(int)
        points = []
        for j in shown:
            group = snap.group(j)
            points.append({"path": snap.paths[j], "x": round(float(coords[j, 0]), 5),
                           "y": round(float(coords[j, 1]), 5), "group": group, "title": snap.titles[j]})
        return _json({"count": len(snap), "shown": len(points), "sampled": len(points) < len(snap),
                      "projection": "pca of robust z-scores", "group_by": snap.group_by(),
                      "explained_variance": [round(v, 4) for v in explained],
                      "groups": [{"name": g, "count": n} for g, n in sorted(groups.items(), key=lambda kv: (-kv[1], kv[0]))],
                      "points": points})

    def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    routes = [
        Route("/", index),
        Route("/api/status", api(status)),
        Route("/api/tracks", api(tracks)),
        Route("/api/tracks/similar", api(similar)),
        Route("/api/tracks/one", api(one)),
        Route("/api/playlist", api(playlist)),
        Route("/api/map", api(map_)),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        library.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.library, app.state.live, app.state.registry = library, live, registry
    return app


# -- /api/tracks ------------------------------------------------------------------------------------------------
def _find(db_url: str, q: str, limit: int, sort: str | None, engine) -> tuple[list[dict], str]:
    """(items, the query language used): ``trackprint.query`` when it is installed, else a path substring."""
    try:
        from trackprint import query  # noqa: F401 - the query language is installed
    except ImportError:
        return _by_path(db_url, q, limit), "path substring (case-insensitive)"
    try:
        from trackprint.search import find  # the cached query columns when at hand (re-read in the background)

        rows = find(db_url, q, sort=sort, limit=limit, engine=engine)
    except ValueError as exc:  # query.QueryError: a malformed expression or an unknown field
        raise ApiError(400, "bad_query", str(exc)) from None
    return [_item(row) for row in rows], "trackprint query"


def _item(row: dict) -> dict:
    features = {name: row[name] for name in DIMENSIONS if row.get(name) is not None}
    info = {k: v for k, v in row.items() if k not in DIMENSIONS and k not in ("path", "state") and v not in (None, "")}
    return {"path": row["path"], "state": row.get("state"), "folder": folder_of(row["path"]), "info": info,
            "features": features if len(features) == len(DIMENSIONS) else None}


def _by_path(db_url: str, q: str, limit: int) -> list[dict]:
    from sqlalchemy import func, select

    from trackprint.persister.db import make_engine
    from trackprint.persister.models import track_fingerprints, tracks

    T, F = tracks.c, track_fingerprints.c
    query = (select(T.path, T.state, T.last_failure_code, F.engine, F.duration_s, F.fingerprint_version,
                    *[F[name] for name in DIMENSIONS])
             .select_from(tracks.outerjoin(track_fingerprints, F.track_id == T.id))
             .where(T.state != "deleted").order_by(T.path).limit(limit))
    if q:
        escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(func.lower(T.path).like(f"%{escaped}%", escape="\\"))
    engine = make_engine(db_url, must_exist=True)
    try:
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
    finally:
        engine.dispose()
    out = []
    for row in rows:
        if row["state"] != "failed":
            row.pop("last_failure_code")
        out.append(_item(row))
    return out


def static_files() -> list[str]:
    return sorted(os.listdir(STATIC))
