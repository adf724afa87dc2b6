"""Wire-to-wire tracing of the live hot path (benchmarks/live_latency.py). Off unless a host is given a tracer.

A market message is known on both sides of the wire by its key (venue, venue symbol, id): Binance's final update
id ``u``, Upbit's ``timestamp`` (ms). The fakes (:class:`WireLog`) log the wall time they start sending each book
frame and the time each order request reaches them (by client order id). The engine (:class:`LiveTracer`) logs, for
each order, the key of the newest message its route had taken in when the route's turn began (the message the
decision ran on: a turn takes in everything buffered, and nothing arrives during it) and wall-clock stamps at the
stage boundaries. :func:`join` matches the two: wire-to-wire per order and where its time went.

Both processes stamp with ``time.time_ns`` (CLOCK_REALTIME, one clock on one machine). The tracer's hooks are
proxies put around the route's client-id factory, risk and journal handles by :meth:`LiveTracer.attach`, so the
route's own code carries no tracing; with no tracer the hot path pays one ``is not None`` per hook site.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

Key = tuple[str, str, int]  # (venue, venue symbol, update id | venue ms)
STAGES = ("wire", "parse", "queue", "fills", "decide", "risk", "journal", "send")


def binance_key(symbol: str, last_update_id: int) -> Key:
    return ("binance", symbol, last_update_id)


def upbit_key(code: str, ts_venue_ns: int) -> Key:
    return ("upbit", code, ts_venue_ns // 1_000_000)


@dataclass(slots=True)
class OrderTrace:
    """One order's stamps (wall ns; 0 = did not happen). ``key``: its trigger message (None: the route had none)."""

    cid: str
    route: str
    key: Key | None
    frame_ns: int  # the trigger frame read off the socket (the adapter's ts_local, before parsing)
    deliver_ns: int  # parsed, applied to the adapter's book, rows handed to the route
    turn_ns: int  # the route's turn began (it took the trigger in)
    emit_ns: int  # the kernel's leg became an order (client id made)
    risk_ask_ns: int = 0  # the verdict this order waited for (an open's), asked ...
    risk_done_ns: int = 0  # ... and answered
    intent_ns: int = 0  # journal: intent write started ...
    journaled_ns: int = 0  # ... and durable
    submit_ns: int = 0  # the gateway took the order
    place_ns: int = 0  # the gateway called the venue client (protective price and caps done)
    answered_ns: int = 0  # the venue's final answer was in
    fills_ns: int = 0  # the latest answer to this route's earlier orders, if one came in during this turn (the
    # route may have waited for it: a leg's fills are taken in before the kernel goes on)


class LiveTracer:
    """The engine side. ``message``/``turn`` come from the host; the rest from the proxies and the gateway."""

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self.clock = clock
        self.last: dict[str, tuple[Key, int, int]] = {}  # route -> its newest message (key, frame ns, deliver ns)
        self.turns: dict[str, tuple[tuple[Key, int, int] | None, int]] = {}  # route -> (trigger, turn ns)
        self.risk: dict[str, tuple[int, int]] = {}  # route -> its latest verdict (asked, answered)
        self.answered: dict[str, int] = {}  # route -> when its latest order answer came in
        self.orders: dict[str, OrderTrace] = {}

    # ---- host hooks
    def message(self, route: str, key: Key, frame_ns: int) -> None:
        self.last[route] = (key, frame_ns, self.clock())

    def turn(self, route: str) -> None:
        self.turns[route] = (self.last.get(route), self.clock())

    def attach(self, host: Any) -> None:
        """Put the proxies around every route's client ids, risk and journal handles; tell market and gateways."""
        host.market.tracer = self
        for g in host.gateways.values():
            g.tracer = self
        for base, route in host.routes.items():
            route.ids = _Ids(route.ids, self, base)
            if route.risk is not None:
                route.risk = _Handle(route.risk, self, "check_open")
            if route.journal is not None:
                route.journal.handle = _Handle(route.journal.handle, self, "write_intent")

    # ---- proxy and gateway hooks
    def emitted(self, route: str, cid: str) -> None:
        now = self.clock()
        trigger, turn = self.turns.get(route, (None, now))
        key, frame, deliver = trigger if trigger is not None else (None, 0, 0)
        answer = self.answered.get(route, 0)
        t = OrderTrace(cid, route, key, frame, deliver, turn, now, fills_ns=answer if answer > turn else 0)
        ask, done = self.risk.get(route, (0, 0))
        if ask >= turn:
            t.risk_ask_ns, t.risk_done_ns = ask, done
        self.orders[cid] = t

    def stamp(self, cid: str, what: str) -> None:
        t = self.orders.get(cid)
        if t is not None:
            setattr(t, what, self.clock())
            if what == "answered_ns":
                self.answered[t.route] = t.answered_ns

    def export(self) -> list[dict[str, Any]]:
        return [asdict(t) for t in self.orders.values()]


