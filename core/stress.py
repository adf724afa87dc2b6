"""Robustness scenarios: one transform of a route's market events and of the costs, pure (time passed in).

A :class:`Scenario` changes what the engine is fed -- never the engine. The stress campaign
(``scenarios.stress``) applies the very same transform before the backtest and before paper consume the data,
so both modes see identical stressed data. Every transform keeps the stream honest:

* time order: an event delayed by a lag becomes visible *later* (its replay time ``ts`` moves, the venue's
  own stamp ``ts_venue`` does not), never earlier; the batch is re-sorted stably (ties keep their order);
* causality: a shock starts at ``at_ns`` and touches nothing before it, so the run is identical to the
  baseline up to that instant;
* determinism: noise draws from a seeded generator.

Price shocks act on bar opens/closes, last prices and trades, and on an L2 book as a whole: inside the shock
the venue's book is re-issued shocked at each of its updates and re-issued as it is after the shock
(:func:`shock_book`; shocking the incremental level updates alone left a crossed book, so no quote at all).
Quote noise leaves L2 levels alone (per-level noise would cross the book). Slippage scenarios scale the
bar/snapshot cost model (half spread, impact); an L2 route's slippage comes from its book and is unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from .book import MAX_LEVELS
from .config import CostConfig, EngineConfig, VenueCosts
from .events import (
    K_BAR_CLOSE,
    K_BAR_OPEN,
    K_BOOK_END,
    K_CLEAR,
    K_FX,
    K_LAST,
    K_LEVEL,
    K_TRADE,
    VENUE_BINANCE,
    VENUE_FX,
    VENUE_UPBIT,
    EventBatch,
)

PRICE_KINDS = (K_BAR_OPEN, K_BAR_CLOSE, K_LAST, K_LEVEL, K_TRADE)
QUOTE_KINDS = (K_BAR_OPEN, K_BAR_CLOSE, K_LAST, K_TRADE)  # prices that stand alone (L2 levels are a book)
QUOTE_EVENT_KINDS = (K_BAR_OPEN, K_BAR_CLOSE, K_LAST, K_BOOK_END)  # events that refresh a venue's quote
BOOK_KINDS = (K_LEVEL, K_CLEAR, K_BOOK_END)
MARKET_KINDS = (*PRICE_KINDS, K_CLEAR, K_BOOK_END)  # a venue's market data (what an outage removes)
VENUE_NAMES = {VENUE_UPBIT: "upbit", VENUE_BINANCE: "binance"}
_COLS = ("ts", "ts_venue", "venue", "kind", "side", "px", "qty")

KINDS = ("baseline", "slippage", "fees", "price_shock", "noise", "stagger", "fx_shock", "outage")
ANCHORED = ("price_shock", "fx_shock", "outage")  # placed in market time by the campaign (``at_ns``)


@dataclass(frozen=True)
class Scenario:
    """One stress: ``kind`` says which fields matter.

    slippage: half spread and impact x ``factor``; fees: taker fees x ``factor``; price_shock: prices of
    ``venue`` (``route``, or every route) jump by ``move`` (-0.3 = 30 % down) at ``at_ns`` and come back
    linearly over ``duration_ns``; noise: every quote x (1 + N(0, ``noise_bps``)); stagger: ``venue``'s
    events reach the engine ``delay_ns`` late; fx_shock: KRW per USDT x (1 + ``move``) from ``at_ns`` for
    ``duration_ns``; outage: ``venue`` sends nothing (so no order fills there) from ``at_ns`` for ``duration_ns``.
    """

    name: str
    kind: str
    description: str = ""
    factor: float = 1.0
    venue: int = VENUE_UPBIT
    route: str | None = None  # price_shock: only this route's market (None: every route)
    move: float = 0.0
    at_ns: int | None = None
    duration_ns: int = 0
    delay_ns: int = 0
    noise_bps: float = 0.0
    seed: int = 0
    expect: str | None = None  # the check this scenario is a test of: "kill_switch" | "unhedged_within_policy"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"scenario {self.name}: unknown kind {self.kind!r}; known {list(KINDS)}")
        if self.factor <= 0 or self.duration_ns < 0 or self.delay_ns < 0 or self.noise_bps < 0:
            raise ValueError(f"scenario {self.name}: factor must be > 0, durations, delay and noise >= 0")
        if self.move <= -1.0:
            raise ValueError(f"scenario {self.name}: a move of {self.move} would take prices to zero or below")

    @property
    def needs_anchor(self) -> bool:
        return self.kind in ANCHORED and self.at_ns is None

    def anchored(self, at_ns: int, venue: int | None = None, route: str | None = None) -> Scenario:
        """The scenario placed at ``at_ns`` (and on ``venue`` / ``route`` when given)."""
        return dataclasses.replace(self, at_ns=at_ns, venue=self.venue if venue is None else venue,
                                   route=self.route if route is None else route)

    def apply_costs(self, costs: CostConfig) -> CostConfig:
        """The costs under this scenario (a route's own calibrated costs, or the run's)."""
        if self.kind == "slippage":
            return costs.model_copy(update={v: _scaled_slippage(getattr(costs, v), self.factor)
                                            for v in ("upbit", "binance")})
        if self.kind == "fees":
            f = Decimal(str(self.factor))
            return costs.model_copy(update={v: getattr(costs, v).model_copy(
                update={"taker_fee": getattr(costs, v).taker_fee * f}) for v in ("upbit", "binance")})
        return costs

    def apply_config(self, cfg: EngineConfig) -> EngineConfig:
        return cfg.model_copy(update={"costs": self.apply_costs(cfg.costs)})

    def apply_events(self, events: EventBatch, route: str) -> EventBatch:
        """``route``'s event stream under this scenario (the input is not modified)."""
        if self.needs_anchor:
            raise ValueError(f"scenario {self.name} has no time yet: anchor it (Scenario.anchored) first")
        if self.kind == "price_shock":
            return self._price_shock(events, route)
        if self.kind == "noise":
            return _noise(events, self.noise_bps, self.seed, route)
        if self.kind == "stagger":
            return delay_venue(events, self.venue, self.delay_ns)
        if self.kind == "fx_shock":
            return fx_shock(events, self.move, int(self.at_ns or 0), self.duration_ns)
        if self.kind == "outage":
            return drop_venue(events, self.venue, int(self.at_ns or 0), self.duration_ns)
        return events

    def _price_shock(self, events: EventBatch, route: str) -> EventBatch:
        if self.route is not None and self.route != route:
            return events
        at, dur = int(self.at_ns or 0), max(self.duration_ns, 1)
        events = shock_book(events, self.venue, self.move, at, dur)
        sel = (events.venue == self.venue) & np.isin(events.kind, QUOTE_KINDS) & (events.ts >= at) & (
            events.ts < at + dur)
        if not sel.any():
            return events
        px = events.px.copy()
        px[sel] = px[sel] * shock_factor(events.ts[sel], self.move, at, dur)
        return dataclasses.replace(events, px=px)

    def tradable_quotes(self, events: EventBatch, route: str, latency_ns: int) -> int:
        """How many of the shocked venue's quotes inside a price shock a leg could meet if sent when the shock is
        first seen (at its first quote there) with the venue's latency: a leg fills only at a quote the venue
        stamped at or after the leg arrived. 0: no crashed price on ``route`` can be traded (the data's quotes
        are too sparse for the shock)."""
        if self.kind != "price_shock" or (self.route is not None and self.route != route):
            return 0
        at = int(self.at_ns or 0)
        sel = (events.venue == self.venue) & np.isin(events.kind, QUOTE_EVENT_KINDS) & (events.ts >= at) & (
            events.ts < at + max(self.duration_ns, 1))
        if not sel.any():
            return 0
        ts, tv = events.ts[sel], events.ts_venue[sel]
        stamp = np.where(tv >= 0, tv, ts)  # the kernel's quote time (core.book.apply_market_event)
        return int((stamp >= ts[0] + latency_ns).sum())

    def to_dict(self) -> dict[str, object]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, 0, 0.0, "") or k == "kind"}
        out["venue"] = VENUE_NAMES.get(self.venue, str(self.venue))
        return out


