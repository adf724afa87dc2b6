"""Walk-forward blocks for tuning: rolling train -> test, and a final held-out block no search ever reads.

The span ``[lo, hi)`` is cut in time (nanoseconds since the epoch, UTC): the last ``holdout`` share is the
held-out block; the rest is ``folds + 1`` equal blocks. Fold ``i`` searches on block ``i`` and is judged on
block ``i + 1`` (the block right after it: no decision uses data after its own time). The final choice is a
search on the last block before the held-out block, judged once on the held-out block and reported apart.
Pure functions: no I/O.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ..errors import UserError


@dataclass(frozen=True)
class Fold:
    """One search window and the window it is judged on (``test`` follows ``train`` with no overlap)."""

    index: int
    train: tuple[int, int]
    test: tuple[int, int]
    final: bool = False  # the held-out fold: its test block is the held-out block

    @property
    def name(self) -> str:
        return "holdout" if self.final else f"fold{self.index}"


def make_folds(lo: int, hi: int, k: int, holdout: float) -> list[Fold]:
    """``k`` walk-forward folds then the held-out fold (last in the list, ``final=True``)."""
    if k < 1:
        raise UserError("--folds must be at least 1")
    if not 0.0 < holdout < 1.0:
        raise UserError("--holdout must be between 0 and 1 (the held-out share of the time span)")
    if hi - lo < 2 * (k + 2):
        raise UserError("the data span is too short for that many folds")
    cut = hi - int((hi - lo) * holdout)
    edges = [lo + (cut - lo) * j // (k + 1) for j in range(k + 2)]
    folds = [Fold(i, (edges[i], edges[i + 1]), (edges[i + 1], edges[i + 2])) for i in range(k)]
    folds.append(Fold(k, (edges[k], edges[k + 1]), (cut, hi), final=True))
    return folds


def slices(window: tuple[int, int], n: int) -> list[tuple[int, int]]:
    """``window`` cut into ``n`` consecutive equal slices (a trial reports after each: early stopping)."""
    a, b = window
    if n < 1 or b - a < n:
        raise UserError(f"cannot cut a window into {n} slices")
    edges = [a + (b - a) * j // n for j in range(n + 1)]
    return list(itertools.pairwise(edges))


def holdout_start(folds: list[Fold]) -> int:
    """Where the held-out block begins: every search window must end at or before it."""
    return next(f.test[0] for f in folds if f.final)
