"""A paper replay on a two-node Ray cluster started on this machine (``ray.cluster_utils.Cluster``).

Routes are spread over both nodes; the run must give the same trades as the in-process backtest.
``python -m arbitrage_lite.scenarios.two_node STORE ROUTES OUT`` prints a JSON line with the nodes used.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    import ray
    from ray.cluster_utils import Cluster

    from .backtest import BacktestRequest, run_backtest
    from .paper import PaperRequest, run_paper

    store, routes, out = Path(argv[0]), argv[1], Path(argv[2])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        paper = run_paper(PaperRequest(store=store, routes=routes, out=out / "paper", risk=None, spread_nodes=True,
                                       window_events=500))
        run_backtest(BacktestRequest(store=store, routes=routes, out=out / "backtest", use_ray=False, progress=False))
        nodes = sorted({r["node_id"] for r in paper["paper"]["routes"]})  # type: ignore[index]
        same = (out / "paper" / "trades.csv").read_bytes() == (out / "backtest" / "trades.csv").read_bytes()
        n_nodes = len(ray.nodes())  # type: ignore[no-untyped-call]
        print(json.dumps({"cluster_nodes": n_nodes, "route_nodes": len(nodes), "trades": paper["trades"],
                          "same_trades_as_backtest": same, "net_pnl_krw": paper["net_pnl_krw"]}))
    finally:
        ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
