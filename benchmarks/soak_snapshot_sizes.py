"""What a soak's route snapshots cost per window, from the file store the run left behind.

    python benchmarks/soak_snapshot_sizes.py RUN_DIR/snapshots [--env soak]

For each route, the newest snapshot (the file store holds a copy of every snapshot, Redis or not) as saved,
and as the code before the history segments saved it: the same snapshot with the whole kernel history (fills,
trips, premium series) rebuilt from its segments and put back. Prints the sums over the routes, the segments
per route and the history rows. See benchmarks/README.md ("History segments").
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from arbitrage_lite.actors.recovery import RecoveryConfig, Snapshots
from arbitrage_lite.actors.route_snapshot import History
from arbitrage_lite.core.route_state import HISTORY, RouteState
from arbitrage_lite.infra.snapshot_codec import encode
from arbitrage_lite.infra.snapshots import PREFIX


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", help="the run's snapshot directory (soak: RUN_DIR/snapshots)")
    ap.add_argument("--env", default="soak")
    args = ap.parse_args()
    new = old = 0
    rows: list[dict[str, int]] = []
    segments: list[int] = []
    for route_dir in sorted((Path(args.dir) / PREFIX / args.env).glob("*/route/*")):
        run, name = route_dir.parts[-3], route_dir.name
        snaps = Snapshots(RecoveryConfig(run, env=args.env, dir=args.dir), "route", name)
        snap = snaps.load()
        if snap is None:
            continue
        state = RouteState.from_snapshot(snap["state"], History().restore(snap.get("history"), snaps))
        whole = {k: v for k, v in snap.items() if k != "history"} | {"state": state.to_snapshot()}
        new += len(encode(snap))
        old += len(encode(whole))
        rows.append(state.used_rows())
        segments.append(len(list((route_dir / "hist").glob("*.part"))))
    if not rows:
        raise SystemExit(f"no route snapshots under {args.dir} (env {args.env})")
    print(f"{len(rows)} routes; newest snapshots, all routes: {new / 1e3:.0f} KB (whole history in them, as "
          f"before: {old / 1e3:.0f} KB); segments per route mean {statistics.mean(segments):.1f} max {max(segments)}")
    for g in HISTORY:
        print(f"  {g} rows per route: mean {statistics.mean(r[g] for r in rows):.0f}, max {max(r[g] for r in rows)}")


if __name__ == "__main__":
    main()