def _scaled_slippage(v: VenueCosts, factor: float) -> VenueCosts:
    return v.model_copy(update={"half_spread_bps": v.half_spread_bps * factor,
                                "impact_bps_per_m_quote": v.impact_bps_per_m_quote * factor})


def _take(events: EventBatch, keep: np.ndarray) -> EventBatch:
    return EventBatch(**{c: getattr(events, c)[keep] for c in _COLS})


def _noise(events: EventBatch, bps: float, seed: int, route: str) -> EventBatch:
    """Every bar/last/trade price x (1 + N(0, bps)); the draw depends on the seed and the route only."""
    sel = np.isin(events.kind, QUOTE_KINDS) & (events.venue <= VENUE_BINANCE)
    salt = int.from_bytes(route.encode()[:8].ljust(8, b"\0"), "little")
    rng = np.random.default_rng([seed, salt])
    px = events.px.copy()
    px[sel] = px[sel] * (1.0 + rng.standard_normal(int(sel.sum())) * bps / 1e4)
    return dataclasses.replace(events, px=px)


def shock_factor(ts: np.ndarray, move: float, at_ns: int, duration_ns: int) -> np.ndarray:
    """The price multiplier at each ``ts``: 1 + move at the shock, back to 1 linearly at its end (1 outside)."""
    frac = (ts - at_ns) / max(duration_ns, 1)
    inside = (ts >= at_ns) & (ts < at_ns + max(duration_ns, 1))
    return np.where(inside, 1.0 + move * (1.0 - frac), 1.0)


