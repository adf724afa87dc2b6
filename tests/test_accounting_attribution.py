"""Per-trip cost attribution (edge, FX effect, fees, slippage) and the ledger reconciliation, exact in Decimal."""

from __future__ import annotations

from decimal import Decimal, localcontext

from arbitrage_lite.core.accounting import attribute_trip, reconcile, trip_pnl
from arbitrage_lite.core.domain import Currency, Side, Venue
from arbitrage_lite.core.ledger import EXACT, Fill, Ledger, fee_for
from arbitrage_lite.core.metrics import MIN_TRIPS, cost_attribution, small_sample_warning

RATE = {Venue.UPBIT: Decimal("0.0005"), Venue.BINANCE: Decimal("0.001")}
FX_IN, FX_OUT = Decimal("1350.0000"), Decimal("1362.5000")
T_IN, T_OUT = 1_000, 9_000


def fill(venue: Venue, side: Side, price: str, ref: str, qty: str, action: str, ts: int) -> Fill:
    p, q = Decimal(price), Decimal(qty)
    return Fill(trip=0, venue=venue, side=side, price=p, qty=q, fee=fee_for(p, q, RATE[venue]),
                ref_price=Decimal(ref), ts_decision=ts, ts_venue=ts + 1, ts_local=ts + 1, action=action)


def kimchi_trip() -> list[Fill]:
    """Sell BTC on Upbit at a 3 % premium, buy it on Binance; close both at about 1 %, the FX having moved."""
    return [
        fill(Venue.UPBIT, Side.SELL, "139050000", "139100000", "0.1", "open", T_IN),
        fill(Venue.BINANCE, Side.BUY, "100010.5", "100000", "0.1", "open", T_IN),
        fill(Venue.UPBIT, Side.BUY, "137650000", "137600000", "0.1", "close", T_OUT),
        fill(Venue.BINANCE, Side.SELL, "99990", "100000", "0.1", "close", T_OUT),
    ]


def test_trip_attribution_is_exact_and_separates_the_fx_move() -> None:
    fills = kimchi_trip()
    pnl = trip_pnl(fills, FX_OUT, (Decimal(0), Decimal(0)))
    a = attribute_trip(fills, pnl, FX_IN, FX_OUT, T_OUT)
    with localcontext(EXACT):
        # edge: each leg at its decision mid, each USDT flow at its own decision's FX
        edge = (Decimal("139100000") - Decimal("137600000")) * Decimal("0.1") \
            + (Decimal("100000") * FX_OUT - Decimal("100000") * FX_IN) * Decimal("0.1")
        fx = -Decimal("100000") * Decimal("0.1") * (FX_OUT - FX_IN)  # the entry's USDT valued at the exit FX
        assert a.edge_krw == edge == Decimal("275000")
        assert a.fx_krw == fx == Decimal("-125000")
        assert a.gross_krw == pnl.gross_krw
        assert a.fees_krw == pnl.fees_krw and a.slippage_krw == pnl.slippage_krw
        assert a.edge_krw + a.fx_krw - a.fees_krw - a.slippage_krw == pnl.net_krw == a.net_krw
    assert a.notional_krw == Decimal("13905000.0")  # the Upbit entry leg
    # entry premium 139.1M / (100k * 1350) - 1 = 3.04 %, exit 137.6M / (100k * 1362.5) - 1 = 0.99 %: the edge
    # is notional x (entry premium - exit premium), 204.6 bps of the Binance leg's 13.5M KRW = 198.6 bps of 13.9M
    bps = a.bps(a.edge_krw)
    assert bps is not None and 197 < bps < 199


def test_unwind_before_the_exit_is_entry_phase() -> None:
    fills = [*kimchi_trip()[:2], fill(Venue.BINANCE, Side.SELL, "100000", "100000", "0.01", "unwind", T_IN + 5),
             *kimchi_trip()[2:]]
    pnl = trip_pnl(fills, FX_OUT, (Decimal(0), Decimal("0.01")))
    a = attribute_trip(fills, pnl, FX_IN, FX_OUT, T_OUT)
    with localcontext(EXACT):
        assert a.fx_krw == -Decimal("100000") * Decimal("0.09") * (FX_OUT - FX_IN)
        assert a.edge_krw + a.fx_krw - a.fees_krw - a.slippage_krw == pnl.net_krw


def test_reconcile_balances_from_fills_and_catches_a_missed_fill() -> None:
    initial = {(Venue.UPBIT, Currency.KRW): Decimal("50000000"), (Venue.UPBIT, Currency.COIN): Decimal("0.5"),
               (Venue.BINANCE, Currency.USDT): Decimal("40000"), (Venue.BINANCE, Currency.COIN): Decimal("0.5")}
    fills = kimchi_trip()
    ledger = Ledger.funded(initial)
    ledger.apply_all(fills)
    rec = reconcile(initial, fills, ledger.balances)
    assert set(rec) == {"upbit/KRW", "upbit/COIN", "binance/USDT", "binance/COIN"}
    assert all(r["ok"] for r in rec.values())
    assert rec["binance/USDT"]["fees"] == format(fills[1].fee + fills[3].fee, "f")
    short = Ledger.funded(initial)
    short.apply_all(fills[:-1])  # a ledger that missed the last fill
    bad = reconcile(initial, fills, short.balances)
    assert not bad["binance/USDT"]["ok"] and not bad["binance/COIN"]["ok"] and bad["upbit/KRW"]["ok"]
    assert Decimal(str(bad["binance/COIN"]["diff"])) == Decimal("0.1")


def test_small_sample_warning_below_thirty_trips() -> None:
    assert MIN_TRIPS == 30
    assert "2 round trips" in (small_sample_warning(2) or "")
    assert small_sample_warning(29) is not None and small_sample_warning(30) is None
    assert cost_attribution([])["net_pnl_krw"] == "0" and cost_attribution([])["net_bps"] is None
