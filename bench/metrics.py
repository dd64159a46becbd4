"""Reading a run's RL steps from metrics.jsonl, shared by the bench scripts."""

from __future__ import annotations

import json
from pathlib import Path

# time/rollout_wait: the part of rollout the step waited for (all of it in sync mode; in async mode
# the rest overlapped with training)
STAGES = ("time/rollout_wait", "time/reward", "time/train", "time/sync")


def rl_steps(run_dir: str | Path, skip: int = 1) -> list[dict]:
    """The run's RL step records after the first `skip` (step 1 includes the engines' warm-up)."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("stage") == "rl"][skip:]
