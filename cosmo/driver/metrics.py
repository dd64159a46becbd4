"""What one RL step records: its metrics.jsonl / wandb line, its ledger entry, events and samples.

The loop hands over what each stage produced; everything about naming and assembling the record
lives here, so the loop body stays in the order the data flows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from cosmo.data import Sample
from cosmo.driver.rl_batch import ScoredRollouts, TrainBatch
from cosmo.driver.tracking import RunTracker
from cosmo.weights import SyncReport


@dataclass
class StepTimer:
    """Wall time per stage of one step (seconds), and when the step began (the previous one's end)."""

    began: float
    marks: dict[str, float] = field(default_factory=dict)
    _open: tuple[str, float] | None = None

    def start(self, name: str) -> None:
        self._open = (name, time.perf_counter())

    def stop(self) -> float:
        assert self._open is not None, "StepTimer.stop() without start()"
        name, t0 = self._open
        self.marks[name] = self.marks.get(name, 0.0) + time.perf_counter() - t0
        self._open = None
        return self.marks[name]


def rl_step_metrics(step: int, scored: ScoredRollouts, batch: TrainBatch, train: dict, sync: SyncReport,
                    timer: StepTimer, epoch: int) -> dict:
    """The step's metrics line: reward statistics, the learner's train/* figures, timings, policy lag, sync."""
    stats = {**batch.stats, **{f"train/{k}": v for k, v in train.items()}}
    stats.update({
        "time/rollout": scored.rollout_s, "time/rollout_wait": scored.wait_s,
        "time/reward": scored.reward_s, "time/train": timer.marks.get("train", 0.0),
        "time/sync": timer.marks.get("sync", 0.0), "time/step": time.perf_counter() - timer.began,
        "policy/version": batch.version, "policy/version_lag": step - 1 - batch.version,
        **sync.metrics(),  # sync/digest_match: every engine loaded exactly what the learner packed
        "epoch": epoch,
    })
    return stats


def record_rl_step(tracker: RunTracker, stage: str, step: int, total: int, rows: list[Sample], batch: TrainBatch,
                   stats: dict, events: list[dict], samples_every: int) -> None:
    """Ledger (which rows trained), events (a skipped update, restarted workers), the metrics line, and
    sample trajectories when due, each under the stage's name."""
    if stats["train/skipped"]:  # non-finite update: the weights did not change, the engines keep theirs
        tracker.log("event", step, {"event": "update skipped: non-finite loss or gradient norm",
                                    "loss": stats["train/loss"], "time": time.time()})
    tracker.log_ledger(stage, step, [rows[it.sample_index].id for it in batch.items],
                       excluded=[k for k, it in enumerate(batch.items) if it.exclude],
                       skipped=bool(stats["train/skipped"]))
    for event in events:
        tracker.log("event", step, event)
    tracker.log(stage, step, stats)
    if samples_every and (step % samples_every == 0 or step == total):
        tracker.log_samples(stage, step, [{**x, "prompt": rows[x["sample_index"]].prompt,
                                           "images": [str(p) for p in rows[x["sample_index"]].images]}
                                          for x in batch.samples])
