"""Live vs replay: a short live run on the fake venues records what its routes ran and decided; replay-check
replays it through the backtest kernel and compares decision by decision -- and fails on a damaged recording."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from arbitrage_lite.actors.live_host import LiveHostActor, LiveSpec
from arbitrage_lite.cli import main
from arbitrage_lite.core.config import EngineConfig
from arbitrage_lite.core.events import EventBatch
from arbitrage_lite.core.route_state import S_POS_DIR
from arbitrage_lite.core.rules import binance_rules
from arbitrage_lite.infra.config_tree import apply_sets
from arbitrage_lite.infra.live.run_record import KERNEL_DIR, RunRecorder, read_decisions
from arbitrage_lite.infra.venues.fake.server import FakeVenues
from arbitrage_lite.infra.venues.fake.synthetic import SyntheticSpec
from arbitrage_lite.scenarios.live import _binance_rules, _endpoints_from_fakes
from arbitrage_lite.scenarios.replay_check import check_run, find_store, load_run, recorded_chunks

EAGER = ["strategy.entry_bps=0.5", "strategy.exit_bps=0.1", "strategy.warmup_s=1", "strategy.min_edge_bps=-1000",
         "strategy.cooldown_s=0.5", "strategy.order_notional_krw=1000000", "strategy.position_limit_krw=1000000"]
REASONS = {"data_gap", "event_order", "data_changed", "fill_differs", "risk_verdict"}


async def _live(out: Path) -> LiveHostActor:
    cfg = apply_sets(EngineConfig(), EAGER)
    fakes = FakeVenues(synthetic=SyntheticSpec(coins=("BTC", "ETH"), seed=1))
    info = await fakes.start()
    binance, upbit = _endpoints_from_fakes(info)
    rules = await _binance_rules(binance, ["BTC", "ETH"])
    spec = LiveSpec({b: (cfg, rules[b]) for b in ("BTC", "ETH")}, binance, upbit, "rcheck", cfg.risk,
                    Decimal(100_000_000), record_dir=str(out / "store"))
    host = LiveHostActor(spec)
    await host.start()
    try:
        end = time.monotonic() + 25.0
        flattened = False
        while time.monotonic() < end and (sum(len(r.feed.reported_closes) for r in host.routes.values()) < 2
                                          or not flattened):
            held = [r for r in host.routes.values() if r.state.si[S_POS_DIR] != 0]
            if held and not flattened:  # the kill switch on a held position: an outside input replay must get
                await held[0].flatten()
                flattened = True
            await asyncio.sleep(0.02)
        await host.stop()
    finally:
        await fakes.stop()
    return host


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LiveHostActor]:
    out = tmp_path_factory.mktemp("live")
    host = asyncio.run(_live(out))
    assert not host.errors
    return out, host


def _intents(out: Path) -> list[dict[str, Any]]:
    return [r for r in read_decisions(out / "store") if r["kind"] == "intent"]


def test_live_records_every_leg_it_sent_and_every_row_it_ran(run: tuple[Path, LiveHostActor]) -> None:
    out, host = run
    intents = _intents(out)
    for base, route in host.routes.items():
        assert len([r for r in intents if r["route"] == base]) == len(route.issued)  # one intent per order sent
    _, routes = load_run(find_store(out))
    for base, rec in routes.items():
        assert rec.rows.num_rows == sum(host.routes[base].events_in.values())  # every row taken in was run
        assert recorded_chunks(rec)[1] == []  # rows, counts and checksums agree with what live declared


def test_replay_with_live_fills_takes_the_same_decisions(run: tuple[Path, LiveHostActor]) -> None:
    out, _ = run
    res = check_run(out, fills="live", risk="live")
    assert res["identical"], res
    assert sum(r["matched"] for r in res["routes"].values()) == len(_intents(out)) >= 4
    assert main(["replay-check", str(out), "--fills", "live"]) == 0
    assert json.loads((out / "replay_check.json").read_text())["identical"]


def test_replay_with_the_fill_model_explains_every_difference(run: tuple[Path, LiveHostActor]) -> None:
    out, _ = run
    res = check_run(out, fills="model", risk="allow")
    assert any(r["kind"] == "fill" for r in read_decisions(out / "store"))
    for r in res["routes"].values():
        for d in r["differences"]:
            assert d["reason"] in REASONS, d  # nothing unexplained: fills or verdicts differed first
        assert not r["recording_problems"]
    rc = main(["replay-check", str(out), "--risk", "allow"])
    assert rc == (0 if res["identical"] else 1)


def _first_open(out: Path) -> dict[str, Any]:
    return next(r for r in _intents(out) if r["action"] == "open")


def test_dropped_rows_are_reported_and_fail_the_check(run: tuple[Path, LiveHostActor], tmp_path: Path) -> None:
    out, _ = run
    bad = tmp_path / "bad"
    shutil.copytree(out / "store", bad / "store")
    first = _first_open(out)
    route_dir = bad / "store" / KERNEL_DIR / first["route"]
    for path in route_dir.glob("rows-*.parquet"):  # the chunk the first open was decided in loses its rows
        t = pq.read_table(path)
        pq.write_table(t.filter(pa.compute.not_equal(t.column("chunk"), first["chunk"])), path)
    res = check_run(bad, fills="live", risk="live")
    assert not res["identical"]
    route = res["routes"][first["route"]]
    assert route["recording_problems"] >= 1
    d = route["differences"][0]
    assert (d["chunk"], d["what"], d["reason"]) == (first["chunk"], "only in live", "data_gap")
    assert main(["replay-check", str(bad), "--fills", "live", "--out", str(tmp_path / "rep")]) == 1
    assert "data_gap" in (tmp_path / "rep" / "replay_check.md").read_text()


def test_reordered_rows_are_told_from_lost_ones(run: tuple[Path, LiveHostActor], tmp_path: Path) -> None:
    out, _ = run
    bad = tmp_path / "bad"
    shutil.copytree(out / "store", bad / "store")
    first = _first_open(out)
    path = sorted((bad / "store" / KERNEL_DIR / first["route"]).glob("rows-*.parquet"))[0]
    t = pq.read_table(path)
    idx = np.flatnonzero(t.column("chunk").to_numpy() == t.column("chunk").to_numpy()[0])
    order = np.arange(t.num_rows)
    order[idx[1]], order[idx[2]] = idx[2], idx[1]  # two levels of one book (same time) swapped
    pq.write_table(t.take(pa.array(order)), path)
    res = check_run(bad, fills="live", risk="live")
    causes = res["routes"][first["route"]]["causes"]
    assert [c["reason"] for c in causes][:1] == ["event_order"]
    assert not res["identical"]


def test_recorder_flushes_at_its_row_bound_and_reads_back(tmp_path: Path) -> None:
    cfg = EngineConfig()
    rec = RunRecorder(tmp_path, {"BTC": (cfg, binance_rules("0.01", "0.00001", "5"))}, "unit", max_rows=10)
    tap = rec.tap("BTC", _state())
    sent = []
    for k in range(7):  # 7 chunks of 4 rows: a synchronous write every 3rd chunk (12 rows >= 10)
        n = 4
        batch = EventBatch(np.full(n, 100 + k, np.int64), np.full(n, 90 + k, np.int64), np.zeros(n, np.int8),
                           np.full(n, 2, np.int8), np.arange(n, dtype=np.int8) % 2, np.arange(n) + 1.5 * k,
                           np.ones(n))
        tap.chunk(batch, 101 + k, 0)
        sent.append(batch)
        assert rec.buf.n_rows < 10  # memory holds less than the bound
    rec.write(rec.take())
    _, routes = load_run(tmp_path)
    chunks, causes = recorded_chunks(routes["BTC"])
    assert causes == []
    assert [n for n, _ in chunks] == list(range(7))
    for (_, got), want in zip(chunks, sent, strict=True):
        assert np.array_equal(got.px, want.px) and np.array_equal(got.ts, want.ts)
    assert len(list((tmp_path / KERNEL_DIR / "BTC").glob("rows-*.parquet"))) == 3


def _state() -> Any:
    from arbitrage_lite.core.kernel import N_COUNTERS
    from arbitrage_lite.core.route_state import RouteState

    return RouteState.new(N_COUNTERS)


def _rec(kind: str, pos: tuple[int, int], **kw: Any) -> dict[str, Any]:
    base = {"kind": kind, "chunk": pos[0], "offset": pos[1], "trip": 0, "ts": pos[0] * 10, "venue": 0}
    if kind == "intent":
        base |= {"slot": 0, "action": "open", "side": 1, "qty": 100, "due": 0, "premium_bps": 1.0, "ref_px": 2.0}
    return base | kw


def test_each_difference_gets_its_most_direct_cause() -> None:
    from arbitrage_lite.scenarios.replay_check import Cause, compare

    open_a = _rec("intent", (2, 1))
    live = [open_a, _rec("fill", (3, 0), action="open", px=5, qty=100),
            _rec("verdict", (5, 0), allowed=False, trigger="daily_loss")]
    replay = [open_a, _rec("fill", (3, 0), action="open", px=6, qty=100),
              _rec("verdict", (5, 0), allowed=True, trigger=""),
              _rec("intent", (5, 0), trip=1, ts=50), _rec("intent", (7, 3), trip=1, ts=70, action="close"),
              _rec("intent", (9, 0), trip=2, ts=90, qty=7)]
    res = compare(live, replay, [])
    got = [(d["chunk"], d["what"], d["reason"], d["after"]) for d in res["differences"]]
    assert got == [(5, "only in replay", "risk_verdict", False), (7, "only in replay", "risk_verdict", True),
                   (9, "only in replay", "risk_verdict", True)]
    assert res["matched"] == 1
    # no verdict: the fill that differed first explains it; a lost chunk explains what was decided in it
    res = compare(live[:2], [*replay[:2], _rec("intent", (9, 0), trip=1, ts=90)], [])
    assert [d["reason"] for d in res["differences"]] == ["fill_differs"]
    res = compare([*live[:2], _rec("intent", (9, 0), trip=1, ts=90)], live[:2],
                  [Cause((9, 0), "data_gap", "chunk 9: 3 of 40 rows missing")])
    assert [(d["what"], d["reason"]) for d in res["differences"]] == [("only in live", "data_gap")]
    res = compare([*live[:1], _rec("intent", (4, 0), trip=1, ts=40)], live[:1], [])
    assert [d["reason"] for d in res["differences"]] == ["unexplained"]


def test_the_venue_recording_rebuilds_the_fx_live_handed_its_routes(run: tuple[Path, LiveHostActor]) -> None:
    from arbitrage_lite.core.events import VENUE_FX
    from arbitrage_lite.infra.data.store import Store
    from arbitrage_lite.scenarios.market_data import _fx_events

    out, host = run
    store = Store(out / "store")
    have = {(s.kind, s.venue, s.symbol) for s in store.series() if s.rows}
    for base in host.routes:
        assert {("book", "upbit", f"{base}-KRW"), ("book", "binance", f"{base}-USDT"),
                ("depth_diff", "binance", f"{base}-USDT")} <= have
    _, routes = load_run(find_store(out))
    chunks, _ = recorded_chunks(routes["BTC"])
    live_fx = [(int(b.ts[i]), int(b.ts_venue[i]), float(b.px[i]), float(b.qty[i]))
               for _, b in chunks for i in np.flatnonzero(b.venue == VENUE_FX)]
    fx, _source = _fx_events(store, None, None)
    rebuilt = list(zip(fx.ts.tolist(), fx.ts_venue.tolist(), fx.px.tolist(), fx.qty.tolist(), strict=True))
    assert live_fx and rebuilt[:len(live_fx)] == live_fx  # the same rows (live may stop before the last book)


def test_a_recorded_live_run_backtests_from_its_store(run: tuple[Path, LiveHostActor], tmp_path: Path) -> None:
    out, _ = run
    bt = tmp_path / "bt"
    assert main(["backtest", "--store", str(out / "store"), "--routes", "BTC,ETH", "--out", str(bt), "--no-ray",
                 "--no-progress"]) == 0
    summary = json.loads((bt / "summary.json").read_text())
    assert (summary["data"]["resolution"], summary["data"]["fx_source"]) == ("book", "upbit_krw_usdt")
    assert summary["funnel"]["decisions"] > 0


def test_the_kill_switch_is_recorded_and_replayed(run: tuple[Path, LiveHostActor], tmp_path: Path) -> None:
    out, host = run
    flattens = [r for r in read_decisions(out / "store") if r["kind"] == "flatten"]
    assert len(flattens) == 1  # the fixture flattened one held position once
    route = flattens[0]["route"]
    assert check_run(out, fills="live", risk="live")["routes"][route]["differences"] == []
    bad = tmp_path / "bad"
    shutil.copytree(out / "store", bad / "store")
    for path in (bad / "store").glob("decisions-*.jsonl"):
        kept = [x for x in path.read_text().splitlines() if '"kind":"flatten"' not in x]
        path.write_text("".join(x + "\n" for x in kept))
    without = check_run(bad, fills="live", risk="live")["routes"][route]["differences"]
    exits = [t.exit_reason for t in asyncio.run(host.result(route)).trips]
    # without the record the replay can only differ where live closed because of it
    assert bool(without) == ("flatten" in exits)
    assert all(d["reason"] == "unexplained" for d in without[:1])


def test_the_venue_recording_built_as_a_backtest_replays_like_live(run: tuple[Path, LiveHostActor]) -> None:
    out, _ = run
    res = check_run(out, fills="live", risk="live", source="store")
    for r in res["routes"].values():
        assert r["causes"] == []  # the backtest's events are the rows live's kernels ran, in their order
    assert res["identical"], res
    assert sum(r["matched"] for r in res["routes"].values()) == len(_intents(out))
    assert main(["replay-check", str(out), "--source", "store", "--fills", "live"]) == 0
