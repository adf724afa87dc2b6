"""``arbitrage-lite live``: routes trading venues event at a time, on the actor system, with the backtest's outputs.

With no venues configured it starts the local fake venues in this process (they speak the real Upbit and
Binance protocols on 127.0.0.1) and trades them, so the whole live system runs on a fresh machine. Real venues
need keys in the environment, ``real=True`` (the CLI's explicit confirmation flag) and stay under the order caps.

The run: a LiveHostActor (Ray) holds the hot path (feeds, kernels, risk, journal, gateways); the Portfolio and
Alert actors are told fire-and-forget. A status line is printed while it runs; at the end (``seconds`` or
Ctrl-C) every route finishes the legs it has in flight, and summary.json / trades.csv / report.html are written
as for a backtest (``mode: live``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..actors.live_host import LiveSpec, VenueEndpoint
from ..core.config import EngineConfig
from ..core.events import empty_batch
from ..core.live_orders import OrderCaps
from ..core.rules import InstrumentRules, binance_rules
from .backtest import RouteRun, capital_krw, risk_summary, summarize
from .market_data import RouteData
from .outputs import write_outputs


class LiveError(ValueError):
    """A live run that may not start (missing keys, no confirmation, unknown route): the message says why."""


@dataclass(frozen=True)
class LiveRequest:
    routes: str  # "BTC,ETH" or top:N (the venues' common markets, in the fakes' order)
    out: Path
    config: EngineConfig = field(default_factory=EngineConfig)
    seconds: float | None = None  # None: until Ctrl-C
    shadow: bool = False
    real: bool = False  # real venues (keys from the environment); needs the CLI's confirmation flag
    caps: OrderCaps = field(default_factory=OrderCaps)
    slippage_bps: Decimal = Decimal(30)
    fakes: Any = None  # infra.venues.fake.server.FakeVenues to start (None: the default synthetic market)
    run_id: str = "live1"
    journal_dir: str | None = None
    journal_dsn: str | None = None
    status_every_s: float = 1.0
    echo: Callable[[str], None] | None = None  # the status line's printer (None: stderr)
    record: bool = True  # what the routes ran and decided, into out/store (arbitrage-lite replay-check)
    on_stop: str = "flatten"  # at the end: flatten open positions with real orders, or report them (killswitch)
    flatten_s: float = 20.0  # how long the end waits for the flatten orders
    control_port: int | None = 0  # the loopback control surface (infra.live.control); 0: any free port, None: off
    dashboard_port: int | None = None  # the web dashboard (infra.dashboard) on 127.0.0.1; 0: any free port
    exporter: Any = None  # infra.metrics.Exporter already serving (the CLI binds it): fed from each status

    def __post_init__(self) -> None:
        if self.on_stop not in ("flatten", "report"):  # refused before anything starts, not at the stop
            raise LiveError(f"on_stop must be flatten or report, not {self.on_stop!r}")


def _endpoints_from_fakes(info: dict[str, Any]) -> tuple[VenueEndpoint, VenueEndpoint]:
    b, u = info["binance"], info["upbit"]
    return (VenueEndpoint(b["rest"], b["ws"], b["api_key"], b["secret"]),
            VenueEndpoint(u["rest"] + "/v1", u["ws"], u["access_key"], u["secret"]))


def _endpoints_from_env() -> tuple[VenueEndpoint, VenueEndpoint]:
    need = ["BINANCE_API_KEY", "BINANCE_API_SECRET", "UPBIT_ACCESS_KEY", "UPBIT_SECRET_KEY"]
    missing = [k for k in need if not os.environ.get(k)]
    if missing:
        raise LiveError(f"real venues need {', '.join(missing)} in the environment")
    return (VenueEndpoint("https://api.binance.com", "wss://stream.binance.com:9443", os.environ["BINANCE_API_KEY"],
                          os.environ["BINANCE_API_SECRET"]),
            VenueEndpoint("https://api.upbit.com/v1", "wss://api.upbit.com/websocket/v1",
                          os.environ["UPBIT_ACCESS_KEY"], os.environ["UPBIT_SECRET_KEY"]))


def pick_routes(spec: str, binance_markets: list[str], upbit_markets: list[str]) -> list[str]:
    """Bases listed on both venues: the given list (each must be listed) or the first N of ``top:N``."""
    common = [m[:-4] for m in binance_markets if m.endswith("USDT") and f"KRW-{m[:-4]}" in upbit_markets]
    if spec.startswith("top:"):
        n = int(spec[4:])
        return [b for b in common if b != "USDT"][:n]
    wanted = [s.strip().upper() for s in spec.split(",") if s.strip()]
    unknown = [b for b in wanted if b not in common]
    if unknown:
        raise LiveError(f"not listed on both venues: {', '.join(unknown)} (both list {len(common)} coins)")
    return wanted


async def _binance_rules(endpoint: VenueEndpoint, bases: list[str]) -> dict[str, InstrumentRules]:
    from ..infra.venues.binance.client import BinanceClient

    async with BinanceClient(endpoint.rest, endpoint.key, endpoint.secret) as client:
        info = await client.load_rules()
    out = {}
    for base in bases:
        r = info.symbols[f"{base}USDT"]
        out[base] = binance_rules(format(r.tick, "f"), format(r.step, "f"), format(r.min_notional, "f"))
    return out


def _status_line(st: dict[str, Any]) -> str:
    routes = st["routes"]
    trips = sum(r["trips"] for r in routes.values())
    net = sum(Decimal(r["net_krw"]) for r in routes.values())
    open_ = sum(1 for r in routes.values() if r["position"])
    prem = [r["premium_bps"] for r in routes.values() if r["premium_bps"] is not None and r["premium_bps"] == r[
        "premium_bps"]]
    feeds = " ".join(f"{v}:{f['books'] + f['deltas']}" for v, f in st["feeds"].items())
    risk = st.get("risk") or {}
    halted = {"halted": "HALTED", "paused": "PAUSED"}.get(str(risk.get("mode")), "ok")  # PAUSED: live-ctl pause
    med = sorted(prem)[len(prem) // 2] if prem else float("nan")
    return (f"[{st['uptime_s']:7.1f}s] routes {len(routes)}  premium med {med:+7.1f} bps  open {open_}  trips {trips}"
            f"  net {net:+,.0f} KRW  risk {halted}  msgs {feeds}  fx {st['fx'] or 0:.2f}"
            + _recon_part(st.get("reconciliation")) + (f"  ERRORS {len(st['errors'])}" if st["errors"] else ""))


def _recon_part(rec: dict[str, Any] | None) -> str:
    """Reconciliation: passes so far, and the routes it holds (no new opens until a pass is clean)."""
    if not rec:
        return ""
    return f"  recon {rec['passes']} " + (f"HELD {','.join(rec['held'])}" if rec["held"] else "ok")


async def _run(req: LiveRequest) -> dict[str, Any]:
    from ..actors.alert import AlertActor
    from ..actors.live_host import LiveHostActor
    from ..actors.portfolio import PortfolioActor
    from ..core.replay import warm_up
    from ..infra.ray_runtime import ensure_ray

    echo = req.echo or (lambda line: print(line, file=sys.stderr, flush=True))
    fakes = None
    if req.real:
        binance, upbit = _endpoints_from_env()
        markets = None
    else:
        fakes = req.fakes if req.fakes is not None else _default_fakes()
        info = await fakes.start()
        binance, upbit = _endpoints_from_fakes(info)
        markets = (info["binance"]["markets"], info["upbit"]["markets"])
    try:
        if markets is None:
            if req.routes.startswith("top:"):
                raise LiveError("real venues: pass the routes as a list (top:N needs the venues' market lists)")
            listed = [s.strip().upper() for s in req.routes.split(",") if s.strip()]
            bases = pick_routes(req.routes, [f"{b}USDT" for b in listed], [f"KRW-{b}" for b in listed])
        else:
            bases = pick_routes(req.routes, *markets)
        if not bases:
            raise LiveError(f"no route: {req.routes} matched none of the venues' common markets")
        rules = await _binance_rules(binance, bases)
        cfg = req.config
        capital = capital_krw(cfg) * len(bases)
        spec = LiveSpec({b: (cfg, rules[b]) for b in bases}, binance, upbit, req.run_id, cfg.risk, capital,
                        req.shadow, req.caps, req.slippage_bps,
                        req.journal_dir or str(req.out / "journal"), req.journal_dsn,
                        record_dir=str(req.out / "store") if req.record else None)
        warm_up()
        ray = ensure_ray()
        alerts = ray.remote(AlertActor).remote(req.run_id, None, None, cfg.alerts.anchored())  # channels, if any
        portfolio = ray.remote(PortfolioActor).remote(None, None)
        host = ray.remote(LiveHostActor).remote(spec, portfolio, alerts)
        started = await host.start.remote()
        await portfolio.connect.remote(host, {b: host for b in bases}, alerts, capital)
        where = "real venues" if req.real else "the local fake venues"
        echo(f"live: {len(bases)} routes ({', '.join(bases[:8])}{'...' if len(bases) > 8 else ''}) on {where}"
             + (" (shadow: no order sent)" if req.shadow else ""))
        stop = asyncio.Event()
        control = await _start_control(host, req, stop.set, echo)
        board = _start_dashboard(req, bases, capital, portfolio, alerts, echo, host)
        try:
            wall = await _until_done(host, req, echo, stop)
            stopped = await host.stop.remote(on_stop=req.on_stop, flatten_s=req.flatten_s)
        finally:
            control_counts = await control.close() if control is not None else None
            if board is not None:
                await board.close()
        results = {b: await host.result.remote(b) for b in bases}
        stats = [await host.stats.remote(b) for b in bases]
        status = await host.status.remote()
        risk_report = status.pop("risk")
        extras = {"started": started, "wall_s": wall, "reconciliation": stopped.pop("reconciliation", None),
                  "host": stopped, "status": status,
                  "alerts": await alerts.alerts.remote(), "portfolio": await portfolio.report.remote(),
                  "routes": [{k: v for k, v in s.items() if k != "latencies_s"} for s in stats],
                  "decision_latency_ms": _percentiles([x * 1e3 for s in stats for x in s["latencies_s"]]),
                  "order_send_ms": _percentiles(await host.send_ms.remote()),
                  "shutdown": stopped.pop("shutdown", None), "control": control_counts}
        for h in (host, portfolio, alerts):
            ray.kill(h)
    finally:
        if fakes is not None:
            extras_fakes = _fake_stats(fakes)
            await fakes.stop()
    extras["fake_venues"] = extras_fakes if fakes is not None else None
    runs = [RouteRun(_live_data(b, cfg, rules[b]), results[b]) for b in bases]
    summary = summarize(runs, cfg, mode="live")
    summary["risk"] = risk_summary(risk_report) if risk_report is not None else None
    summary["live"] = json.loads(json.dumps(extras, default=str))
    write_outputs(req.out, summary, runs)
    return summary


def _start_dashboard(req: LiveRequest, bases: list[str], capital: Decimal, portfolio: Any, alerts: Any,
                     echo: Callable[[str], None], host: Any = None) -> Any:
    """The web dashboard (infra.dashboard: PnL, trades, alerts; with the host: premiums, positions and the
    RiskCoordinator's state it holds), or None when ``dashboard_port`` is None."""
    if req.dashboard_port is None:
        return None
    from ..infra.dashboard.server import start_dashboard
    from ..infra.dashboard.state import RunBoard, Sources

    server = start_dashboard(req.out, req.run_id, req.dashboard_port)
    echo(f"dashboard: {server.page_url} (also in {server.path})")
    return RunBoard(Sources(bases, capital, portfolio, host, alerts, host=host, mode="live"), server)


async def _start_control(host: Any, req: LiveRequest, on_stop: Callable[[], None],
                         echo: Callable[[str], None]) -> Any:
    """The loopback control surface (live-ctl), or None when ``control_port`` is None."""
    if req.control_port is None:
        return None
    from ..infra.live.control import ControlServer

    control = ControlServer(host, req.out, req.run_id, on_stop, port=req.control_port)
    path = await control.start()
    echo(f"control: {control.url} (token in {path}; arbitrage-lite live-ctl --out {req.out} status|pause|resume|"
         "flatten|stop)")
    return control


async def _until_done(host: Any, req: LiveRequest, echo: Callable[[str], None],
                      stop: asyncio.Event | None = None) -> float:
    """Status lines until ``seconds`` have passed, Ctrl-C / SIGTERM or ``stop`` is set (the control surface's
    stop); returns the wall time traded."""
    stop = stop if stop is not None else asyncio.Event()
    metrics = None
    if req.exporter is not None:
        from ..infra.live.metrics_feed import LiveMetrics

        metrics = LiveMetrics()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    t0 = time.monotonic()
    try:
        while not stop.is_set():
            left = None if req.seconds is None else req.seconds - (time.monotonic() - t0)
            if left is not None and left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(req.status_every_s, left if left is not None else 1e9))
            status = await host.status.remote()
            echo(_status_line(status))
            if metrics is not None:
                req.exporter.update(metrics.update(status), health={"watching": True, "silent": []})
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
    return time.monotonic() - t0


