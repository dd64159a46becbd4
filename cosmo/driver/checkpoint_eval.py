"""Evaluating the run's models: in a Ray task, written to the run directory, reused on relaunch.

Reports go to `eval/<label>.json`; their metrics to metrics.jsonl and wandb as stage `eval/<series>`
at the given step, so periodic RL evaluations draw one curve over RL steps. A report is reused only
when it describes the same model: its path and its fingerprint (the checkpoint's manifest digest).
A relaunched finished run evaluates its final model again into `eval/repeats/` and compares row by row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import ray
import torch

from cosmo.config import CosmoConfig
from cosmo.data import load_jsonl
from cosmo.driver.tracking import RunTracker
from cosmo.evaluation.heldout import evaluate, select_rows
from cosmo.vllm_env import vllm_env
from learner.checkpoint import COMPLETE_MARKER

log = logging.getLogger("cosmo")

SETTLE_S = 20.0
"""How long an evaluation between stages waits for the CPUs of the stage that just ended to come back."""


def model_fingerprint(model_path: str) -> str:
    """What identifies a model's weights cheaply: a checkpoint's manifest (SHA-256 of every file) when
    it has one, else the names, sizes and modification times of a directory's files, else the hub id."""
    path = Path(model_path)
    marker = path / COMPLETE_MARKER
    if marker.is_file():
        return hashlib.sha256(marker.read_bytes()).hexdigest()[:16]
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            st = f.stat()
            h.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        return h.hexdigest()[:16]
    return model_path


def _evaluate_task(model_path: str, eval_file: str, cfg: CosmoConfig, threads: int) -> dict:
    torch.set_num_threads(threads)
    rows = select_rows(load_jsonl(eval_file), cfg.eval.max_rows_per_task)
    return evaluate(model_path, rows, engine=cfg.eval.engine, max_new_tokens=cfg.eval.max_new_tokens,
                    batch_size=cfg.eval.batch_size, on_gpu=cfg.device == "cuda", rollout=cfg.rollout)


def free_cpus(largest: float, *, wait_s: float = SETTLE_S, poll_s: float = 0.25) -> int:
    """Whole CPUs free for one task: the cluster's available CPUs, capped at the largest node's. The stage before
    an evaluation has just killed its learner ranks and engines, and Ray returns their CPUs a moment later
    (0 free right after `ray.kill`): wait up to `wait_s` for as many as the largest node has, else take what is
    free then (another job's actors hold the rest)."""
    deadline = time.monotonic() + wait_s
    while True:
        free = int(min(ray.available_resources().get("CPU", 0), largest))
        if free >= int(largest) or time.monotonic() >= deadline:
            return free
        time.sleep(poll_s)


def evaluate_remote(cfg: CosmoConfig, model_path: str, eval_file: str, *, during_training: bool = False) -> dict:
    """Evaluate a checkpoint in a Ray task: one GPU (and one CPU) on CUDA, else the free CPUs, capped
    at the largest node's (a task cannot span nodes). `during_training` on CPU: the learner and the
    engines hold every CPU, so the task reserves none and shares the cores while the loop waits."""
    env = {"env_vars": vllm_env()}
    if cfg.device == "cuda":
        task = ray.remote(num_cpus=1, num_gpus=1, runtime_env=env)(_evaluate_task)
        return ray.get(task.remote(model_path, eval_file, cfg, 1))
    if during_training:
        task = ray.remote(num_cpus=0, runtime_env=env)(_evaluate_task)
        return ray.get(task.remote(model_path, eval_file, cfg, 1))
    largest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]), default=1)
    threads = max(1, free_cpus(largest))
    log.info("[eval] %d CPU threads", threads)
    task = ray.remote(num_cpus=threads, runtime_env=env)(_evaluate_task)
    return ray.get(task.remote(model_path, eval_file, cfg, threads))


