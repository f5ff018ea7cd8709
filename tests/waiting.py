"""One way for a test to wait: poll until something holds, or fail saying what was awaited and what was last seen.

``wait_until`` for plain code, ``wait_until_async`` inside an event loop (the
predicate may then be a coroutine function). Both:

- call ``predicate()`` every ``interval_s`` seconds (at least once, and once
  more at the deadline) and return its value as soon as it is truthy, or,
  when ``until`` is given, as soon as ``until(value)`` is true: the predicate
  can so return the observed quantity (a row count) and the test keeps it;
- treat an exception of a type in ``ignore`` as "not yet" (e.g. a database
  whose schema does not exist yet); any other exception propagates at once,
  which is how a predicate says "this will never happen" (a process died);
- raise ``AssertionError("timed out after T s waiting for MESSAGE; last
  observed: VALUE")`` when time runs out. ``message`` may be a callable,
  evaluated only then (to attach a log tail).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any, Awaitable, Callable

Message = str | Callable[[], str]


def _failure(timeout_s: float, message: Message, last: Any) -> AssertionError:
    text = message() if callable(message) else message
    return AssertionError(f"timed out after {timeout_s:g} s waiting for {text}; last observed: {last!r}")


def wait_until(predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.2,
               message: Message = "the condition", *, until: Callable[[Any], bool] | None = None,
               ignore: tuple[type[BaseException], ...] = ()) -> Any:
    """Poll ``predicate()`` until it holds; return its value (see the module docstring)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            last = predicate()
            if until(last) if until is not None else last:
                return last
        except ignore as exc:
            last = exc
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _failure(timeout_s, message, last)
        time.sleep(min(interval_s, remaining))


async def wait_until_async(predicate: Callable[[], Any | Awaitable[Any]], timeout_s: float, interval_s: float = 0.2,
                           message: Message = "the condition", *, until: Callable[[Any], bool] | None = None,
                           ignore: tuple[type[BaseException], ...] = ()) -> Any:
    """:func:`wait_until` inside an event loop: ``predicate()`` may return an awaitable, which is awaited."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            last = predicate()
            if inspect.isawaitable(last):
                last = await last
            if until(last) if until is not None else last:
                return last
        except ignore as exc:
            last = exc
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _failure(timeout_s, message, last)
        await asyncio.sleep(min(interval_s, remaining))