def _percentiles(xs: list[float]) -> dict[str, float] | None:
    if not xs:
        return None
    s = sorted(xs)
    return {"n": len(s), "p50": s[len(s) // 2], "p99": s[min(len(s) - 1, int(len(s) * 0.99))], "max": s[-1]}


def _live_data(base: str, cfg: EngineConfig, rules: InstrumentRules) -> RouteData:
    """What the report needs of a route's data: a live run keeps no event history (the recorder does)."""
    return RouteData(base, empty_batch(), "live L2 (venue streams)", "Upbit KRW-USDT book mid (live)", rules,
                     "exchangeInfo (venue)", cfg.costs, 0.0)


def _default_fakes() -> Any:
    from ..infra.venues.fake.server import FakeVenues
    from ..infra.venues.fake.synthetic import SyntheticSpec

    return FakeVenues(synthetic=SyntheticSpec(top_n=50))


def _fake_stats(fakes: Any) -> dict[str, Any]:
    out = {}
    for name in ("binance", "upbit"):
        fake = getattr(fakes, name, None)
        engine = getattr(fake, "engine", None)
        if engine is not None:
            out[name] = {"orders": len(getattr(engine, "orders", {}))}
    return out


def run_live(req: LiveRequest) -> dict[str, Any]:
    return asyncio.run(_run(req))
