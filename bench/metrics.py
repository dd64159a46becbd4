"""Reading a run's RL steps from metrics.jsonl, shared by the bench scripts."""

from __future__ import annotations

from pathlib import Path

from cosmo.report import latest_attempt, read_metrics

# the loop's timed blocks (cosmo.driver.metrics.STAGES), in the order the data flows; time/rollout_wait: the
# part of rollout the step waited for (all of it in sync mode; in async mode the rest overlapped with training)
STAGES = ("time/rollout_wait", "time/reward", "time/refill", "time/advantage", "time/train", "time/sync")


def rl_steps(run_dir: str | Path, skip: int = 1) -> list[dict]:
    """The run's RL step records, of every RL stage (a record with `time/step`; named stages such as rl_general
    and rl_mixed too) after each stage's first `skip` (its step 1 includes the engines' warm-up), of its last
    attempt only: a launch that failed before its first checkpoint and was started again logged its steps twice."""
    records, _ = latest_attempt(read_metrics(Path(run_dir) / "metrics.jsonl"))
    seen: dict[str, int] = {}
    kept = []
    for record in (r for r in records if "time/step" in r):
        seen[record["stage"]] = seen.get(record["stage"], 0) + 1
        if seen[record["stage"]] > skip:
            kept.append(record)
    return kept
