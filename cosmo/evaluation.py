"""Evaluating checkpoints during a run: in a Ray task, written to the run directory, reused on relaunch.

Reports go to `eval/<label>.json`; their metrics to metrics.jsonl and wandb as stage `eval/<series>`
at the given step, so periodic RL evaluations draw one curve over RL steps.
"""

from __future__ import annotations

import json
import logging

import ray

from cosmo.config import CosmoConfig
from cosmo.tracking import RunTracker

log = logging.getLogger("cosmo")


def _evaluate_task(model_path: str, eval_file: str, cfg: CosmoConfig, threads: int) -> dict:
    import torch  # noqa: PLC0415

    from cosmo.data import load_jsonl  # noqa: PLC0415
    from cosmo.eval import evaluate, select_rows  # noqa: PLC0415

    torch.set_num_threads(threads)
    rows = select_rows(load_jsonl(eval_file), cfg.eval.max_rows_per_task)
    return evaluate(model_path, rows, engine=cfg.eval.engine, max_new_tokens=cfg.eval.max_new_tokens,
                    batch_size=cfg.eval.batch_size, on_gpu=cfg.device == "cuda", rollout=cfg.rollout)


def evaluate_remote(cfg: CosmoConfig, model_path: str, eval_file: str, *, during_training: bool = False) -> dict:
    """Evaluate a checkpoint in a Ray task: one GPU (and one CPU) on CUDA, else the free CPUs, capped
    at the largest node's (a task cannot span nodes). `during_training` on CPU: the learner and the
    engines hold every CPU, so the task reserves none and shares the cores while the loop waits."""
    env = {"env_vars": {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_LOGGING_LEVEL": "ERROR"}}
    if cfg.device == "cuda":
        task = ray.remote(num_cpus=1, num_gpus=1, runtime_env=env)(_evaluate_task)
        return ray.get(task.remote(model_path, eval_file, cfg, 1))
    largest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]), default=1)
    free = int(min(ray.available_resources().get("CPU", 0), largest))
    reserve = 0 if during_training else max(1, free)
    task = ray.remote(num_cpus=reserve, runtime_env=env)(_evaluate_task)
    return ray.get(task.remote(model_path, eval_file, cfg, max(1, free) if reserve else 1))


def evaluate_once(cfg: CosmoConfig, tracker: RunTracker, label: str, model_path: str, eval_file: str, step: int,
                  *, series: str | None = None, during_training: bool = False) -> dict[str, dict]:
    """Evaluate unless disabled; a relaunched run (`resume` set) reuses a report an earlier launch wrote."""
    if not cfg.eval.enabled:
        return {}
    done = tracker.dir / "eval" / f"{label}.json"
    if cfg.resume != "never" and done.is_file():
        log.info("[eval] %s: reusing %s", label, done)
        return {label: json.loads(done.read_text())}
    log.info("[eval] %s model %s on %s", label, model_path, eval_file)
    report = evaluate_remote(cfg, model_path, eval_file, during_training=during_training)
    tracker.write_eval(label, report)
    tracker.log(f"eval/{series or label}", step, {k: v for k, v in report["metrics"].items() if v is not None})
    log.info("[eval] %s: %s (%d rows, %.1f s)", label,
             ", ".join(f"{k} {v:.2f}" for k, v in report["metrics"].items() if v is not None),
             report["rows"], report["seconds"])
    return {label: report}
