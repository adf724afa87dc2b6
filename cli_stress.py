"""``arbitrage-lite stress``: the backtest under robustness scenarios against the baseline (issue 14 §3).

Exit 0 when no check a selected scenario carries failed (the flash crash trips the kill switch, the venue
outage leaves no trip unhedged past risk.max_unhedged_s, paper under --paper equals the backtest; a check the
data cannot show is printed "not shown" with why, and fails nothing), 1 when one failed (the outputs are
written either way), 2 on bad input.
"""

from __future__ import annotations

import argparse
from typing import Any

from . import cli_checks as chk
from .cli_checks import UsageError

VENUES = {"upbit": 0, "binance": 1}


def _scenario_names(text: str) -> str:
    """``all`` or a comma list of known names (checked while parsing: nothing loads on a typo)."""
    from .scenarios.stress import StressParams, select

    try:
        select(text, StressParams())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _params(args: argparse.Namespace) -> Any:
    from .scenarios.stress import StressParams

    return StressParams(fee_factor=args.fee_factor, crash_pct=args.crash_pct, spike_pct=args.spike_pct,
                        shock_min=args.shock_min, noise_bps=args.noise_bps, stagger_ms=args.stagger_ms,
                        stagger_venue=VENUES[args.stagger_venue], fx_pct=args.fx_pct, fx_min=args.fx_min,
                        outage_s=args.outage_s, outage_venue=VENUES[args.outage_venue], seed=args.seed)


def _cmd_stress(args: argparse.Namespace) -> int:
    store, out = chk.existing_store(args.store), chk.output_dir(args.out)
    start, end = chk.time_range(args.start, args.end)
    cfg = chk.engine_config(args)
    if args.paper is not None and (args.paper.strip().lower() == "all" or "," in args.paper):
        raise UsageError("--paper takes one scenario name (paper replays through Ray actors: one run)")
    params = _params(args)
    from .infra.ray_runtime import configure

    configure(getattr(args, "ray_address", None))
    from .scenarios.stress import StressRequest, run_stress

    report = run_stress(StressRequest(store=store, routes=args.routes, out=out, scenarios=args.scenarios, config=cfg,
                                      params=params, start_ns=start, end_ns=end, use_ray=not args.no_ray,
                                      progress=not args.no_progress, paper_scenario=args.paper))
    _print(report)
    print(f"wrote {out}/stress.json, stress.csv, stress.html, plots/")
    paper = report.get("paper_check")
    return 0 if report["checks_passed"] and (paper is None or paper["identical"]) else 1


def _print(report: dict[str, Any]) -> None:
    print(f"routes: {', '.join(report['routes'][:10])}  ({report['data']['from']} -> {report['data']['to']}); "
          f"anchor {report['anchor']}")
    print(f"{'scenario':<16} {'trades':>6} {'net KRW':>14} {'vs base':>14} {'max DD KRW':>13} {'unhedged max s':>14} "
          f"{'notional KRW':>13} {'halts':>5}")
    for row in report["scenarios"]:
        f = row["figures"]
        delta = float((row.get("vs_baseline") or {}).get("net_pnl_krw", 0))
        print(f"{row['name']:<16} {f['trades']:>6} {float(f['net_pnl_krw']):>14,.0f} {delta:>14,.0f} "
              f"{float(f['max_drawdown_krw']):>13,.0f} {f['unhedged_max_s']:>14.1f} {f['unhedged_max_krw']:>13,.0f} "
              f"{sum(f['halts'].values()):>5}")
    for name, c in report["checks"].items():
        verdict = "not shown" if c["passed"] is None else "passed" if c["passed"] else "FAILED"
        print(f"check {name}: {verdict} - {c['detail']}")
    paper = report.get("paper_check")
    if paper is not None:
        print(f"paper under {paper['scenario']}: {'identical to' if paper['identical'] else 'DIFFERS from'} the "
              f"backtest ({paper['trades_paper']} vs {paper['trades_backtest']} trades)")


def add_stress(sub: Any, common: Any) -> None:
    """Register the ``stress`` command."""
    st = sub.add_parser("stress", help="backtest under robustness scenarios (slippage, fees, crash, outage, ...) "
                        "against the baseline")
    st.add_argument("--store", required=True)
    st.add_argument("--routes", required=True, type=chk.routes, help="comma list of bases (BTC,ETH) or top:N")
    st.add_argument("--scenarios", default="all", type=_scenario_names,
                    help="all, or a comma list of: slippage_x2, slippage_x3, fee_surge, flash_crash, spike, "
                         "quote_noise, latency_stagger, fx_shock, venue_down")
    st.add_argument("--from", dest="start", help="UTC, ISO (2024-12-01 or 2024-12-01T09:30)")
    st.add_argument("--to", dest="end", help="UTC, ISO; after --from")
    st.add_argument("--out", required=True)
    st.add_argument("--paper", metavar="SCENARIO", type=_scenario_names,
                    help="also paper-trade under this scenario (no risk tiers) and require trades identical to "
                         "the backtest's")
    pos = chk.finite(0.0, float("inf"), "a positive number")
    st.add_argument("--fee-factor", type=pos, default=3.0, help="fee_surge: taker fees times this")
    st.add_argument("--crash-pct", type=chk.finite(0.0, 100.0, "between 0 and 100"), default=30.0,
                    help="flash_crash: percent down at once")
    st.add_argument("--spike-pct", type=pos, default=30.0, help="spike: percent up at once")
    st.add_argument("--shock-min", type=pos, default=10.0, help="crash/spike: minutes to come back")
    st.add_argument("--noise-bps", type=pos, default=5.0, help="quote_noise: standard deviation in bps")
    st.add_argument("--stagger-ms", type=pos, default=5000.0, help="latency_stagger: the venue's data this late")
    st.add_argument("--stagger-venue", choices=list(VENUES), default="binance")
    st.add_argument("--fx-pct", type=chk.finite(-100.0, float("inf"), "above -100"), default=5.0,
                    help="fx_shock: KRW per USDT moves this many percent")
    st.add_argument("--fx-min", type=pos, default=60.0, help="fx_shock: minutes it lasts")
    st.add_argument("--outage-s", type=pos, default=600.0, help="venue_down: seconds the venue is down")
    st.add_argument("--outage-venue", choices=list(VENUES), default="upbit")
    st.add_argument("--seed", type=chk.count(0), default=0, help="quote_noise's random seed")
    st.add_argument("--no-ray", action="store_true", help="run the scenarios in this process, one after another")
    st.add_argument("--no-progress", action="store_true")
    common(st)
    st.set_defaults(func=_cmd_stress)