class _Ids:
    """The route's ClientIdFactory: a client id is made exactly when the kernel's leg becomes an order."""

    def __init__(self, inner: Any, tracer: LiveTracer, route: str) -> None:
        self._inner, self._tracer, self._route = inner, tracer, route

    def next(self, route: str, leg: str) -> str:
        cid: str = self._inner.next(route, leg)
        self._tracer.emitted(self._route, cid)
        return cid

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Handle:
    """A route's risk or journal handle: when its ``method`` calls (verdicts, intent writes) start and end."""

    def __init__(self, inner: Any, tracer: LiveTracer, method: str) -> None:
        self._inner, self._tracer, self._method = inner, tracer, method

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)
        return _Timed(method, self._tracer, name) if name == self._method else method


class _Timed:
    def __init__(self, method: Any, tracer: LiveTracer, name: str) -> None:
        self._method, self._tracer, self._name = method, tracer, name

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        tr = self._tracer
        asked = tr.clock()
        fut = self._method.remote(*args, **kwargs)
        if self._name == "check_open":
            route = args[0]
            # added before the route awaits it: runs just before the route resumes
            fut.add_done_callback(lambda _f: tr.risk.__setitem__(route, (asked, tr.clock())))
        else:
            cid = args[0].key
            t = tr.orders.get(cid)
            if t is not None:
                t.intent_ns = asked
                fut.add_done_callback(lambda _f: setattr(t, "journaled_ns", tr.clock()))
        return fut


# ---------------------------------------------------------------------------------------------- fake side
_BINANCE_SYM = re.compile(r'"s":"([A-Z0-9]+)"')
_BINANCE_U = re.compile(r'"u":(\d+)')
_UPBIT_CODE = re.compile(r'"(?:cd|code)":"([A-Z0-9-]+)"')
_UPBIT_TS = re.compile(r'"(?:tms|timestamp)":(\d+)')


@dataclass
class WireLog:
    """The fake side: when each book frame starts to be sent (first time per key) and each order arrives."""

    sent: dict[Key, int] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=dict)  # client id -> first arrival
    counts: Counter[str] = field(default_factory=Counter)

    def attach(self, fakes: Any) -> None:
        """Hook a started FakeVenues (its hubs exist only after ``start``)."""
        fakes.binance_ws.hub.on_sent = self.binance_frame
        fakes.upbit_ws.hub.on_sent = self.upbit_frame
        fakes.binance.order_seen = self.order
        fakes.upbit.order_seen = self.order

    def binance_frame(self, frame: str, t_ns: int) -> None:
        if '"depthUpdate"' not in frame:
            return
        s, u = _BINANCE_SYM.search(frame), _BINANCE_U.search(frame)
        if s is not None and u is not None:
            self._sent(binance_key(s.group(1), int(u.group(1))), t_ns)

    def upbit_frame(self, frame: str, t_ns: int) -> None:
        if '"orderbook"' not in frame:
            return
        c, ts = _UPBIT_CODE.search(frame), _UPBIT_TS.search(frame)
        if c is not None and ts is not None:
            self._sent(("upbit", c.group(1), int(ts.group(1))), t_ns)

    def _sent(self, key: Key, t_ns: int) -> None:
        self.counts[f"{key[0]}_frames"] += 1
        if key in self.sent:
            self.counts["repeated_keys"] += 1  # an Upbit snapshot re-sent on subscribe, or two books in one ms
        else:
            self.sent[key] = t_ns

    def order(self, cid: str | None, t_ns: int) -> None:
        self.counts["orders"] += 1
        if cid is not None and cid not in self.received:
            self.received[cid] = t_ns

    def dump(self) -> str:
        return json.dumps({"sent": [[*k, t] for k, t in self.sent.items()], "received": self.received,
                           "counts": dict(self.counts)})

    @classmethod
    def load(cls, text: str) -> WireLog:
        d = json.loads(text)
        return cls({(v, s, int(i)): t for v, s, i, t in d["sent"]}, d["received"], Counter(d["counts"]))


