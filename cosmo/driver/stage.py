"""What every training stage sets up the same way: its rows and their order, the learner, where it
checkpoints, and where a resumed launch continues.

SFT and RL differ only in their loop body; both open a `Stage`, run `for step in stage.steps()`, and
call `stage.checkpoint(step, ...)` at the end of every step.
"""

from __future__ import annotations

import contextlib
import logging
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cosmo.config import CosmoConfig, RLConfig, SFTConfig
from cosmo.data import Sample, load_jsonl
from cosmo.data.sampling import EpochSampler, MixtureSampler, make_sampler
from cosmo.driver.checkpoints import save_if_due
from cosmo.driver.resume import ResumePoint
from cosmo.driver.tracking import RunTracker
from learner.checkpoint import TRAIN_STATE
from learner.engine import OptimSpec
from learner.group import LearnerGroup

log = logging.getLogger("cosmo")


@dataclass
class Stage:
    """One stage's state in the driver: everything but the loop body."""

    name: str
    cfg: CosmoConfig
    tracker: RunTracker
    rows: list[Sample]  # the training file, in file order (indices are what the ranks receive)
    sampler: EpochSampler | MixtureSampler
    learner: LearnerGroup
    start_model: str  # the stage's start model: recorded in checkpoints, the KL reference in RL
    first: int  # the first step this launch runs (after a resume: the checkpoint's step + 1)
    total: int
    resume: ResumePoint | None
    path: str = ""  # the newest checkpoint written (or resumed from)
    info: list[dict] = field(default_factory=list)  # each rank's setup report

    def steps(self) -> range:
        return range(self.first, self.total + 1)

    def checkpoint(self, step: int, extra_state: Callable[[], dict] | None = None) -> str | None:
        """Save when due (`checkpoint.every_steps`, and the last step) with the data position, the
        stage's start model and `extra_state()` for a resumed launch; returns the path if saved."""

        def state() -> dict:
            return {"sampler": self.sampler.state_dict(), "stage_start_model": self.start_model,
                    **(extra_state() if extra_state else {})}

        saved = save_if_due(self.cfg, self.learner, Path(self.tracker.dir) / "checkpoints" / self.name, self.name,
                            step, self.total, state)
        self.path = saved or self.path
        return saved


def sampler_seed(seed: int, name: str, kind: str) -> int:
    """The seed of a stage's row order: `seed` for sft and `seed + 1` for rl, as always; a named stage adds a
    number derived from its name, so that two stages over the same tasks do not draw the same rows in the same
    order (each task's order is seeded by the sampler's seed alone)."""
    seed += 1 if kind == "rl" else 0
    return seed if name == kind else seed + zlib.crc32(name.encode())


def optim_spec(section: SFTConfig | RLConfig, items_per_step: int, num_ranks: int) -> OptimSpec:
    """The optimizer's schedule and batch shape for a stage section (`sft` or `rl`), resolved here once; RL
    takes `rl.mini_batches x rl.epochs` optimizer steps per rollout batch, and the schedule counts them."""
    rl = isinstance(section, RLConfig)
    return OptimSpec(lr=section.lr, total_steps=section.steps, warmup_steps=section.warmup_steps,
                     min_lr_ratio=section.min_lr_ratio, micro_batch_size=section.micro_batch_size,
                     grad_accum=items_per_step // (section.micro_batch_size * num_ranks),
                     mini_batches=section.mini_batches if rl else 1, epochs=section.epochs if rl else 1)


@contextlib.contextmanager
def open_stage(cfg: CosmoConfig, tracker: RunTracker, name: str, section: SFTConfig | RLConfig, *,
               model_path: str, train_file: str, items_per_step: int, sampler_seed: int,
               resume: ResumePoint | None, reference: str | None = None,
               sft_file: str | None = None) -> Iterator[Stage]:
    """Read the rows, restore the data order, start the learner on the stage's start model (or on the
    resumed checkpoint, with its optimizer state); the learner is shut down when the block ends.
    `sft_file`: SFT rows the learner adds a supervised loss on (an RL stage's algorithm.sft_coef)."""
    rows = load_jsonl(train_file)
    sampler = make_sampler(cfg, rows, sampler_seed)
    first = 1
    if resume is not None:
        sampler.load_state_dict(resume.state["sampler"])
        first = resume.step + 1
    started = time.perf_counter()
    learner = LearnerGroup(cfg)
    try:
        info = learner.setup(str(resume.path) if resume else model_path, train_file,
                             optim_spec(section, items_per_step, cfg.learner.num_ranks), reference=reference,
                             train_state=str(resume.path / TRAIN_STATE) if resume else None, sft_file=sft_file)
        log.info("[%s] %d learner ranks ready in %.1f s (%s params, %s trainable, device %s, ZeRO-%d)%s", name,
                 cfg.learner.num_ranks, time.perf_counter() - started, f"{info[0]['params']:,}",
                 f"{info[0]['trainable']:,}", info[0]["device"], cfg.learner.zero_stage,
                 f", resumed after step {resume.step}" if resume else "")
        yield Stage(name, cfg, tracker, rows, sampler, learner, model_path, first, section.steps, resume,
                    path=str(resume.path) if resume else "", info=info)
    finally:
        learner.shutdown()
