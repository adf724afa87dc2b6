"""The fakes' SYNTHETIC market: books generated from the recorded kimpai prices (synthetic*.py).

The premium in the generated books is the recorded one at the recorded points; the same seed gives the same
market; a client following the documented Binance procedure (the project's LocalBook) rebuilds exactly the
engine's book, Upbit's WS and REST books are the served ones, rates are as configured, and ccxt reads the same.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from arbitrage_lite.core.venue import BookDelta, BookSnapshot
from arbitrage_lite.infra.venues.binance.book import LocalBook
from arbitrage_lite.infra.venues.binance.parse import parse_depth_snapshot, parse_stream
from arbitrage_lite.infra.venues.fake.server import FakeVenues
from arbitrage_lite.infra.venues.fake.synthetic import FX_CODE, SyntheticMarket, SyntheticSpec
from arbitrage_lite.infra.venues.fake.synthetic_data import MarketPaths, builtin_paths, paths_from_store
from arbitrage_lite.infra.venues.fake.synthetic_feed import sensible_grid
from arbitrage_lite.infra.venues.upbit.parse import parse_ws


def _market(paths: MarketPaths, **kw: Any) -> SyntheticMarket:
    grid = {c.base: sensible_grid(c.usdt[0]) for c in paths.coins}
    return SyntheticMarket(paths, SyntheticSpec(**kw), grid, time.time_ns())


def _touch(m: SyntheticMarket, venue: Any, sym: str) -> tuple[float, float]:
    lad = m.ladder(venue, sym)
    return max(lad.bids) / 1e8, min(lad.asks) / 1e8


def test_premium_equals_the_recorded_one_at_recorded_points(sample_stores: dict[str, Path]) -> None:
    paths = paths_from_store(sample_stores["multi"], top_n=6)
    m = _market(paths, speed=1.0)
    fx_at = dict(zip(paths.fx.t, paths.fx.krw, strict=True))
    knots = sorted({(t, c.base, i) for c in paths.coins for i, t in enumerate(c.t[:40])})
    checked = 0
    for t, base, i in knots:
        c = next(c for c in paths.coins if c.base == base)
        wall = t - m.origin
        m.step_binance(f"{base}USDT", wall)
        m.step_upbit(f"KRW-{base}", wall)
        m.step_upbit(FX_CODE, wall)
        (bb, ba), (ub, ua), (fb, fa) = (_touch(m, "binance", f"{base}USDT"), _touch(m, "upbit", f"KRW-{base}"),
                                        _touch(m, "upbit", FX_CODE))
        krw = c.usdt[i] * fx_at[t] * (1 + c.premium[i])  # the recorded Upbit price
        assert bb <= c.usdt[i] <= ba and ub <= krw * (1 + 1e-12) and krw <= ua * (1 + 1e-12)
        assert fb <= fx_at[t] <= fa
        prem = ((ub + ua) / 2) / ((bb + ba) / 2 * (fb + fa) / 2) - 1
        half_spreads = (ba - bb) / (ba + bb) + (ua - ub) / (ua + ub) + (fa - fb) / (fa + fb)
        # each book's mid is within its half spread of the target mid: the ratio within their sum
        assert abs(prem - c.premium[i]) <= (1 + abs(c.premium[i])) * half_spreads * 1.01 + 1e-9
        checked += 1
    assert checked >= 200


def _run(m: SyntheticMarket, seconds: float) -> list[Any]:
    out: list[Any] = []
    for t, venue, sym in m.due(seconds):
        if venue == "binance":
            d = m.step_binance(sym, t)
            out.append((sym, d.first_id, d.last_id, d.bids, d.asks) if d else None)
        else:
            m.step_upbit(sym, t)
            out.append(m.upbit_book(sym, 0))
    return out


def test_same_seed_same_market_other_seed_another() -> None:
    paths = builtin_paths(top_n=5)
    a, b, c = (_market(paths, seed=s, speed=30.0) for s in (7, 7, 8))
    for m in (a, b, c):
        m.warm_up()
    run_a, run_b, run_c = _run(a, 2.0), _run(b, 2.0), _run(c, 2.0)
    assert len(run_a) == 2 * 5 * 10 + 2 * 6 * 5 and run_a == run_b
    assert run_a != run_c
    assert a.binance_book("BTCUSDT", 0) == b.binance_book("BTCUSDT", 0) != c.binance_book("BTCUSDT", 0)


def test_books_have_the_venue_shape() -> None:
    m = _market(builtin_paths(top_n=50))
    m.warm_up()
    _run(m, 1.0)
    for venue, syms in (("binance", m.binance_symbols()), ("upbit", m.upbit_codes())):
        for sym in syms:
            lad = m.ladder(venue, sym)
            assert len(lad.bids) == len(lad.asks) == 20 and max(lad.bids) < min(lad.asks)
            for p in (*lad.bids, *lad.asks):
                assert p % lad.grid.tick(p) == 0  # on the venue's grid (Upbit: its KRW tick table)
            assert all(q > 0 and q % lad.step == 0 for q in (*lad.bids.values(), *lad.asks.values()))


def _serve(body: Callable[[FakeVenues, dict[str, Any], aiohttp.ClientSession], Awaitable[None]],
           spec: SyntheticSpec) -> None:
    async def main() -> None:
        fv = FakeVenues(synthetic=spec, ws_log=20)
        info = await fv.start()
        try:
            async with aiohttp.ClientSession() as session:
                await body(fv, info, session)
        finally:
            await fv.stop()
    asyncio.run(main())


def test_binance_client_rebuilds_the_engine_book_and_upbit_ws_and_rest_agree() -> None:
    async def body(fv: FakeVenues, info: dict[str, Any], session: aiohttp.ClientSession) -> None:
        assert fv.binance_ws is not None and fv.upbit_ws is not None and info["synthetic"]["coins"] == 2
        served = fv.binance_ws.served["XRPUSDT"]
        book, checked = LocalBook("XRPUSDT"), 0
        async with session.ws_connect(info["binance"]["ws"] + "/stream?streams=xrpusdt@depth@100ms") as ws:
            while checked < 30:
                m = parse_stream((await ws.receive(timeout=10)).data, time.time_ns())
                assert isinstance(m, BookDelta)
                book.on_delta(m)
                while not book.synced:
                    async with session.get(info["binance"]["rest"] + "/api/v3/depth",
                                           params={"symbol": "XRPUSDT", "limit": "1000"}) as r:
                        snap = parse_depth_snapshot(await r.read(), "XRPUSDT", time.time_ns())
                    assert isinstance(snap, BookSnapshot)
                    book.on_snapshot(snap)
                s = book.snapshot(20)
                bids, asks = served[book.book_id or 0]
                assert tuple((lv.price, lv.qty) for lv in s.bids) == bids
                assert tuple((lv.price, lv.qty) for lv in s.asks) == asks
                checked += 1
        served_u = {b.ts_ms: b for b in fv.upbit_ws.served["KRW-XRP"]}
        async with session.ws_connect(info["upbit"]["ws"]) as ws:
            await ws.send_str(json.dumps([{"ticket": "t"}, {"type": "orderbook", "codes": ["KRW-XRP"]}]))
            for _ in range(5):
                m = parse_ws((await ws.receive(timeout=10)).data, time.time_ns())
                assert isinstance(m, BookSnapshot)
                want = {b.ts_ms: b for b in fv.upbit_ws.served["KRW-XRP"]}[m.ts_venue // 1_000_000]
                assert tuple((lv.price, lv.qty) for lv in m.bids) == want.bids
                assert tuple((lv.price, lv.qty) for lv in m.asks) == want.asks
                async with session.get(info["upbit"]["rest"] + "/v1/orderbook", params={"markets": "KRW-XRP"}) as r:
                    rest = (await r.json())[0]
                served_u = {b.ts_ms: b for b in fv.upbit_ws.served["KRW-XRP"]}
                want = served_u[rest["timestamp"]]
                assert [(u["bid_price"], u["bid_size"]) for u in rest["orderbook_units"]] == [
                    (float(p), float(q)) for p, q in want.bids]
    _serve(body, SyntheticSpec(coins=("XRP", "BTC"), rate_binance_hz=10, rate_upbit_hz=5))


def test_message_rates_are_the_configured_ones() -> None:
    async def body(fv: FakeVenues, info: dict[str, Any], session: aiohttp.ClientSession) -> None:
        streams = "/".join(f"{s.lower()}@depth@100ms" for s in info["binance"]["markets"])
        counts: dict[str, int] = {}
        async with session.ws_connect(info["binance"]["ws"] + "/stream?streams=" + streams) as bws, \
                session.ws_connect(info["upbit"]["ws"]) as uws:
            await uws.send_str(json.dumps([{"ticket": "t"}, {"type": "orderbook",
                                                             "codes": info["upbit"]["markets"]}]))

            async def count(ws: aiohttp.ClientWebSocketResponse, key: str) -> None:
                async for msg in ws:
                    raw = json.loads(msg.data)
                    name = raw["stream"] if key == "b" else raw["code"]
                    counts[name] = counts.get(name, 0) + 1

            tasks = [asyncio.create_task(count(bws, "b")), asyncio.create_task(count(uws, "u"))]
            await asyncio.sleep(0.5)
            counts.clear()
            await asyncio.sleep(3.0)
            snapshot = dict(counts)
            for t in tasks:
                t.cancel()
        assert len(snapshot) == 3 + 4  # every Binance symbol and every Upbit market incl. KRW-USDT
        for name, n in snapshot.items():
            want = 3.0 * (10 if "@" in name else 5)
            assert 0.75 * want <= n <= 1.15 * want, (name, n)
    _serve(body, SyntheticSpec(coins=("BTC", "ETH", "XRP")))


def test_ccxt_reads_the_synthetic_books() -> None:
    ccxt = pytest.importorskip("ccxt.async_support")

    async def body(fv: FakeVenues, info: dict[str, Any], session: aiohttp.ClientSession) -> None:
        assert fv.binance_ws is not None and fv.upbit_ws is not None
        bx = ccxt.binance({"options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False,
                                       "fetchCurrencies": False, "adjustForTimeDifference": False}})
        bx.urls["api"]["public"] = bx.urls["api"]["private"] = info["binance"]["rest"] + "/api/v3"
        ux = ccxt.upbit()
        ux.urls["api"]["public"] = ux.urls["api"]["private"] = info["upbit"]["rest"]
        try:
            await bx.load_markets()
            ob = await bx.fetch_order_book("SOL/USDT", 20)
            bids, asks = fv.binance_ws.served["SOLUSDT"][ob["nonce"]]
            assert ob["bids"] == [[float(p), float(q)] for p, q in bids]
            assert ob["asks"] == [[float(p), float(q)] for p, q in asks]
            ob = await ux.fetch_order_book("SOL/KRW")
            want = {b.ts_ms: b for b in fv.upbit_ws.served["KRW-SOL"]}[ob["timestamp"]]
            assert ob["bids"] == [[float(p), float(q)] for p, q in want.bids]
        finally:
            await bx.close()
            await ux.close()
    _serve(body, SyntheticSpec(coins=("SOL",)))
