"""When a stage saves a checkpoint, and what the driver puts in it besides the learner's state."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from cosmo.config import CosmoConfig
from learner.checkpoint import prune_checkpoints

log = logging.getLogger("cosmo")


class Saver(Protocol):
    """What a checkpoint needs of the learner: a collective save of weights and training state."""

    def save(self, out_dir: str, meta: dict, driver_state: dict) -> str: ...


def save_if_due(cfg: CosmoConfig, learner: Saver, checkpoints: Path, stage: str, step: int, total: int,
                driver_state: Callable[[], dict]) -> str | None:
    """Save at every `checkpoint.every_steps` and at the stage's last step; keep the newest few.

    `driver_state()` (data position, stage start model, ...) goes into the checkpoint for `resume`;
    it is only called when a save is due.
    """
    every = cfg.checkpoint.every_steps
    if step != total and not (every and step % every == 0):
        return None
    state = driver_state()
    meta = {"stage": stage, "step": step, "source_model": state["stage_start_model"]}
    path = learner.save(str(checkpoints / f"step_{step}"), meta, {**state, "stage": stage, "step": step})
    prune_checkpoints(checkpoints, cfg.checkpoint.keep_last)
    log.info("[%s] checkpoint %s", stage, path)
    return path
