"""``stress``: the backtest under each robustness scenario (core.stress) against the baseline.

The routes are loaded once; each scenario is one transform (``prepare``) of the loaded data and the config,
the same function paper uses (``paper_check``), so both modes trade the same stressed market. Scenarios that
happen at a moment (price shocks, FX shock, venue outage) are anchored on the baseline run: mid-trade, at a
round trip of the baseline in the middle of the data, so the stress meets an open position (a crash on the
venue where the position is long, a spike where it is short, the outage while the entry legs are out). The
run is identical to the baseline up to that moment.

Two scenarios are tests of the risk policy (``expect``): the flash crash must trip the kill switch, and the
venue outage must leave no trip unhedged longer than ``risk.max_unhedged_s``. Where the data cannot show the
crash (no position to crash, or the venue quoting under twice inside it) the check says "not shown" and why,
neither passed nor failed.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import numpy as np

from ..core.config import EngineConfig
from ..core.events import VENUE_BINANCE, VENUE_UPBIT
from ..core.ledger import EXACT
from ..core.metrics import closed_trips, equity_curve, figures, money
from ..core.replay import RoundTrip
from ..core.stress import VENUE_NAMES, Scenario
from .backtest import BacktestRequest, RouteRun, _load_routes, capital_krw, iso, replay_routes
from .market_data import RouteData
from .universe import universe_of

MIN_NS = 60_000_000_000
SEC_NS = 1_000_000_000
HALT_ACTIONS = ("kill_switch", "daily_loss_limit", "breaker_trip", "global_breaker_trip")


@dataclass(frozen=True)
class StressParams:
    """The scenarios' sizes (the command's flags); fixed before any run, never fitted to an outcome."""

    slippage_factors: tuple[float, ...] = (2.0, 3.0)
    fee_factor: float = 3.0
    crash_pct: float = 30.0  # flash crash: down this much at once on one venue, back linearly over shock_min
    spike_pct: float = 30.0
    shock_min: float = 10.0
    noise_bps: float = 5.0
    stagger_ms: float = 5000.0
    stagger_venue: int = VENUE_BINANCE
    fx_pct: float = 5.0
    fx_min: float = 60.0
    outage_s: float = 600.0
    outage_venue: int = VENUE_UPBIT
    seed: int = 0


def catalogue(p: StressParams) -> dict[str, Scenario]:
    """Every scenario by name (``--scenarios all``), unanchored."""
    out = [Scenario(f"slippage_x{f:g}", "slippage", f"half spread and impact x{f:g}", factor=f)
           for f in p.slippage_factors]
    shock = int(p.shock_min * MIN_NS)
    out += [
        Scenario("fee_surge", "fees", f"taker fees x{p.fee_factor:g} on both venues", factor=p.fee_factor),
        Scenario("flash_crash", "price_shock", f"-{p.crash_pct:g} % at once on the venue where the open position "
                 f"is long, back over {p.shock_min:g} min", move=-p.crash_pct / 100, duration_ns=shock,
                 expect="kill_switch"),
        Scenario("spike", "price_shock", f"+{p.spike_pct:g} % at once on the venue where the open position is "
                 f"short, back over {p.shock_min:g} min", move=p.spike_pct / 100, duration_ns=shock),
        Scenario("quote_noise", "noise", f"every quote x (1 + N(0, {p.noise_bps:g} bps))", noise_bps=p.noise_bps,
                 seed=p.seed),
        Scenario("latency_stagger", "stagger", f"{VENUE_NAMES[p.stagger_venue]} data {p.stagger_ms:g} ms late",
                 venue=p.stagger_venue, delay_ns=int(p.stagger_ms * 1e6)),
        Scenario("fx_shock", "fx_shock", f"KRW per USDT +{p.fx_pct:g} % for {p.fx_min:g} min, mid-trade",
                 move=p.fx_pct / 100, duration_ns=int(p.fx_min * MIN_NS)),
        Scenario("venue_down", "outage", f"{VENUE_NAMES[p.outage_venue]} down {p.outage_s:g} s from just after "
                 "an entry decision (legs out)", venue=p.outage_venue, duration_ns=int(p.outage_s * SEC_NS),
                 expect="unhedged_within_policy"),
    ]
    return {s.name: s for s in out}


def select(spec: str, p: StressParams) -> list[Scenario]:
    """``all`` or a comma list of names (ValueError naming the unknown ones)."""
    cat = catalogue(p)
    names = list(cat) if spec.strip().lower() == "all" else [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in cat]
    if unknown or not names:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown) or '(none given)'}; known: all, {', '.join(cat)}")
    return [cat[n] for n in dict.fromkeys(names)]


@dataclass(frozen=True)
class Anchor:
    """Where the moment scenarios happen: a baseline round trip (or, with none, the middle of the data)."""

    at_entry_decision_ns: int
    at_entry_fill_ns: int
    route: str | None
    direction: int  # +1: sold on Upbit, bought on Binance (long Binance); -1 the reverse; 0 no trip
    trip: int | None = None

    def place(self, sc: Scenario) -> Scenario:
        if not sc.needs_anchor:
            return sc
        if sc.kind == "outage":
            return sc.anchored(self.at_entry_decision_ns + 1)  # the entry legs are out: mid-trade
        if sc.kind == "fx_shock":
            return sc.anchored(self.at_entry_fill_ns + 1)
        long_venue = VENUE_BINANCE if self.direction > 0 else VENUE_UPBIT
        short_venue = VENUE_UPBIT if self.direction > 0 else VENUE_BINANCE
        venue = None if self.direction == 0 else (long_venue if sc.move < 0 else short_venue)
        return sc.anchored(self.at_entry_fill_ns + 1, venue, self.route)

    def to_dict(self) -> dict[str, object]:
        return {"route": self.route, "trip": self.trip, "direction": self.direction,
                "entry_decision": iso(self.at_entry_decision_ns), "entry_fill": iso(self.at_entry_fill_ns)}


def _reached(run: RouteRun, after_ns: int, within_ns: int) -> bool:
    """Both venues of the route have market data in (after, after + within]: a shock placed there meets a quote."""
    ev = run.data.events
    lo, hi = np.searchsorted(ev.ts, after_ns, side="right"), np.searchsorted(ev.ts, after_ns + within_ns, side="right")
    venues = ev.venue[lo:hi]
    return bool((venues == VENUE_UPBIT).any() and (venues == VENUE_BINANCE).any())


def anchor_of(runs: Sequence[RouteRun], within_ns: int = 0) -> Anchor:
    """The first baseline round trip (opened and closed by its rules) decided at or after the middle of the data
    whose route has quotes on both venues within ``within_ns`` of its entry fill (sparse snapshots may have none
    for many minutes: a shock there would change nothing); else the first such trip at all, else the middle one."""
    real = [r.real for r in runs]
    first, last = min(r.first_ts for r in real), max(r.last_ts for r in real)
    by_route = {r.data.base: r for r in runs}
    trips = sorted((t for r in real for t in r.trips if t.closed and t.ts[1] >= 0 and t.exit_reason != "aborted"),
                   key=lambda t: (t.ts[0], t.route, t.trip))
    if not trips:
        mid = (first + last) // 2
        return Anchor(mid, mid, None, 0)
    late = [t for t in trips if t.ts[0] >= (first + last) // 2]
    reached = [t for t in [*late, *trips] if within_ns <= 0 or _reached(by_route[t.route], t.ts[1], within_ns)]
    t = reached[0] if reached else (late or trips)[0]
    return Anchor(t.ts[0], t.ts[1], t.route, t.direction, t.trip)


def touched(before: Sequence[RouteData], after: Sequence[RouteData]) -> int:
    """How many events a scenario changed (moved, repriced, dropped or added), over every route."""
    n = 0
    for a, b in zip(before, after, strict=True):
        ea, eb = a.events, b.events
        if len(ea) != len(eb):
            n += abs(len(ea) - len(eb))
        else:
            n += int(((ea.ts != eb.ts) | (ea.px != eb.px)).sum())
    return n


def apply_route(sc: Scenario, data: RouteData) -> RouteData:
    """One route's data under ``sc``: its events and its own (calibrated) costs."""
    return dataclasses.replace(data, events=sc.apply_events(data.events, data.base), costs=sc.apply_costs(data.costs))