def reusable_report(path: Path, model_path: str, fingerprint: str) -> dict | None:
    """The report at `path` when it was written for this very model, else None (with the reason logged)."""
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text())
    except ValueError:
        log.warning("[eval] %s is unreadable; evaluating again", path)
        return None
    if report.get("model") != model_path or report.get("model_fingerprint") != fingerprint:
        log.info("[eval] %s describes %s, not %s (fingerprint %s); evaluating again", path.name,
                 report.get("model"), model_path, fingerprint)
        return None
    return report


def evaluate_once(cfg: CosmoConfig, tracker: RunTracker, label: str, model_path: str, eval_file: str, step: int,
                  *, series: str | None = None, during_training: bool = False) -> dict[str, dict]:
    """Evaluate unless disabled; a relaunched run reuses a report an earlier launch wrote for the same
    model, and recomputes a stale one (same label, other model)."""
    if not cfg.eval.enabled:
        return {}
    done = tracker.dir / "eval" / f"{label}.json"
    fingerprint = model_fingerprint(model_path)
    report = reusable_report(done, model_path, fingerprint)
    if report is not None:
        log.info("[eval] %s: reusing %s", label, done)
        return {label: report}
    log.info("[eval] %s model %s on %s", label, model_path, eval_file)
    report = evaluate_remote(cfg, model_path, eval_file, during_training=during_training)
    report["model_fingerprint"] = fingerprint
    tracker.write_eval(label, report)
    tracker.log(f"eval/{series or label}", step, {k: v for k, v in report["metrics"].items() if v is not None})
    log.info("[eval] %s: %s (%d rows, %.1f s)", label,
             ", ".join(f"{k} {v:.2f}" for k, v in report["metrics"].items() if v is not None),
             report["rows"], report["seconds"])
    return {label: report}


def differing_rows(first: dict, again: dict) -> list[str]:
    """The ids of the rows whose evaluation differs between two reports of the same model and rows: by
    output text where both reports hold the outputs, else (a report from before they were kept) by verdict."""
    if "outputs" in first and "outputs" in again:
        a, b = first["outputs"], again["outputs"]
        return sorted(row for row in a.keys() | b.keys() if a.get(row) != b.get(row))
    a, b = ({(metric, row): hit for metric, hits in (r.get("row_hits") or {}).items() for row, hit in hits.items()}
            for r in (first, again))
    return sorted({row for metric, row in a.keys() | b.keys() if a.get((metric, row)) != b.get((metric, row))})


def _count(report: dict, metric: str) -> str:
    c = (report.get("counts") or {}).get(metric)
    return f"{c['hits']}/{c['rows']}" if c else "none"


def repeat_evaluation(cfg: CosmoConfig, tracker: RunTracker, label: str, first: dict, eval_file: str) -> None:
    """Evaluate a finished run's final model again (a relaunch has nothing to train) and say whether every
    row came out the same as in `first`, its report: the run's figures repeat, they are not one draw. The
    repeat goes to eval/repeats/, beside the first report, which stays; nothing is logged to metrics.jsonl."""
    model_path = first["model"]
    log.info("[eval] %s again: model %s on %s", label, model_path, eval_file)
    again = evaluate_remote(cfg, model_path, eval_file)
    again["model_fingerprint"] = model_fingerprint(model_path)
    path = tracker.write_repeat(label, again)
    changed = [f"{name} {_count(first, name)} -> {_count(again, name)}" for name in again["counts"]
               if _count(first, name) != _count(again, name)]
    rows = differing_rows(first, again)
    if not rows and not changed:
        log.info("[eval] %s again: every one of the %d rows as in eval/%s.json (same %s, same counts); written to %s",
                 label, again["rows"], label, "output" if "outputs" in first else "verdicts", path)
    else:
        log.warning("[eval] %s again: %d of %d rows differ from eval/%s.json (%s%s); counts %s; written to %s",
                    label, len(rows), again["rows"], label, ", ".join(rows[:5]), ", ..." if len(rows) > 5 else "",
                    "; ".join(changed) or "unchanged", path)
