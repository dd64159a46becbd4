"""The run directory and everything logged into it: config, metrics.jsonl, wandb, progress lines.

runs/<name>/
  config.yaml        resolved config of this run
  metrics.jsonl      one JSON object per logged step ({"stage", "step", "time", metrics...})
  ledger.jsonl       the row ids each step trained on ({"stage", "step", "sample_ids", "excluded", "skipped"})
  samples.jsonl      sample trajectories every logging.samples_every RL steps (prompt, response, rewards)
  checkpoints/       <stage>/step_<N>/ HF checkpoints (sft/, rl/, or a named stage's: train.stage_configs)
  eval/              one JSON report per evaluated model; repeats/: a finished run's final model evaluated again
  wandb/             wandb's files (offline unless logging.wandb_mode=online)
  wandb-run-id       the wandb run's id, so that a resumed run continues the same wandb run
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from cosmo.config import ConfigError, CosmoConfig, to_yaml
from cosmo.driver.resume import ResumePoint

log = logging.getLogger("cosmo")


class RunTracker:
    """Writes metrics to metrics.jsonl and wandb; `close()` flushes both."""

    def __init__(self, cfg: CosmoConfig, resume: ResumePoint | None = None) -> None:
        """With `resume`, records logged after the checkpoint's step are dropped (they are about to
        be logged again) and the wandb run continues under its id; `resume=auto` without a checkpoint
        drops every step record of the earlier launch (it died before its first checkpoint: all its steps
        run again)."""
        self.dir = Path(cfg.logging.runs_dir) / cfg.logging.run_name
        for sub in ("checkpoints", "eval"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "config.yaml").write_text(to_yaml(cfg))
        if resume is not None:
            self._rewind(resume.stage, resume.step)
        elif cfg.resume == "auto":
            self._rewind(None, 0)
        self._metrics = (self.dir / "metrics.jsonl").open("a", encoding="utf-8")
        self._ledger = (self.dir / "ledger.jsonl").open("a", encoding="utf-8")
        self._wandb = self._start_wandb(cfg, resuming=resume is not None)
        self._axes: set[str] = set()

    def _rewind(self, stage: str | None, step: int) -> None:
        """Keep metrics.jsonl and ledger.jsonl up to their record of (stage, step), written just before that
        checkpoint (stage None: none of it), plus evaluation records (their reports are reused, not recomputed)."""
        after = f"{stage} step {step}" if stage is not None else "the start (no checkpoint to continue from)"
        for name in ("metrics.jsonl", "ledger.jsonl"):
            path = self.dir / name
            if not path.is_file():
                continue
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            if lines and not lines[-1].endswith("\n"):  # the killed launch died writing this line
                log.warning("resume: dropping the unfinished last line of %s", path)
                lines = lines[:-1]
            keep = 0
            for i, line in enumerate(lines):
                record = json.loads(line)
                if record.get("stage") == stage and record.get("step") == step:
                    keep = i + 1
            kept = lines[:keep] + [line for line in lines[keep:] if json.loads(line)["stage"].startswith("eval/")]
            dropped = len(lines) - len(kept)
            if dropped:
                log.info("resume: dropping %d %s records logged after %s", dropped, name, after)
                tmp = path.with_suffix(".jsonl.tmp")
                tmp.write_text("".join(kept), encoding="utf-8")
                tmp.replace(path)

    def _start_wandb(self, cfg: CosmoConfig, resuming: bool):
        mode = cfg.logging.wandb_mode
        if mode == "disabled":
            return None
        if mode == "online" and not os.environ.get("WANDB_API_KEY"):
            raise ConfigError("logging.wandb_mode=online needs WANDB_API_KEY in the environment "
                              "(or use logging.wandb_mode=offline)")
        import wandb  # noqa: PLC0415 - slow import, only when tracking is on

        id_file = self.dir / "wandb-run-id"
        run_id = id_file.read_text().strip() if resuming and id_file.is_file() else secrets.token_hex(4)
        id_file.write_text(run_id)
        return wandb.init(
            project=cfg.logging.project,
            name=cfg.logging.run_name,
            id=run_id,
            resume="allow",
            dir=str(self.dir),
            mode=mode,
            config=OmegaConf.to_container(OmegaConf.structured(cfg)),
            reinit="finish_previous",
            settings=wandb.Settings(silent=True),
        )

    def log(self, stage: str, step: int, metrics: dict[str, Any]) -> None:
        """One record per call: to metrics.jsonl as is, to wandb as `<stage>/<name>` against `<stage>/step`.

        Each stage has its own step axis in wandb (RL step 1 follows SFT step 400; wandb's single
        global step would drop it as going backwards).
        """
        record = {"stage": stage, "step": step, "time": round(time.time(), 3), **metrics}
        self._metrics.write(json.dumps(record, sort_keys=False) + "\n")
        self._metrics.flush()
        if self._wandb is not None:
            axis = f"{stage}/step"
            if stage not in self._axes:
                self._wandb.define_metric(axis)
                self._wandb.define_metric(f"{stage}/*", step_metric=axis)
                self._axes.add(stage)
            flat = {f"{stage}/{k}": v for k, v in metrics.items() if isinstance(v, int | float)}
            self._wandb.log({**flat, axis: step})

    def log_ledger(self, stage: str, step: int, sample_ids: list[str], *, excluded: list[int] | None = None,
                   skipped: bool = False) -> None:
        """Which rows a step trained on, one id per trajectory (RL) or example (SFT), to ledger.jsonl:
        the audit that every row of an epoch is trained exactly once, across restarts and resumes.
        `excluded`: positions whose reward failed (masked out of the loss); `skipped`: the update
        was not applied (non-finite)."""
        record = {"stage": stage, "step": step, "sample_ids": sample_ids, "excluded": excluded or [],
                  "skipped": skipped}
        self._ledger.write(json.dumps(record) + "\n")
        self._ledger.flush()

    def log_samples(self, stage: str, step: int, samples: list[dict]) -> None:
        """Sample trajectories: one JSON line each in samples.jsonl, and a wandb table (prompt, image,
        response, reward per objective) under `<stage>/samples`. Each sample needs `prompt`, `images`
        (paths), `response`, `task`, `total`, `rewards` (objective -> value)."""
        with (self.dir / "samples.jsonl").open("a", encoding="utf-8") as f:
            for sample in samples:
                f.write(json.dumps({"stage": stage, "step": step, **sample}) + "\n")
        if self._wandb is None or not samples:
            return
        import wandb  # noqa: PLC0415 - slow import, only when tracking is on

        objectives = sorted({k for sample in samples for k in sample["rewards"]})
        table = wandb.Table(columns=["step", "task", "prompt", "image", "response", "total", *objectives])
        for sample in samples:
            image = wandb.Image(sample["images"][0]) if sample["images"] else None
            table.add_data(step, sample["task"], sample["prompt"], image, sample["response"], sample["total"],
                           *(sample["rewards"].get(k) for k in objectives))
        self._wandb.log({f"{stage}/samples": table, f"{stage}/step": step})

    def write_eval(self, label: str, report: dict) -> Path:
        """Written whole or not at all (temporary file, then rename): a relaunch reuses what it finds."""
        path = self.dir / "eval" / f"{label}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(report, indent=2))
        tmp.replace(path)
        return path

    def write_repeat(self, label: str, report: dict) -> Path:
        """A repeated evaluation of `label`'s model, as eval/repeats/<label>-<n>.json with the next free n:
        beside the first report, which stays as it is (eval/*.json are the run's columns; repeats are not)."""
        folder = self.dir / "eval" / "repeats"
        folder.mkdir(parents=True, exist_ok=True)
        n = 1
        while True:
            path = folder / f"{label}-{n}.json"
            try:
                with path.open("x") as f:  # never replaces an earlier repeat
                    f.write(json.dumps(report, indent=2))
                return path
            except FileExistsError:
                n += 1

    def close(self) -> None:
        self._metrics.close()
        self._ledger.close()
        if self._wandb is not None:
            self._wandb.finish()


class Progress:
    """Progress lines for long loops: step/total, rate, ETA and key metrics, every `every` steps."""

    def __init__(self, label: str, total: int, every: int, first: int = 1) -> None:
        """`first`: the first step this process runs (after a resume, the one after the checkpoint)."""
        self.label, self.total, self.every, self.first = label, total, every, first
        self.start = time.perf_counter()

    def update(self, step: int, metrics: dict[str, Any]) -> None:
        """`step` is 1-based: the number of steps done so far."""
        if step % self.every and step != self.total:
            return
        elapsed = time.perf_counter() - self.start
        eta = elapsed / (step - self.first + 1) * (self.total - step)
        shown = " | ".join(f"{k} {_fmt(v)}" for k, v in metrics.items())
        log.info("[%s] step %d/%d | %s | elapsed %s | ETA %s", self.label, step, self.total, shown,
                 _duration(elapsed), _duration(eta))


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"