def prepare(sc: Scenario, datas: Sequence[RouteData], cfg: EngineConfig) -> tuple[list[RouteData], EngineConfig]:
    """The one transform both modes consume: the routes' data and the run's config under ``sc``."""
    return [apply_route(sc, d) for d in datas], sc.apply_config(cfg)


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    figures: dict[str, Any]
    curve_ts: np.ndarray = field(repr=False)
    curve_krw: np.ndarray = field(repr=False)


def _risk_counts(risk: dict[str, object]) -> dict[str, object]:
    events = risk.get("events", [])
    assert isinstance(events, list)
    counts = {a: sum(1 for e in events if e["action"] == a) for a in HALT_ACTIONS}
    first_kill = next((e for e in events if e["action"] == "kill_switch"), None)
    return {"halts": counts, "halted_at_end": risk.get("mode") == "halted",
            "kill_switch_at": iso(int(first_kill["ts_ns"])) if first_kill else None,
            "kill_switch_reason": first_kill["reason"] if first_kill else None,
            "rejected_opens": risk.get("rejected_opens", 0), "rejections_by_reason": risk.get("rejections_by_reason")}


def _unhedged(trips: Sequence[RoundTrip], runs: Sequence[RouteRun], policy_s: float) -> dict[str, object]:
    worst = max(trips, key=lambda t: t.unhedged_ns, default=None)
    counters = [r.real.counters for r in runs]
    return {"unhedged_max_s": (worst.unhedged_ns / 1e9) if worst else 0.0,
            "unhedged_max_trip": f"{worst.route}#{worst.trip}" if worst and worst.unhedged_ns else None,
            "unhedged_total_s": sum(c["unhedged_ns"] for c in counters) / 1e9,
            "unhedged_max_krw": max((t.unhedged_krw for t in trips), default=0.0),
            "unhedged_trips": sum(1 for t in trips if t.unhedged_ns > 0),
            "trips_unhedged_over_policy": sum(1 for t in trips if t.unhedged_ns > policy_s * 1e9),
            "legs_expired": sum(c["legs_expired"] for c in counters),
            "aborted_no_hedge": sum(c["aborted_no_hedge"] for c in counters),
            "unhedged_units_left": sum(c["unhedged_units_left"] for c in counters)}


