"""Share of each RL step spent per stage, from a run's metrics.jsonl, every RL stage of it (target: weight
sync < 5 %).

    .venv/bin/python bench/step_breakdown.py runs/tiny-cpu
"""

from __future__ import annotations

import sys

from metrics import STAGES, rl_steps


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    steps = rl_steps(sys.argv[1])
    if not steps:
        sys.exit(f"no RL steps after the first in {sys.argv[1]}/metrics.jsonl")
    total = sum(r["time/step"] for r in steps)
    print(f"{len(steps)} RL steps (step 1 excluded), mean step {total / len(steps):.2f} s")
    for key in STAGES:
        spent = sum(r.get(key, 0.0) for r in steps)  # refill: only steps that refilled
        print(f"{key:18s} {spent / len(steps):7.3f} s  {100 * spent / total:5.1f} %")
    sync_share = sum(r["time/sync"] for r in steps) / total
    print(f"weight sync share: {100 * sync_share:.1f} % (target < 5 %)")


if __name__ == "__main__":
    main()
