"""Where a relaunched run continues: the checkpoint `resume` names, and the driver state saved in it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from cosmo.config import ConfigError, CosmoConfig
from learner.checkpoint import DRIVER_STATE, latest_checkpoint, verify_checkpoint

log = logging.getLogger("cosmo")


@dataclass(frozen=True)
class ResumePoint:
    """A verified checkpoint to continue from, with the driver's state saved in it."""

    path: Path
    stage: str
    step: int
    state: dict


def find_resume_point(cfg: CosmoConfig, run_dir: Path) -> ResumePoint | None:
    """`resume=auto`: the newest complete checkpoint of the latest stage that has one (None: start
    fresh); `resume=PATH`: that checkpoint, which must verify; `resume=never`: None. A checkpoint that
    cannot be resumed raises ConfigError (a ValueError) naming the path and what is wrong."""
    if cfg.resume == "never":
        return None
    if cfg.resume == "auto":
        for stage in reversed(cfg.train.stages):
            path = latest_checkpoint(run_dir / "checkpoints" / stage)
            if path is not None:
                break
        else:
            log.info("resume=auto: no complete checkpoint in %s; starting from the beginning", run_dir / "checkpoints")
            return None
    else:
        path = Path(cfg.resume)
        problem = verify_checkpoint(path)
        if problem is not None:
            raise ConfigError(f"resume={cfg.resume}: not a usable checkpoint: {problem}")
    state_file = path / DRIVER_STATE
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"resume: {state_file} is unreadable ({exc})") from None
    expected = {"stage": str, "step": int, "sampler": dict, "stage_start_model": str}
    wrong = [k for k, kind in expected.items() if not isinstance(state, dict) or not isinstance(state.get(k), kind)]
    if wrong:
        raise ConfigError(f"resume: {state_file}: expected an object with {', '.join(wrong)} "
                          f"({', '.join(expected[k].__name__ for k in wrong)})")
    if state["stage"] not in cfg.train.stages:
        raise ConfigError(f"resume: {path} is from stage {state['stage']!r}, not in train.stages "
                          f"{cfg.train.stages}")
    return ResumePoint(path, state["stage"], state["step"], state)


def finished_stage_model(run_dir: Path, stage: str) -> str | None:
    """The final checkpoint of a stage finished before the resume point (its newest complete one:
    a stage always saves at its last step), or None when it has none."""
    path = latest_checkpoint(run_dir / "checkpoints" / stage)
    return str(path) if path is not None else None
