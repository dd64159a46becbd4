"""Share of each RL step spent per stage, from a run's metrics.jsonl (target: weight sync < 5 %).

    .venv/bin/python bench/step_breakdown.py runs/tiny-cpu
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# time/rollout_wait: the part of rollout the step waited for (all of it in sync mode; in async mode
# the rest overlapped with training)
STAGES = ("time/rollout_wait", "time/reward", "time/train", "time/sync")


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rows = [json.loads(line) for line in (Path(sys.argv[1]) / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r.get("stage") == "rl"][1:]  # step 1 includes engine warm-up
    if not steps:
        sys.exit(f"no RL steps after the first in {sys.argv[1]}/metrics.jsonl")
    total = sum(r["time/step"] for r in steps)
    print(f"{len(steps)} RL steps (step 1 excluded), mean step {total / len(steps):.2f} s")
    for key in STAGES:
        spent = sum(r[key] for r in steps)
        print(f"{key:18s} {spent / len(steps):7.3f} s  {100 * spent / total:5.1f} %")
    sync_share = sum(r["time/sync"] for r in steps) / total
    print(f"weight sync share: {100 * sync_share:.1f} % (target < 5 %)")


if __name__ == "__main__":
    main()
