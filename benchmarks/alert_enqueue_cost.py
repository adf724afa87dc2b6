"""What raising an alert costs when channels are configured: ``Notifier.enqueue`` (route, dedup, one outbox
record appended) with every channel down, fsync on and off. The fsync is the price of losing nothing; it is
paid on the AlertActor, never by a caller (callers use ``raise_alert.remote`` and do not wait).

Usage: python benchmarks/alert_enqueue_cost.py [--n 1000]   (the outbox goes to a temporary directory)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

from arbitrage_lite.core.alerts_config import AlertsConfig
from arbitrage_lite.infra.notify import Notifier
from arbitrage_lite.infra.notify.channels import Outcome
from arbitrage_lite.infra.notify.outbox import FileLog


class _Down:
    name = "webhook"

    async def send(self, session: Any, notice: Any) -> Outcome:
        return Outcome("retry")


def measure(n: int, fsync: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        cfg = AlertsConfig.model_validate({"queue": {"path": f"{d}/o.jsonl", "fsync": fsync},
                                           "route_p0": ["webhook"]})
        notifier = Notifier(cfg, {"webhook": _Down()}, FileLog(cfg.queue.path, fsync=fsync))
        took = []
        for i in range(n):  # distinct subjects: nothing is de-duplicated
            t0 = time.perf_counter()
            notifier.enqueue("kill_switch", 0, f"route{i}", "leg unhedged", i)
            took.append(time.perf_counter() - t0)
        notifier.outbox.log.close()
    took.sort()
    return {"p50_us": took[n // 2] * 1e6, "p99_us": took[int(n * 0.99)] * 1e6, "max_us": took[-1] * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    out = {"fsync_on": measure(args.n, True), "fsync_off": measure(args.n, False)}
    for k, v in out.items():
        print(f"{k:10s} p50 {v['p50_us']:8.0f} us  p99 {v['p99_us']:8.0f} us  max {v['max_us']:8.0f} us")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