def shock_book(events: EventBatch, venue: int, move: float, at_ns: int, duration_ns: int) -> EventBatch:
    """``venue``'s L2 book under a price shock in [at, at + duration).

    A book is incremental, so shocking the level updates alone is no crash: levels set before the shock keep
    their price beside shocked ones (a crossed book: no quote, no decision, the open trip cannot close) and the
    shocked levels no later update deletes stay for good (the book never uncrosses). So every batch of the
    venue (its level updates up to a BOOK_END) that starts inside the shock is replaced by the whole book as it
    stands after that batch, each price x the shock's factor at the batch's time (CLEAR, the best
    ``MAX_LEVELS`` bids and asks, BOOK_END: a snapshot); the first batch ending after the shock is replaced by
    the whole book unshocked, so the book heals. Before the shock nothing changes. The book is rebuilt from
    the venue's last CLEAR before the shock (a pure pass over the events, in Python: fine for the hours of L2
    a stress run loads, slow for days of raw diffs)."""
    bidx = np.flatnonzero((events.venue == venue) & np.isin(events.kind, BOOK_KINDS))
    ends = np.flatnonzero(events.kind[bidx] == K_BOOK_END)  # positions in bidx
    if ends.size == 0:
        return events
    starts = np.r_[0, ends[:-1] + 1]
    t_start, t_end = events.ts[bidx[starts]], events.ts[bidx[ends]]
    first = int(np.searchsorted(t_start, at_ns, side="left"))
    stop = at_ns + max(duration_ns, 1)
    if first >= ends.size or t_start[first] >= stop:
        return events
    last = min(first + int(np.searchsorted(t_end[first:], stop, side="left")), ends.size - 1)
    clears = np.flatnonzero(events.kind[bidx[:starts[first]]] == K_CLEAR)
    book: tuple[dict[float, float], dict[float, float]] = ({}, {})
    _apply_book(events, bidx[int(clears[-1]) if clears.size else 0:starts[first]], book)
    rows: list[tuple[int, int, int, int, int, float, float]] = []  # (position, ts, ts_venue, kind, side, px, qty)
    for b in range(first, last + 1):
        _apply_book(events, bidx[starts[b]:ends[b]], book)
        end = int(bidx[ends[b]])
        f = float(shock_factor(events.ts[end:end + 1], move, at_ns, duration_ns)[0])
        rows.extend(_snapshot_rows(end, int(events.ts[end]), int(events.ts_venue[end]), book, f,
                                   MAX_LEVELS if f != 1.0 else None))
    keep = np.ones(len(events), bool)
    keep[bidx[starts[first]:ends[last] + 1]] = False
    pos = np.r_[np.flatnonzero(keep), np.array([r[0] for r in rows], np.int64)]
    order = np.argsort(pos, kind="stable")  # a snapshot takes the place of its batch's BOOK_END
    new = {"ts": [r[1] for r in rows], "ts_venue": [r[2] for r in rows], "venue": [venue] * len(rows),
           "kind": [r[3] for r in rows], "side": [r[4] for r in rows], "px": [r[5] for r in rows],
           "qty": [r[6] for r in rows]}
    cols = {c: np.r_[getattr(events, c)[keep], np.asarray(new[c], getattr(events, c).dtype)][order] for c in _COLS}
    return EventBatch(**cols)


