"""The one driver loop of the kernel in external mode (paper, live, replay-check, the tests' venue driver), and
the cursor of the backtest's internal mode over a chunked stream.

The kernel (``core.kernel.route_step``, through ``core.replay.step``) runs until it needs something it cannot
know itself: a risk verdict for a candidate open, or the outcome of legs whose venue answers. This generator
runs it over one chunk and hands each stop to the caller, who answers (``resolve_candidate``, or
``inject_report`` for every settled leg) before asking for the next turn. Every mode walks the same turns, so
a decision taken live is the decision a replay of the same events takes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .events import EventBatch
from .paper_venue import NO_MORE_EVENTS
from .replay import step
from .route_state import ST_DONE, ST_NEED_FILLS, ST_NEED_RISK, RouteState


@dataclass(frozen=True)
class Turn:
    """Where the kernel stopped: ``status`` (ST_NEED_RISK, ST_NEED_FILLS or ST_DONE) and the time of the next
    event it has not run (``NO_MORE_EVENTS`` at the chunk's end): legs due before it are the ones to settle."""

    status: int
    next_ts: int

    @property
    def needs_risk(self) -> bool:
        return self.status == ST_NEED_RISK

    @property
    def needs_fills(self) -> bool:
        return self.status == ST_NEED_FILLS

    @property
    def done(self) -> bool:
        return self.status == ST_DONE


def kernel_turns(state: RouteState, chunk: EventBatch, final: bool, params: np.ndarray,
                 before_step: Callable[[], None] | None = None) -> Iterator[Turn]:
    """Run the kernel over ``chunk`` (``final``: nothing comes after it), yielding after every stop; the last
    turn is ``done``. ``before_step`` runs before each step (replay-check sets live's flatten flag there)."""
    i, n = 0, len(chunk)
    while True:
        if before_step is not None:
            before_step()
        status, i = step(state, chunk, i, n, final, False, params)
        yield Turn(status, int(chunk.ts[i]) if i < n else NO_MORE_EVENTS)
        if status == ST_DONE:
            return


class StreamCursor:
    """The kernel in internal mode over a chunked stream (the backtest without the whole stream in memory):
    runs it chunk after chunk, the last one ``final``; stops where the kernel asks a question (a risk verdict)
    and resumes there."""

    def __init__(self, chunks: Iterator[EventBatch]) -> None:
        self._it = chunks
        self.cur: EventBatch | None = next(chunks, None)
        self.nxt: EventBatch | None = next(chunks, None) if self.cur is not None else None
        self.pos = 0

    def run(self, state: RouteState, params: np.ndarray) -> int:
        """Kernel status: ST_DONE once the whole stream is replayed, else the question it stopped at."""
        while self.cur is not None:
            final = self.nxt is None
            status, self.pos = step(state, self.cur, self.pos, len(self.cur), final, True, params)
            if status != ST_DONE:
                return status
            if final:
                self.cur = None
                break
            self.cur, self.nxt, self.pos = self.nxt, next(self._it, None), 0
        return ST_DONE
