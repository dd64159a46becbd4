"""What one RL step records: its metrics.jsonl / wandb line, its ledger entry, events and samples.

The loop hands over what each stage produced; everything about naming and assembling the record
lives here, so the loop body stays in the order the data flows.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from cosmo.data import Sample
from cosmo.driver.rl_batch import ScoredRollouts, TrainBatch
from cosmo.driver.tracking import RunTracker
from cosmo.weights import SyncReport


@dataclass
class StepTimer:
    """Wall time per named stage of one step (seconds; `time/<name>` in the metrics), and when the step
    began (the previous one's end). Every stage of the loop runs in one `block`, as verl's named timers."""

    began: float
    marks: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def block(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.marks[name] = self.marks.get(name, 0.0) + time.perf_counter() - started


STAGES = ("rollout_wait", "reward", "refill", "advantage", "train", "sync")
"""The loop's timed blocks, in the order the data flows (`refill`: dynamic sampling's extra rounds)."""


def rl_step_metrics(step: int, scored: ScoredRollouts, batch: TrainBatch, train: dict, sync: SyncReport,
                    timer: StepTimer, epoch: int) -> dict:
    """The step's metrics line: reward statistics, the learner's train/* figures, timings, policy lag, sync."""
    stats = {**batch.stats, **{f"train/{k}": v for k, v in train.items()}}
    stats.update({f"time/{name}": timer.marks[name] for name in STAGES if name in timer.marks})
    stats.update({
        "time/rollout": scored.rollout_s, "time/step": time.perf_counter() - timer.began,
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
