"""Start a coroutine now, not on the event loop's next turn (Python 3.11 has no ``asyncio.eager_task_factory``).

``asyncio.ensure_future(coro)`` runs nothing: the task's first step waits behind every callback already ready on
the loop (on a busy live host: the rest of a feed's frame, other routes' turns), 0.4-0.5 ms at p50 on the 2-core
machine per hop (benchmarks/live_latency.py, issue 13), and the hot path had three such hops (the route's turn,
the intent write, the gateway). ``start_now`` runs the coroutine on the caller's stack up to its first real
suspension (a socket read, an fsync on the journal's thread); only the rest becomes a task. A coroutine that
finishes without suspending gives a done future, an error in that first step an errored one, as with a task.

Semantics kept: the returned future is a Task from the first suspension on (cancel it to cancel the coroutine,
which sees ``CancelledError`` where it waits); the coroutine resumes when the future it waits for is done, as
under ``Task``. What differs: the first step runs inside the caller (so it must not expect the caller to have
finished, e.g. to have stored the future it is about to get).
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def start_now(coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """Run ``coro`` until it first suspends; the rest as a task (see the module's docstring)."""
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        done.set_result(stop.value)
        return done
    except Exception as exc:  # as a task would: delivered where the future is awaited
        failed: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        failed.set_exception(exc)
        return failed
    return asyncio.ensure_future(_rest(coro, yielded))


async def _rest(coro: Coroutine[Any, Any, T], yielded: Any) -> T:
    """Drive the rest of a started coroutine: wait for what it waits for, then resume it (Task.__step's job)."""
    while True:
        cancel: BaseException | None = None
        if yielded is None:  # a bare yield (asyncio.sleep(0)): one loop turn
            await asyncio.sleep(0)
        else:
            try:
                await _wait(yielded)
            except asyncio.CancelledError as exc:  # this task was cancelled: the coroutine is, where it waits
                cancel = exc
        try:
            yielded = coro.throw(cancel) if cancel is not None else coro.send(None)
        except StopIteration as stop:
            return stop.value


@types.coroutine
def _wait(fut: asyncio.Future[Any]) -> Generator[Any, None, None]:
    """Wait until ``fut`` is done without taking its outcome (the coroutine takes it when resumed: its error or
    cancellation is the coroutine's to see). An exception that is not ``fut``'s own (this task was cancelled)
    goes on to the caller."""
    # even when done (it finished before this task's first step), the wake-up goes through the future's callbacks,
    # as under Task: the callbacks added before the coroutine waited (a tracer's stamps) run before it resumes
    fut._asyncio_future_blocking = True  # the protocol by which Task waits for a yielded future
    try:
        yield fut
    except BaseException as exc:
        if not fut.done():
            raise
        own = isinstance(exc, asyncio.CancelledError) if fut.cancelled() else exc is fut.exception()
        if not own:
            raise
