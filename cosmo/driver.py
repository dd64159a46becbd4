"""The driver: prepares model and data, starts or joins Ray, runs the stages, evaluates, reports.

It holds no model weights: training runs in the learner's Ray actors, evaluation in a Ray task.
Read `train()` top to bottom for the whole run.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ray

from cosmo.config import CosmoConfig
from cosmo.eval import format_table
from cosmo.tracking import Progress, RunTracker

log = logging.getLogger("cosmo")


@dataclass(frozen=True)
class Assets:
    model: str
    train_file: str
    eval_file: str


def prepare_assets(cfg: CosmoConfig) -> Assets:
    """Build the built-in data and the tiny model when the recipe asks for them and they are missing."""
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


class EpochSampler:
    """Sample indices in a seeded random order, epoch after epoch, without repeats within an epoch."""

    def __init__(self, n_rows: int, seed: int) -> None:
        if n_rows == 0:
            raise ValueError("the training file has no rows")
        self.n_rows, self.seed = n_rows, seed
        self.epoch, self.position = 0, 0
        self._order = self._shuffled(0)

    def _shuffled(self, epoch: int) -> list[int]:
        order = list(range(self.n_rows))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def next_batch(self, size: int) -> list[int]:
        batch: list[int] = []
        while len(batch) < size:
            if self.position == self.n_rows:
                self.epoch += 1
                self.position = 0
                self._order = self._shuffled(self.epoch)
            take = min(size - len(batch), self.n_rows - self.position)
            batch += self._order[self.position : self.position + take]
            self.position += take
        return batch


def _maybe_checkpoint(cfg: CosmoConfig, learner, checkpoints: Path, stage: str, step: int, total: int,
                      source: str) -> str | None:
    """Save at every `checkpoint.every_steps` and at the stage's last step; keep the newest few."""
    from learner.checkpoint import prune_checkpoints  # noqa: PLC0415

    every = cfg.checkpoint.every_steps
    if step != total and not (every and step % every == 0):
        return None
    path = learner.save(str(checkpoints / f"step_{step}"), {"stage": stage, "step": step, "source_model": source})
    prune_checkpoints(checkpoints, cfg.checkpoint.keep_last)
    log.info("[%s] checkpoint %s", stage, path)
    return path