def _apply_book(events: EventBatch, idx: np.ndarray, book: tuple[dict[float, float], dict[float, float]]) -> None:
    """Level updates and clears at ``idx`` on ``book`` (bids, asks), as the kernel applies them."""
    for i in idx:
        k = events.kind[i]
        if k == K_CLEAR:
            book[0].clear()
            book[1].clear()
        elif k == K_LEVEL:
            px, qty, side = float(events.px[i]), float(events.qty[i]), book[1 if events.side[i] == 1 else 0]
            if px > 0.0 and qty > 0.0:
                side[px] = qty
            elif px > 0.0 and qty == 0.0:
                side.pop(px, None)


def _snapshot_rows(pos: int, ts: int, tv: int, book: tuple[dict[float, float], dict[float, float]], factor: float,
                   depth: int | None) -> list[tuple[int, int, int, int, int, float, float]]:
    """The book as one snapshot at ``ts``, prices x ``factor``: CLEAR, bids best first, asks best first, BOOK_END."""
    bids = sorted(book[0].items(), reverse=True)[:depth]
    asks = sorted(book[1].items())[:depth]
    return [(pos, ts, tv, K_CLEAR, 0, 0.0, 0.0),
            *[(pos, ts, tv, K_LEVEL, 0, p * factor, q) for p, q in bids],
            *[(pos, ts, tv, K_LEVEL, 1, p * factor, q) for p, q in asks],
            (pos, ts, tv, K_BOOK_END, 0, 0.0, 0.0)]


def delay_venue(events: EventBatch, venue: int, delay_ns: int) -> EventBatch:
    """``venue``'s events arrive ``delay_ns`` later: their replay time moves, the venue's stamp does not (so a
    quote is as old as it really is); the stream is re-sorted stably, nothing becomes visible earlier."""
    if delay_ns == 0:
        return events
    sel = events.venue == venue
    ts = events.ts.copy()
    ts_venue = np.where(sel & (events.ts_venue < 0), events.ts, events.ts_venue)  # keep the true stamp
    ts[sel] += delay_ns
    order = np.argsort(ts, kind="stable")
    cols = {c: getattr(events, c) for c in _COLS} | {"ts": ts, "ts_venue": ts_venue}
    return EventBatch(**{c: cols[c][order] for c in _COLS})


def drop_venue(events: EventBatch, venue: int, at_ns: int, duration_ns: int) -> EventBatch:
    """``venue`` is down in [at, at + duration): none of its market data arrives (no quote, so no fill)."""
    gone = (events.venue == venue) & np.isin(events.kind, MARKET_KINDS) & (events.ts >= at_ns) & (
        events.ts < at_ns + duration_ns)
    if not gone.any():
        return events
    return _take(events, ~gone)


def fx_shock(events: EventBatch, move: float, at_ns: int, duration_ns: int) -> EventBatch:
    """KRW per USDT x (1 + move) in [at, at + duration) (duration 0: to the end). The shock is known at ``at``:
    the rate then in force is re-issued shocked at ``at`` (stamped ``at``), and, when the shock ends, unshocked."""
    fx = (events.venue == VENUE_FX) & (events.kind == K_FX)
    end = at_ns + duration_ns if duration_ns > 0 else np.iinfo(np.int64).max
    inside = fx & (events.ts >= at_ns) & (events.ts < end)
    px = events.px.copy()
    px[inside] *= 1.0 + move
    before = np.flatnonzero(fx & (events.ts < at_ns))
    extra = []
    if before.size:
        k = int(before[-1])
        extra.append((at_ns, events.px[k] * (1.0 + move), events.qty[k]))
        last_inside = np.flatnonzero(inside)
        if duration_ns > 0 and end <= int(events.ts[-1]):
            src = int(last_inside[-1]) if last_inside.size else k
            extra.append((end, events.px[src], events.qty[src]))
    shocked = dataclasses.replace(events, px=px)
    if not extra:
        return shocked
    n = len(extra)
    add = EventBatch(ts=np.array([e[0] for e in extra], np.int64), ts_venue=np.array([e[0] for e in extra], np.int64),
                     venue=np.full(n, VENUE_FX, np.int8), kind=np.full(n, K_FX, np.int8),
                     side=np.zeros(n, np.int8), px=np.array([e[1] for e in extra], np.float64),
                     qty=np.array([e[2] for e in extra], np.float64))
    return EventBatch.concat_sorted([add, shocked])  # at a tie the re-issued rate comes first (known at that instant)