def scenario_figures(runs: Sequence[RouteRun], risk: dict[str, object], cfg: EngineConfig) -> dict[str, Any]:
    """The table's figures of one run: net PnL, drawdown, unhedged time and notional, risk halts."""
    real = [r.real for r in runs]
    trips = closed_trips(real)
    every = [t for r in real for t in r.trips]
    open_trips = [t for t in every if not t.closed]
    head = figures(trips, open_trips, capital_krw(cfg) * len(runs), min(r.first_ts for r in real),
                   max(r.last_ts for r in real))
    out = {k: head[k] for k in ("trades", "wins", "net_pnl_krw", "fees_krw", "slippage_krw", "max_drawdown_krw",
                                "open_positions", "exit_reasons")}
    out.update(_unhedged(every, runs, cfg.risk.max_unhedged_s))
    out.update(_risk_counts(risk))
    out["flatten_late"] = risk.get("flatten_late", [])
    return out


def _latency_ns(data: RouteData, venue: int) -> int:
    return int(getattr(data.costs, "upbit" if venue == VENUE_UPBIT else "binance").latency_ms * 1e6)


def run_scenario(sc: Scenario, datas: Sequence[RouteData], cfg: EngineConfig) -> ScenarioResult:
    """Backtest (with the config's risk tiers) under ``sc``."""
    sdatas, scfg = prepare(sc, datas, cfg)
    runs, risk = replay_routes(sdatas, scfg)
    curve = equity_curve(closed_trips([r.real for r in runs]))
    fig = scenario_figures(runs, risk, scfg)
    fig["events_changed"] = touched(datas, sdatas)
    fig["shock_quotes"] = sum(sc.tradable_quotes(d.events, d.base, _latency_ns(d, sc.venue)) for d in sdatas)
    return ScenarioResult(sc.name, fig, curve.ts, curve.cum_net_krw)


def crash_not_shown(sc: Scenario, fig: dict[str, Any], has_trip: bool) -> str | None:
    """Why the data cannot show whether a price shock trips the kill switch (None: it can). Decided from the
    anchor and the stressed data's quote times, never from the run: with no position open there is nothing to
    lose, and when no quote of the venue inside the shock is one a leg sent on the first crashed quote could
    meet (stamped at or after it arrives), the crashed price is seen but never tradable -- the stop's close
    meets the venue's next quote, after the shock (sparse snapshots: minutes to hours between quotes)."""
    if not has_trip:
        return "the baseline has no round trip to place the crash on: no position open, nothing to lose"
    if int(fig.get("shock_quotes", 0)) < 1:
        venue = VENUE_NAMES.get(sc.venue, str(sc.venue))
        return (f"no {venue} quote inside the {sc.duration_ns / MIN_NS:g} min shock on {sc.route} that a close "
                "sent on the first crashed quote could meet (a leg fills at a quote stamped after it arrives): "
                "the crashed price is never tradable")
    return None