# ---------------------------------------------------------------------------------------------- the join
@dataclass
class Joined:
    """Orders joined to both ends of the wire: wire-to-wire and its split (ns, per order, same order)."""

    total: list[int] = field(default_factory=list)
    stages: dict[str, list[int]] = field(default_factory=lambda: {s: [] for s in STAGES})
    orders: list[dict[str, Any]] = field(default_factory=list)  # the joined traces (with ``sent_ns``/``recv_ns``)
    dropped: Counter[str] = field(default_factory=Counter)  # orders not joined, by reason


def split(t: dict[str, Any], sent: int, recv: int) -> dict[str, int]:
    """Consecutive segments from the frame's send to the request's arrival; they add up to the total. ``fills``:
    the turn's start to the last answer to the route's earlier orders that came in before its verdict or order."""
    risk = t["risk_done_ns"] - t["risk_ask_ns"] if t["risk_ask_ns"] else 0
    fills = max(0, min(t["fills_ns"], t["risk_ask_ns"] or t["emit_ns"]) - t["turn_ns"]) if t["fills_ns"] else 0
    out_of_engine = t["journaled_ns"] or t["emit_ns"]
    return {"wire": t["frame_ns"] - sent, "parse": t["deliver_ns"] - t["frame_ns"],
            "queue": t["turn_ns"] - t["deliver_ns"], "fills": fills,
            "decide": t["emit_ns"] - t["turn_ns"] - fills - risk, "risk": risk,
            "journal": t["journaled_ns"] - t["emit_ns"] if t["journaled_ns"] else 0, "send": recv - out_of_engine}


def join(orders: list[dict[str, Any]], log: WireLog, since_ns: int = 0, until_ns: int | None = None) -> Joined:
    """Join the engine's orders to the fakes' log. Unwind legs (``...-u?``: sent because a leg's fill came back
    short, not because of a market message) and orders whose trigger was sent outside [since, until) are left out."""
    out = Joined()
    for t in orders:
        if t["cid"].rsplit("-", 1)[-1].startswith("u"):
            out.dropped["unwind (a fill's answer, not a market message, triggered it)"] += 1
            continue
        if t["key"] is None:
            out.dropped["no market message yet"] += 1
            continue
        sent = log.sent.get(tuple(t["key"]))
        if sent is None:
            out.dropped["trigger not sent on the WS (a REST depth snapshot)"] += 1
            continue
        if sent < since_ns or (until_ns is not None and sent >= until_ns):
            out.dropped["outside the measured window"] += 1
            continue
        recv = log.received.get(t["cid"])
        if recv is None:
            out.dropped["never reached the venue (refused locally)"] += 1
            continue
        parts = split(t, sent, recv)
        out.total.append(recv - sent)
        for s in STAGES:
            out.stages[s].append(parts[s])
        out.orders.append(t | {"sent_ns": sent, "recv_ns": recv})
    return out
