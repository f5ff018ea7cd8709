"""The web page and the HTTP API of trackprint: ``trackprint serve`` (read-only) and ``trackprint up``.

One Starlette application (:func:`trackprint.web.app.create_app`) served by uvicorn on loopback by
default; every JSON answer carries ``"schema": "trackprint.api/1"``, and docs/http-api.md documents each
endpoint's fields. Starlette + uvicorn because both are small, maintained and typed (Encode's ASGI stack:
Starlette is a routing layer of a few thousand lines with no required dependency beyond anyio, which
httpx already brings; uvicorn with h11, which httpx already brings too), synchronous endpoints run in a
thread pool so the numpy and SQLAlchemy code stays plain, and its TestClient is httpx.

- ``/``: the page (static/index.html, app.js, style.css: vanilla JS, no build step);
- ``/api/status``, ``/api/tracks``, ``/api/tracks/similar``, ``/api/tracks/one``, ``/api/playlist``,
  ``/api/map``: JSON (:mod:`trackprint.web.app`);
- ``/metrics``: Prometheus (:mod:`trackprint.web.metrics`).
"""

from __future__ import annotations

import socket
import sys
from typing import Callable

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: any free port); raises OSError (e.g. the port is in use)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def run_server(app, sock: socket.socket, *, announce: Callable[[str], None] | None = None) -> int:
    """Serve ``app`` on ``sock`` until SIGINT or SIGTERM (uvicorn's handlers: requests in flight finish)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    if announce:
        announce(url_of(sock))
    sys.stdout.flush()
    server.run(sockets=[sock])
    return 0
