"""A venue's fills handed to the kernel (paper, live) count what the kernel counts for the legs it fills
itself (the backtest): the soak's paper runs differed from the backtest by ``legs_cut_by_known_depth``."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from arbitrage_lite.core.book import LEG_EXPIRE, LEG_FILL, NO_BOUND, Q_BOUND, Q_HAS_BOOK
from arbitrage_lite.core.kernel import C_LEGS_DEPTH_CUT, N_COUNTERS
from arbitrage_lite.core.replay import inject_report
from arbitrage_lite.core.route_state import L_ACTIVE, L_QTY, L_READY, L_SIDE, L_VENUE, RouteState
from arbitrage_lite.core.rules import SCALE


def _leg(ready: int, cut: bool) -> RouteState:
    s = RouteState.new(N_COUNTERS)
    v = 1
    s.quotes[v, Q_HAS_BOOK] = 1.0
    s.quotes[v, Q_BOUND + 1] = 101.0 if cut else NO_BOUND  # the asks past 101 were dropped for capacity
    s.legs[0, L_ACTIVE], s.legs[0, L_VENUE], s.legs[0, L_SIDE], s.legs[0, L_QTY] = 1, v, 1, 10 * SCALE
    s.legs[0, L_READY] = ready
    return s


def _counted(ready: int, cut: bool, qty: int) -> int:
    s = _leg(ready, cut)
    fills = [("t1", 100 * SCALE, qty, Decimal(0))] if qty else []
    inject_report(s, np.zeros(64), 0, fills)
    return int(s.counters[C_LEGS_DEPTH_CUT])


def test_a_short_fill_on_a_cut_side_is_counted_as_the_kernel_counts_it() -> None:
    assert _counted(LEG_FILL, True, 3 * SCALE) == 1  # it used up the known depth
    assert _counted(LEG_FILL, True, 0) == 1  # nothing known on that side at all
    assert _counted(LEG_FILL, True, 10 * SCALE) == 0  # filled whole
    assert _counted(LEG_FILL, False, 3 * SCALE) == 0  # short, but the book had every level: not a cut
    assert _counted(LEG_EXPIRE, True, 0) == 0  # no quote by its deadline: the walk never happened