def run_sft(cfg: CosmoConfig, tracker: RunTracker, model_path: str, train_file: str) -> str:
    """Supervised fine-tuning on the rows' reference responses; returns the final checkpoint."""
    from cosmo.data import load_jsonl  # noqa: PLC0415
    from learner.engine import OptimSpec  # noqa: PLC0415
    from learner.group import LearnerGroup  # noqa: PLC0415

    s, n_ranks = cfg.sft, cfg.learner.num_ranks
    spec = OptimSpec(lr=s.lr, total_steps=s.steps, warmup_steps=s.warmup_steps, min_lr_ratio=s.min_lr_ratio,
                     micro_batch_size=s.micro_batch_size,
                     grad_accum=s.global_batch_size // (s.micro_batch_size * n_ranks))
    sampler = EpochSampler(len(load_jsonl(train_file)), cfg.seed)
    started = time.perf_counter()
    group = LearnerGroup(cfg)
    try:
        info = group.setup(model_path, train_file, spec)
        log.info("[sft] %d learner ranks ready in %.1f s (%s params, %s trainable, device %s, ZeRO-%d)",
                 n_ranks, time.perf_counter() - started, f"{info[0]['params']:,}", f"{info[0]['trainable']:,}",
                 info[0]["device"], cfg.learner.zero_stage)
        progress = Progress("sft", s.steps, cfg.logging.log_every)
        checkpoints = Path(tracker.dir) / "checkpoints" / "sft"
        path = ""
        for step in range(1, s.steps + 1):
            stats = group.sft_step(sampler.next_batch(s.global_batch_size))
            stats["epoch"] = sampler.epoch
            tracker.log("sft", step, stats)
            progress.update(step, {"loss": stats["loss"], "lr": stats["lr"],
                                   "samples/s": round(s.global_batch_size / stats["step_s"], 1)})
            path = _maybe_checkpoint(cfg, group, checkpoints, "sft", step, s.steps, model_path) or path
    finally:
        group.shutdown()
    return path


def run_rl(cfg: CosmoConfig, tracker: RunTracker, model_path: str, train_file: str) -> str:
    """The actor-learner loop: rollouts -> rewards -> advantages -> update -> weight broadcast."""
    from actors.group import RolloutGroup  # noqa: PLC0415
    from cosmo.algorithms.batch import prepare_rl_batch  # noqa: PLC0415
    from cosmo.data import load_jsonl  # noqa: PLC0415
    from learner.engine import OptimSpec  # noqa: PLC0415
    from learner.group import LearnerGroup  # noqa: PLC0415
    from rewards.pool import RewardPool  # noqa: PLC0415

    rl, a, n_ranks = cfg.rl, cfg.algorithm, cfg.learner.num_ranks
    batch = rl.prompts_per_step * a.group_size
    spec = OptimSpec(lr=rl.lr, total_steps=rl.steps, warmup_steps=rl.warmup_steps, min_lr_ratio=rl.min_lr_ratio,
                     micro_batch_size=rl.micro_batch_size, grad_accum=batch // (rl.micro_batch_size * n_ranks))
    sampler = EpochSampler(len(load_jsonl(train_file)), cfg.seed + 1)
    started = time.perf_counter()
    learner = LearnerGroup(cfg)
    rollout = rewards = None
    checkpoints = Path(tracker.dir) / "checkpoints" / "rl"
    path = ""
    try:
        learner.setup(model_path, train_file, spec)
        rollout = RolloutGroup(cfg, model_path, train_file)
        rewards = RewardPool(cfg, train_file)
        log.info("[rl] %d learner ranks, %d vLLM rollout actors, %d reward workers ready in %.1f s "
                 "(%s, %d prompts x %d samples per step)", n_ranks, cfg.rollout.num_actors, cfg.reward.num_workers,
                 time.perf_counter() - started, a.name, rl.prompts_per_step, a.group_size)
        progress = Progress("rl", rl.steps, cfg.logging.log_every)
        for step in range(1, rl.steps + 1):
            t0 = time.perf_counter()
            trajectories = rollout.generate(sampler.next_batch(rl.prompts_per_step), a.group_size)
            t1 = time.perf_counter()
            scored = rewards.score(trajectories)
            t2 = time.perf_counter()
            items, stats = prepare_rl_batch(scored, a.group_size, a.advantage_weight)
            train = learner.rl_step(items)
            t3 = time.perf_counter()
            weights_ref, learner_digest = learner.export_weights()
            synced = rollout.update_weights(weights_ref, version=step)
            t4 = time.perf_counter()
            tokens = sum(len(t.response_ids) for t in trajectories)
            version = min(t.version for t in trajectories)
            stats.update({f"train/{k}": v for k, v in train.items()})
            stats.update({
                "time/rollout": t1 - t0, "time/reward": t2 - t1, "time/train": t3 - t2, "time/sync": t4 - t3,
                "time/step": t4 - t0, "rollout/tokens_per_s": tokens / max(t1 - t0, 1e-9),
                "rollout/trajectories": len(trajectories),
                "policy/version_lag": step - 1 - version,
                # every engine loaded exactly the bytes the learner sent
                "sync/digest_match": float(all(s["digest"] == learner_digest for s in synced)),
                "sync/load_s": max(s["load_s"] for s in synced),
                "policy/version": version,
                "epoch": sampler.epoch,
            })
            for event in rollout.events + rewards.events:
                tracker.log("event", step, event)
            rollout.events.clear()
            rewards.events.clear()
            tracker.log("rl", step, stats)
            progress.update(step, {"reward": stats["reward/mean"], "loss": train["loss"],
                                   "clip": train["clip_frac"], "sync_s": round(t4 - t3, 3),
                                   "step_s": round(t4 - t0, 2)})
            path = _maybe_checkpoint(cfg, learner, checkpoints, "rl", step, rl.steps, model_path) or path
    finally:
        for part in (rewards, rollout, learner):
            if part is not None:
                part.shutdown()
    return path


def _evaluate_task(model_path: str, eval_file: str, cfg: CosmoConfig, threads: int) -> dict:
    import torch  # noqa: PLC0415

    from cosmo.data import load_jsonl  # noqa: PLC0415
    from cosmo.eval import evaluate, select_rows  # noqa: PLC0415
    from cosmo.models import load_model  # noqa: PLC0415

    torch.set_num_threads(threads)
    rows = select_rows(load_jsonl(eval_file), cfg.eval.max_rows_per_task)
    on_gpu = cfg.device == "cuda"
    lm = load_model(model_path, dtype=torch.bfloat16 if on_gpu else torch.float32,
                    attn_implementation=cfg.model.attn_implementation)
    if on_gpu:
        lm.model.to("cuda")
    return evaluate(lm, rows, max_new_tokens=cfg.eval.max_new_tokens, batch_size=cfg.eval.batch_size)


def evaluate_remote(cfg: CosmoConfig, model_path: str, eval_file: str) -> dict:
    """Evaluate a checkpoint in a Ray task: one GPU on CUDA, else every CPU that is free."""
    cpus = max(1, int(ray.available_resources().get("CPU", 1)))
    task = ray.remote(num_cpus=cpus, num_gpus=1 if cfg.device == "cuda" else 0)(_evaluate_task)
    return ray.get(task.remote(model_path, eval_file, cfg, cpus))


def train(cfg: CosmoConfig) -> dict[str, dict]:
    """Run the configured stages with an evaluation of the start model and after every stage."""
    tracker = RunTracker(cfg)
    log.info("run directory %s", tracker.dir)
    reports: dict[str, dict] = {}
    try:
        assets = prepare_assets(cfg)
        model_path = assets.model
        with ray_session(cfg):
            if cfg.device == "auto":  # decided once, from the cluster rather than the driver's host
                cfg.device = "cuda" if ray.cluster_resources().get("GPU", 0) > 0 else "cpu"
                log.info("device auto -> %s", cfg.device)
            if cfg.eval.enabled:
                reports["start"] = _evaluate_and_log(cfg, tracker, "start", model_path, assets.eval_file, 0)
            for stage in cfg.train.stages:
                run_stage = run_sft if stage == "sft" else run_rl
                model_path = run_stage(cfg, tracker, model_path, assets.train_file)
                if cfg.eval.enabled:
                    steps = cfg.sft.steps if stage == "sft" else cfg.rl.steps
                    reports[stage] = _evaluate_and_log(cfg, tracker, stage, model_path, assets.eval_file, steps)
    finally:
        tracker.close()
    if reports:
        table = format_table(reports)
        (tracker.dir / "eval" / "summary.txt").write_text(table + "\n")
        log.info("held-out evaluation on %s:\n%s", assets.eval_file, table)
    log.info("final model: %s", model_path)
    return reports


def _evaluate_and_log(cfg: CosmoConfig, tracker: RunTracker, label: str, model_path: str, eval_file: str,
                      step: int) -> dict:
    log.info("[eval] %s model %s on %s", label, model_path, eval_file)
    report = evaluate_remote(cfg, model_path, eval_file)
    tracker.write_eval(label, report)
    tracker.log(f"eval/{label}", step, {k: v for k, v in report["metrics"].items() if v is not None})
    log.info("[eval] %s: %s (%d rows, %.1f s)", label,
             ", ".join(f"{k} {v:.2f}" for k, v in report["metrics"].items() if v is not None),
             report["rows"], report["seconds"])
    return report
