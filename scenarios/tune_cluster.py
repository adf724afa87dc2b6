"""A tuning study on a two-node Ray cluster started on this machine (``ray.cluster_utils.Cluster``).

Each node has one CPU and one ``tune_cpu`` (the custom resource tuning trials also ask for where a cluster
has it), so two trials at once run on both nodes. ``python -m arbitrage_lite.scenarios.tune_cluster STORE
SPACE OUT [SHIP]`` prints a JSON line: the cluster's nodes, the nodes the trials ran on and the store folder
each node read (SHIP: --ship-store's auto | always | never; with auto, the worker node reads a copy shipped
through the object store, as a node of a ``ray up`` cluster without shared storage would).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    import ray
    from ray.cluster_utils import Cluster

    from ..core.config import EngineConfig
    from .tune import TUNE_RESOURCE, TuneRequest, run_tune
    from .tune_space import load_space

    store, space, out = Path(argv[0]), Path(argv[1]), Path(argv[2])
    ship = argv[3] if len(argv) > 3 else "auto"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "resources": {TUNE_RESOURCE: 1}})
    cluster.add_node(num_cpus=1, resources={TUNE_RESOURCE: 1})
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        req = TuneRequest(out=out, db=str(out / "study.sqlite3"), study="two_node", store=store, routes="BTC",
                          space=load_space(space, EngineConfig()), search="random", folds=1, trials=4, slices=1,
                          early_stop=False, progress=False, ship_store=ship)
        result = run_tune(req)
        from ..infra.study_db import StudyDB

        with StudyDB(req.db) as db:
            trials = db.trials(req.study)
        nodes = sorted({t["metrics"]["node_id"] for t in trials})
        read = {t["metrics"]["node_id"]: t["metrics"].get("store_read") for t in trials}
        print(json.dumps({"cluster_nodes": len(ray.nodes()), "trial_nodes": nodes,  # type: ignore[no-untyped-call]
                          "head_node": ray.get_runtime_context().get_node_id(), "store_read": read,
                          "trials": result["trials"], "holdout": "holdout" in result}))
    finally:
        ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
