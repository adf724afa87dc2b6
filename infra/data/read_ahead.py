"""An iterator run on a second thread, a few items ahead of its consumer.

The streamed replay's reading (Parquet/zstd decode in pyarrow, event building in numpy, the compiled merge)
mostly runs without the GIL, and so does the compiled kernel: on a second core they overlap. The queue is
bounded (``depth`` items), so memory stays bounded; an error in the producer is raised in the consumer; a
consumer that stops early stops the producer (``close``/garbage collection of the generator).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()
_POLL_S = 0.05  # how often a producer blocked on a full queue checks whether the consumer has gone


def read_ahead(it: Iterator[T], depth: int = 3) -> Iterator[T]:
    """``it``'s items, produced on a daemon thread up to ``depth`` ahead."""
    q: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(max(int(depth), 1))
    stop = threading.Event()

    def put(item: tuple[object, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for x in it:
                if not put((x, None)):
                    return
        except BaseException as e:  # handed to the consumer, raised there
            put((_END, e))
            return
        put((_END, None))

    t = threading.Thread(target=work, name="stream-read-ahead", daemon=True)
    t.start()
    return _consume(q, stop, t)


def _consume(q: queue.Queue[tuple[object, BaseException | None]], stop: threading.Event,
             t: threading.Thread) -> Iterator[T]:
    try:
        while True:
            x, err = q.get()
            if x is _END:
                if err is not None:
                    raise err
                return
            yield x  # type: ignore[misc]
    finally:
        stop.set()
        t.join()