def check(sc: Scenario, fig: dict[str, Any], policy_s: float, base: dict[str, Any],
          has_trip: bool = True) -> dict[str, object] | None:
    """The verdict of a scenario that is a test (None for the others): ``passed`` True / False, or None with
    ``verdict`` 'not shown' when the data cannot show it (neither a pass nor a failure; the detail says why)."""
    if sc.expect == "kill_switch":
        ok = fig["halts"]["kill_switch"] > 0
        why = (f"kill switch at {fig['kill_switch_at']}: {fig['kill_switch_reason']}" if ok else
               f"no kill switch: worst drawdown {fig['max_drawdown_krw']} KRW realized, net {fig['net_pnl_krw']} KRW")
        hidden = crash_not_shown(sc, fig, has_trip)
        return {"expect": "the flash crash trips the kill switch", "passed": None if hidden else ok,
                "verdict": "not shown" if hidden else ("passed" if ok else "failed"),
                "detail": f"not shown on this data: {hidden} ({why})" if hidden else why,
                "exercised": fig["events_changed"] > 0}
    if sc.expect == "unhedged_within_policy":
        ok = fig["trips_unhedged_over_policy"] == 0
        why = (f"worst {fig['unhedged_max_s']:.3f} s unhedged ({fig['unhedged_max_trip']}, up to "
               f"{fig['unhedged_max_krw']:,.0f} KRW); policy risk.max_unhedged_s = {policy_s:g} s; "
               f"{fig['trips_unhedged_over_policy']} trip(s) over it (baseline {base['trips_unhedged_over_policy']}, "
               f"worst {base['unhedged_max_s']:.3f} s); legs expired {fig['legs_expired']}")
        return {"expect": f"no trip unhedged longer than risk.max_unhedged_s ({policy_s:g} s)", "passed": ok,
                "verdict": "passed" if ok else "failed", "detail": why, "exercised": fig["events_changed"] > 0}
    return None


def _delta(fig: dict[str, Any], base: dict[str, Any]) -> dict[str, object]:
    with localcontext(EXACT):
        return {"net_pnl_krw": money(Decimal(fig["net_pnl_krw"]) - Decimal(base["net_pnl_krw"])),
                "max_drawdown_krw": money(Decimal(fig["max_drawdown_krw"]) - Decimal(base["max_drawdown_krw"])),
                "trades": fig["trades"] - base["trades"]}


@dataclass(frozen=True)
class StressRequest:
    store: Path
    routes: str
    out: Path
    scenarios: str = "all"
    config: EngineConfig = field(default_factory=EngineConfig)
    params: StressParams = field(default_factory=StressParams)
    start_ns: int | None = None
    end_ns: int | None = None
    use_ray: bool = True
    progress: bool = True
    paper_scenario: str | None = None  # also paper under this scenario: its trades must equal the backtest's


def _run_all(scens: Sequence[Scenario], datas: list[RouteData], cfg: EngineConfig, use_ray: bool,
             tick: Callable[[str], None]) -> list[ScenarioResult]:
    """Each scenario's backtest: Ray tasks sharing one copy of the loaded data, or one after another here."""
    if not (use_ray and len(scens) > 1):
        out = []
        for sc in scens:
            out.append(run_scenario(sc, datas, cfg))
            tick(sc.name)
        return out
    from ..core.replay import warm_up
    from ..infra.ray_runtime import ensure_ray

    warm_up()
    ray = ensure_ray()
    shared = ray.put(datas)
    task = ray.remote(run_scenario)
    refs = [task.remote(sc, shared, cfg) for sc in scens]
    out = []
    for sc, ref in zip(scens, refs, strict=True):  # in order: the progress bar moves as each one is collected
        out.append(ray.get(ref))
        tick(sc.name)
    return out


