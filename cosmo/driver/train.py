"""`cosmo train`: the whole run, top to bottom.

    resume point (or a used run directory refused, or moved aside) -> check data and model -> run directory
    -> Ray -> eval start model -> for each stage: train, eval -> (a finished run: its final model again)
    -> the table with a column per evaluated model (start, then each stage)

The driver holds no model weights: training runs in the learner's Ray actors, generation in the
rollout actors, evaluation in a Ray task. Each kind of stage's loop is one module: `sft.run_sft`,
`rl.run_rl`; a named stage (train.stage_configs) runs its kind's loop with its own merged config.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import ray

from cosmo.config import CosmoConfig, stage_config
from cosmo.driver.assets import prepare_assets
from cosmo.driver.checkpoint_eval import evaluate_once, model_fingerprint, repeat_evaluation, reusable_report
from cosmo.driver.cluster import handle_sigterm, ray_session
from cosmo.driver.resume import (
    ResumePoint,
    find_resume_point,
    finished_stage_model,
    move_aside,
    refuse_used_run_dir,
    run_finished,
)
from cosmo.driver.rl import run_rl
from cosmo.driver.sft import run_sft
from cosmo.driver.tracking import RunTracker
from cosmo.evaluation.heldout import format_table

log = logging.getLogger("cosmo")

StageFn = Callable[..., str]
STAGES: dict[str, StageFn] = {"sft": run_sft, "rl": run_rl}


def train(cfg: CosmoConfig) -> dict[str, dict]:
    """Run the configured stages with an evaluation of the start model and after every stage.

    With `resume` (auto by default), stages finished before the checkpoint are skipped (their reports are
    reused), the checkpoint's stage goes on from its step, and evaluations already written for the same
    models are not repeated: relaunching a run (as a RayJob retry or a second `make train` does) ends where
    an uninterrupted run ends. A finished run trains nothing and its final model is evaluated once more,
    beside its report (`repeat_evaluation`). A used run directory is never started over in place:
    `resume=never` refuses it, `resume=fresh` moves it aside first.
    """
    handle_sigterm()
    run_dir = Path(cfg.logging.runs_dir) / cfg.logging.run_name
    refuse_used_run_dir(cfg, run_dir)
    point = find_resume_point(cfg, run_dir)
    assets = prepare_assets(cfg)  # every row validated before the run directory, Ray or a model exist
    if cfg.resume == "fresh":
        move_aside(run_dir)
    last = cfg.train.stages[-1]
    finished = run_finished(cfg, point)
    first = final_report(cfg, run_dir, point) if finished else None
    tracker = RunTracker(cfg, resume=point)
    log.info("run directory %s", tracker.dir)
    if finished:
        log.info("this run is finished (%s step %d, %s): nothing is trained again and its checkpoints and "
                 "records stay as they are%s. To train again: resume=fresh (moves this run aside) or another "
                 "logging.run_name", last, point.step, point.path,
                 "; its final model is evaluated once more" if first is not None else "")
    elif point is not None:
        log.info("resuming from %s (%s step %d)", point.path, point.stage, point.step)
    reports: dict[str, dict] = {}
    model_path = assets.model
    try:
        with ray_session(cfg.cluster):
            if cfg.device == "auto":  # decided once, from the cluster rather than the driver's host
                cfg.device = "cuda" if ray.cluster_resources().get("GPU", 0) > 0 else "cpu"
                log.info("device auto -> %s", cfg.device)
            reports.update(evaluate_once(cfg, tracker, "start", model_path, assets.eval_file, 0))
            for stage in cfg.train.stages:
                kind, stage_cfg = stage_config(cfg, stage)  # after the device is decided: the stage inherits it
                total = stage_cfg.sft.steps if kind == "sft" else stage_cfg.rl.steps
                data = assets.rl_file if kind == "rl" else assets.train_file
                model_path = run_or_resume_stage(stage_cfg, tracker, stage, kind, total, model_path, data,
                                                 assets.eval_file, point, sft_file=assets.train_file)
                if cfg.eval.stages is None or stage in cfg.eval.stages:
                    reports.update(evaluate_once(cfg, tracker, stage, model_path, assets.eval_file, total))
            if first is not None:
                repeat_evaluation(cfg, tracker, last, first, assets.eval_file)
    finally:
        tracker.close()
    if reports:
        table = format_table(reports)
        (tracker.dir / "eval" / "summary.txt").write_text(table + "\n")
        log.info("held-out evaluation on %s:\n%s", assets.eval_file, table)
    log.info("final model: %s", model_path)
    return reports


def final_report(cfg: CosmoConfig, run_dir: Path, point: ResumePoint) -> dict | None:
    """A finished run's report on its final model (the resume point), when evaluation is on and the report
    describes that very model: what its repeat evaluation is compared with."""
    if not cfg.eval.enabled:
        return None
    model = str(point.path)
    return reusable_report(run_dir / "eval" / f"{cfg.train.stages[-1]}.json", model, model_fingerprint(model))


def run_or_resume_stage(cfg: CosmoConfig, tracker: RunTracker, stage: str, kind: str, total: int, model_path: str,
                        train_file: str, eval_file: str, point: ResumePoint | None, sft_file: str | None = None) -> str:
    """The stage's final model: trained from `model_path` by its kind's loop with the stage's `cfg`,
    continued from the resume point, or (a stage finished before the resume point, or the point is its
    last step) the checkpoint already there. `sft_file`: the SFT rows, which an RL stage's
    `algorithm.sft_coef` trains on beside its own."""
    order = cfg.train.stages
    if point is not None and order.index(stage) < order.index(point.stage):
        finished = finished_stage_model(tracker.dir, stage)
        return finished if finished is not None else point.state["stage_start_model"]
    resume = point if point is not None and stage == point.stage else None
    if resume is not None:
        if resume.step >= total:
            return str(resume.path)  # the checkpoint is this stage's last step
        model_path = resume.state["stage_start_model"]
    extra = {"sft_file": sft_file} if kind == "rl" else {}
    return STAGES[kind](cfg, tracker, model_path, train_file, resume=resume, eval_file=eval_file, name=stage, **extra)
