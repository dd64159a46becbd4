"""The driver: prepares model and data, starts or joins Ray, runs the stages, evaluates, reports.

It holds no model weights: training runs in the learner's Ray actors, evaluation in a Ray task.
Read `train()` top to bottom for the whole run.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ray

from cosmo.config import CosmoConfig
from cosmo.eval import format_table
from cosmo.evaluation import evaluate_once
from cosmo.steps import ResumePoint, find_resume_point, make_sampler, save_if_due
from cosmo.tracking import Progress, RunTracker

log = logging.getLogger("cosmo")


@dataclass(frozen=True)
class Assets:
    model: str
    train_file: str
    eval_file: str


def prepare_assets(cfg: CosmoConfig) -> Assets:
    """Build the built-in data and the tiny model when the recipe asks for them and they are missing.

    With `data.augment` the returned train file is the augmented copy (cosmo.data.augment), built once
    per content hash under `data.augment_dir` and reused by reruns; the eval file is never augmented."""
    data_dir = Path(cfg.data.dir)
    train_file, eval_file = data_dir / cfg.data.train_file, data_dir / cfg.data.eval_file
    if not train_file.is_file():
        if not cfg.data.build_if_missing:
            raise FileNotFoundError(f"data.dir: {train_file} does not exist (data.build_if_missing=false)")
        from cosmo.data import build_dataset  # noqa: PLC0415

        log.info("building the built-in multitask dataset in %s", data_dir)
        started = time.perf_counter()
        build_dataset(data_dir, seed=cfg.seed, train_per_task=cfg.data.train_per_task,
                      eval_per_task=cfg.data.eval_per_task)
        log.info("dataset built in %.1f s", time.perf_counter() - started)
    if cfg.data.augment:
        from cosmo.data import AugmentOptions, cached_augmentation  # noqa: PLC0415

        started = time.perf_counter()
        cache = Path(cfg.data.augment_dir) if cfg.data.augment_dir else data_dir / ".augmented"
        train_file = cached_augmentation(train_file, cache, seed=cfg.seed,
                                         options=AugmentOptions.from_config(cfg.data))
        log.info("augmented training file %s (%.1f s)", train_file, time.perf_counter() - started)
    model_dir = Path(cfg.model.path)
    if cfg.model.build_preset and not (model_dir / "config.json").is_file():
        from cosmo.data import corpus_texts  # noqa: PLC0415
        from cosmo.models import build_tiny_model  # noqa: PLC0415

        log.info("building tiny model preset '%s' in %s", cfg.model.build_preset, model_dir)
        build_tiny_model(model_dir, preset=cfg.model.build_preset, seed=cfg.seed, corpus=corpus_texts())
    return Assets(model=str(model_dir) if model_dir.exists() else cfg.model.path,
                  train_file=str(train_file), eval_file=str(eval_file))


@contextlib.contextmanager
def ray_session(cfg: CosmoConfig) -> Iterator[None]:
    """Join the cluster named by cluster.address (or RAY_ADDRESS under `ray job submit`), else start one."""
    if ray.is_initialized():
        yield
        return
    kwargs: dict = {"namespace": cfg.cluster.namespace, "log_to_driver": True}
    if cfg.cluster.address:
        kwargs["address"] = cfg.cluster.address
    else:
        kwargs.update(num_cpus=cfg.cluster.num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1")
    started = time.perf_counter()
    ray.init(**kwargs)
    log.info("Ray ready in %.1f s: %s", time.perf_counter() - started, ray.cluster_resources())
    try:
        yield
    finally:
        ray.shutdown()


def run_sft(cfg: CosmoConfig, tracker: RunTracker, model_path: str, train_file: str,
            resume: ResumePoint | None = None, eval_file: str | None = None) -> str:
    """Supervised fine-tuning on the rows' reference responses; returns the final checkpoint.

    `model_path` is the stage's start model; with `resume` the learner starts from that checkpoint
    (weights, optimizer, schedule, RNG) and the data order continues where it stopped. `eval_file`
    is unused (SFT is evaluated after the stage); it keeps the stages' signatures alike."""
    from cosmo.data import load_jsonl  # noqa: PLC0415
    from learner.checkpoint import TRAIN_STATE  # noqa: PLC0415
    from learner.engine import OptimSpec  # noqa: PLC0415
    from learner.group import LearnerGroup  # noqa: PLC0415

    s, n_ranks = cfg.sft, cfg.learner.num_ranks
    spec = OptimSpec(lr=s.lr, total_steps=s.steps, warmup_steps=s.warmup_steps, min_lr_ratio=s.min_lr_ratio,
                     micro_batch_size=s.micro_batch_size,
                     grad_accum=s.global_batch_size // (s.micro_batch_size * n_ranks))
    rows = load_jsonl(train_file)
    sampler = make_sampler(cfg, rows, cfg.seed)
    first = 1
    if resume is not None:
        sampler.load_state_dict(resume.state["sampler"])
        first = resume.step + 1
    started = time.perf_counter()
    group = LearnerGroup(cfg)
    try:
        info = group.setup(str(resume.path) if resume else model_path, train_file, spec,
                           train_state=str(resume.path / TRAIN_STATE) if resume else None)
        log.info("[sft] %d learner ranks ready in %.1f s (%s params, %s trainable, device %s, ZeRO-%d)%s",
                 n_ranks, time.perf_counter() - started, f"{info[0]['params']:,}", f"{info[0]['trainable']:,}",
                 info[0]["device"], cfg.learner.zero_stage, f", resumed after step {resume.step}" if resume else "")
        progress = Progress("sft", s.steps, cfg.logging.log_every, first=first)
        checkpoints = Path(tracker.dir) / "checkpoints" / "sft"
        path = str(resume.path) if resume else ""
        for step in range(first, s.steps + 1):
            indices = sampler.next_batch(s.global_batch_size)
            stats = group.sft_step(indices)
            tracker.log_ledger("sft", step, [rows[i].id for i in indices], skipped=bool(stats["skipped"]))
            stats["epoch"] = sampler.epoch
            tracker.log("sft", step, stats)
            progress.update(step, {"loss": stats["loss"], "lr": stats["lr"],
                                   "samples/s": round(s.global_batch_size / stats["step_s"], 1)})
            def state() -> dict:
                return {"sampler": sampler.state_dict(), "stage_start_model": model_path}

            path = save_if_due(cfg, group, checkpoints, "sft", step, s.steps, state) or path
    finally:
        group.shutdown()
    return path


def train(cfg: CosmoConfig) -> dict[str, dict]:
    """Run the configured stages with an evaluation of the start model and after every stage.

    With `resume`, stages finished before the checkpoint are skipped, the checkpoint's stage goes
    on from its step, and evaluations already written are not repeated: relaunching a run (as a
    RayJob retry does) ends where an uninterrupted run ends.
    """
    run_dir = Path(cfg.logging.runs_dir) / cfg.logging.run_name
    point = find_resume_point(cfg, run_dir)
    tracker = RunTracker(cfg, resume=point)
    log.info("run directory %s", tracker.dir)
    if point is not None:
        log.info("resuming from %s (%s step %d)", point.path, point.stage, point.step)
    reports: dict[str, dict] = {}
    try:
        assets = prepare_assets(cfg)
        model_path = assets.model
        with ray_session(cfg):
            if cfg.device == "auto":  # decided once, from the cluster rather than the driver's host
                cfg.device = "cuda" if ray.cluster_resources().get("GPU", 0) > 0 else "cpu"
                log.info("device auto -> %s", cfg.device)
            reports.update(evaluate_once(cfg, tracker, "start", model_path, assets.eval_file, 0))
            resumed_at = cfg.train.stages.index(point.stage) if point else -1
            for i, stage in enumerate(cfg.train.stages):
                total = cfg.sft.steps if stage == "sft" else cfg.rl.steps
                if i < resumed_at:
                    continue  # finished before the checkpoint; its model is the resumed stage's start model
                if i == resumed_at:
                    model_path = point.state["stage_start_model"]
                if i == resumed_at and point.step >= total:
                    model_path = str(point.path)  # the checkpoint is this stage's last step
                else:
                    from cosmo.rl_loop import run_rl  # noqa: PLC0415 - imports the rollout and reward actors

                    run_stage = run_sft if stage == "sft" else run_rl
                    model_path = run_stage(cfg, tracker, model_path, assets.train_file,
                                           resume=point if i == resumed_at else None, eval_file=assets.eval_file)
                reports.update(evaluate_once(cfg, tracker, stage, model_path, assets.eval_file, total))
    finally:
        tracker.close()
    if reports:
        table = format_table(reports)
        (tracker.dir / "eval" / "summary.txt").write_text(table + "\n")
        log.info("held-out evaluation on %s:\n%s", assets.eval_file, table)
    log.info("final model: %s", model_path)
    return reports
