"""Where a relaunched run continues: the checkpoint `resume` names, and the driver state saved in it; and
what a launch may do with a run directory an earlier launch used (continue it, refuse, or move it aside)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from cosmo.config import ConfigError, CosmoConfig, stage_config
from learner.checkpoint import COMPLETE_MARKER, DRIVER_STATE, latest_checkpoint, verify_checkpoint

log = logging.getLogger("cosmo")

RUN_RECORDS = ("metrics.jsonl", "ledger.jsonl", "samples.jsonl")
"""The run directory's step records (cosmo/driver/tracking.py): a launch appends to them."""


@dataclass(frozen=True)
class ResumePoint:
    """A verified checkpoint to continue from, with the driver's state saved in it."""

    path: Path
    stage: str
    step: int
    state: dict


def earlier_run(run_dir: Path) -> list[str]:
    """What an earlier launch left in `run_dir` that a run started at step 1 would replace or append to:
    `checkpoints/` and `eval/` when they hold a file, the step records when not empty. Empty: nothing to lose."""
    found = [f"{sub}/" for sub in ("checkpoints", "eval")
             if (run_dir / sub).is_dir() and any(p.is_file() for p in (run_dir / sub).rglob("*"))]
    return found + [name for name in RUN_RECORDS if (run_dir / name).is_file() and (run_dir / name).stat().st_size]


def refuse_used_run_dir(cfg: CosmoConfig, run_dir: Path) -> None:
    """`resume=never` starts at step 1: in a directory holding an earlier run it would replace that run's
    checkpoints and append a second run to its records, so it is refused (ConfigError) before any work."""
    used = earlier_run(run_dir) if cfg.resume == "never" else []
    if used:
        raise ConfigError(f"resume=never: {run_dir} already holds a run ({', '.join(used)}); continue it with "
                          "resume=auto, start over with resume=fresh (moves it aside), or set another "
                          "logging.run_name")


def move_aside(run_dir: Path) -> Path | None:
    """`resume=fresh`: rename a used run directory to a new timestamped sibling, whole, so that the new
    run starts in an empty one and nothing of the old is overwritten or deleted; returns where it went."""
    if not earlier_run(run_dir):
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = run_dir.with_name(f"{run_dir.name}.old-{stamp}")
    n = 1
    while target.exists():  # two launches within a second
        target, n = run_dir.with_name(f"{run_dir.name}.old-{stamp}-{n}"), n + 1
    run_dir.rename(target)
    log.info("resume=fresh: moved the earlier run in %s to %s; starting over", run_dir, target)
    return target


def run_finished(cfg: CosmoConfig, point: ResumePoint | None) -> bool:
    """Whether the resume point is the last step of the last stage: the run has nothing left to train."""
    last = cfg.train.stages[-1]
    if point is None or point.stage != last:
        return False
    kind, stage_cfg = stage_config(cfg, last)
    return point.step >= (stage_cfg.sft.steps if kind == "sft" else stage_cfg.rl.steps)


def find_resume_point(cfg: CosmoConfig, run_dir: Path) -> ResumePoint | None:
    """`resume=auto`: the newest complete checkpoint of the latest stage that has one (None: start
    from the beginning); `resume=PATH`: that checkpoint, which must verify; `resume=never` or `fresh`:
    None. A checkpoint that cannot be resumed raises ConfigError (a ValueError) naming the path and what
    is wrong; so does `auto` on a run with checkpoints of a stage this config does not run (continuing would
    drop that stage's records: `cosmo sft` on a whole run's directory)."""
    if cfg.resume in ("never", "fresh"):
        return None
    if cfg.resume == "auto":
        root = run_dir / "checkpoints"
        others = sorted(d.name for d in root.glob("*") if d.name not in cfg.train.stages
                        and any((c / COMPLETE_MARKER).is_file() for c in d.glob("step_*")))
        if others:
            raise ConfigError(f"resume=auto: {run_dir} holds a run with checkpoints of {', '.join(others)}, a stage "
                              f"train.stages {cfg.train.stages} does not run; set another logging.run_name, or "
                              "resume=fresh to move that run aside")
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