def run_stress(req: StressRequest) -> dict[str, Any]:
    """Baseline and every scenario through the backtest; stress.json / .csv / .html and one plot per scenario."""
    scens = select(req.scenarios, req.params)
    bt = BacktestRequest(store=req.store, routes=req.routes, out=req.out, config=req.config, start_ns=req.start_ns,
                         end_ns=req.end_ns, use_ray=req.use_ray, progress=False)
    routes = list(universe_of(bt).routes)
    datas = _load_routes(bt, routes)
    bar = None
    if req.progress:
        from tqdm import tqdm

        bar = tqdm(total=len(scens) + 1, desc="scenarios", unit="run")

    def tick(_: str) -> None:
        if bar is not None:
            bar.update(1)

    baseline_sc = Scenario("baseline", "baseline", "the data and costs as recorded")
    runs, risk = replay_routes(datas, req.config)
    base_curve = equity_curve(closed_trips([r.real for r in runs]))
    base = ScenarioResult("baseline", {**scenario_figures(runs, risk, req.config), "events_changed": 0},
                          base_curve.ts, base_curve.cum_net_krw)
    tick("baseline")
    anchor = anchor_of(runs, int(req.params.shock_min * MIN_NS))
    placed = [anchor.place(sc) for sc in scens]
    results = _run_all(placed, datas, req.config, req.use_ray, tick)
    if bar is not None:
        bar.close()
    policy = req.config.risk.max_unhedged_s
    rows: list[dict[str, Any]] = [{"name": "baseline", "scenario": baseline_sc.to_dict(), "figures": base.figures}]
    for sc, res in zip(placed, results, strict=True):
        rows.append({"name": sc.name, "scenario": sc.to_dict(), "figures": res.figures,
                     "vs_baseline": _delta(res.figures, base.figures),
                     "check": check(sc, res.figures, policy, base.figures, anchor.trip is not None)})
    checks = {r["name"]: r["check"] for r in rows if r.get("check")}
    report: dict[str, Any] = {
        "store": str(req.store), "routes": routes,
        "data": {"from": iso(min(r.real.first_ts for r in runs)), "to": iso(max(r.real.last_ts for r in runs))},
        "anchor": anchor.to_dict(), "params": dataclasses.asdict(req.params),
        "policy": {"max_unhedged_s": policy, "max_drawdown_krw": str(req.config.risk.max_drawdown_krw)},
        "scenarios": rows, "checks": checks,
        "checks_passed": all(c["passed"] is not False for c in checks.values()),  # no check failed
        "checks_not_shown": [n for n, c in checks.items() if c["passed"] is None],
    }
    if req.paper_scenario is not None:
        picked = next((s for s in placed if s.name == req.paper_scenario), None)
        report["paper_check"] = paper_check(req, picked or anchor.place(select(req.paper_scenario, req.params)[0]))
    from .stress_report import write_stress

    write_stress(req.out, report, {r.name: (r.curve_ts, r.curve_krw) for r in [base, *results]})
    return report


def paper_check(req: StressRequest, sc: Scenario) -> dict[str, object]:
    """Paper (Ray actors) and the backtest, both without risk tiers, on the data ``sc`` made: the README's
    parity, under stress. Equal trades.csv and fills.csv mean paper consumed the very same transformed data."""
    from ..core.replay import run_route
    from .backtest import risk_summary, summarize
    from .outputs import write_outputs
    from .paper import PaperRequest, run_paper

    out = req.out / "paper_check" / sc.name
    bt_req = BacktestRequest(store=req.store, routes=req.routes, out=out, config=req.config, start_ns=req.start_ns,
                             end_ns=req.end_ns, use_ray=False, progress=False)
    sdatas, cfg = prepare(sc, _load_routes(bt_req, list(universe_of(bt_req).routes)), req.config)
    runs = [RouteRun(d, run_route(d.base, d.events, cfg.model_copy(update={"costs": d.costs}), d.binance))
            for d in sdatas]  # the backtest with --no-risk: routes replay independently
    bt = summarize(runs, cfg)
    bt["risk"] = risk_summary(None)
    write_outputs(out / "backtest", bt, runs)
    pp = run_paper(PaperRequest(store=req.store, routes=req.routes, out=out / "paper", config=cfg, risk=None,
                                start_ns=req.start_ns, end_ns=req.end_ns,
                                transform=functools.partial(apply_route, sc)))
    same = {name: (out / "paper" / name).read_bytes() == (out / "backtest" / name).read_bytes()
            for name in ("trades.csv", "fills.csv")}
    return {"scenario": sc.name, "trades_backtest": bt["trades"], "trades_paper": pp["trades"],
            "net_pnl_krw_backtest": bt["net_pnl_krw"], "net_pnl_krw_paper": pp["net_pnl_krw"],
            "identical": all(same.values()), "files_identical": same, "out": str(out)}
