"""The persister's :class:`~trackprint.persister.store.Store`, in a child process of its own.

Why: ``Store.apply`` costs about 90 µs of Python per row (the row checks, SQLAlchemy's
statements); the bus work of the same row (fetch, source-event check, ack) about as much
again. In one process both share the GIL, so the persister used one core and topped out
near 4,500 rows/s on SQLite however idle the machine. With the store in a child the two
halves of the pipeline (:meth:`PersisterService.step`) run on two cores.

What crosses the pipe is cheap on purpose: each message's raw bytes and its
:class:`Meta` go down (decoded again in the child, 4 µs; a pickled msgspec struct costs
35 µs), a :class:`BatchSummary` comes back. The database's own errors come back as
themselves (SQLAlchemy's exceptions pickle), so the service tells "unavailable" from
"poison" as before.

Failure handling: the child dies with the persister (``PR_SET_PDEATHSIG``); a child that
dies on its own (killed, out of memory) is :class:`StoreProcessDied`, which the service
treats like an unreachable database: the batch stays unacked and held, a probe write
starts a new child, and the batch is applied again (the dead child's transaction never
committed, or committed rows that re-apply as no change).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import msgspec

from trackprint.contracts import decode_result
from trackprint.persister.store import BatchSummary, Meta, Store
from trackprint.supervisor import die_with_parent, stop_pool


class StoreProcessDied(Exception):
    """The store's child process ended without answering (killed, out of memory)."""


_store: Store | None = None  # the child's own Store


def _open_store(url: str, options: dict[str, Any]) -> None:
    global _store
    die_with_parent()
    # Stopping is the persister's decision: a Ctrl-C or a service manager's SIGTERM reaches the whole
    # process group, and the batch in hand must still be committed here before the persister acks it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _store = Store(url, **options)


def _decoded_or_raw(data: bytes) -> Any:
    """What the store is handed for one message: the decoded result, or the raw bytes it records as invalid."""
    try:
        return decode_result(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return data


def _apply(items: list[tuple[bytes, Meta]]) -> BatchSummary:
    return _store.apply([(_decoded_or_raw(data), meta) for data, meta in items])


def _call(method: str, *args: Any) -> Any:
    return getattr(_store, method)(*args)


class StoreProcess:
    """:class:`Store`'s operations, awaited, each run by the one child process that holds the Store."""

    def __init__(self, url: str, **options: Any):
        self.url, self.options = url, options
        self._pool: ProcessPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"StoreProcess({self.url!r})"

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # fork: the child starts in milliseconds with everything imported; it opens its own connections
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"),
                                             initializer=_open_store, initargs=(self.url, self.options))
        return self._pool

    async def _run(self, fn, *args: Any) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor(), fn, *args)
        except BrokenProcessPool as exc:
            self._forget()
            raise StoreProcessDied(f"the store's process ended without answering ({exc})") from None

    def _forget(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def apply(self, items: list[tuple[bytes, Meta]]) -> BatchSummary:
        """``Store.apply`` of raw messages (bytes) and their :class:`Meta`: one transaction, committed."""
        return await self._run(_apply, items)

    async def migrate(self) -> None:
        await self._run(_call, "migrate")

    async def current_revision(self) -> str | None:
        return await self._run(_call, "current_revision")

    async def probe_write(self, host: str) -> None:
        await self._run(_call, "probe_write", host)

    async def pid(self) -> int:
        """The child's process id (starting it when there is none)."""
        return await self._run(os.getpid)

    async def close(self) -> None:
        if self._pool is None:
            return
        try:
            await self._run(_call, "close")
        except StoreProcessDied:
            pass
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(stop_pool, pool)
