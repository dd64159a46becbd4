"""The run's inputs, made and checked before anything starts: the data (built-in or the user's, with
its augmentation) and the model (a tiny one built offline when the recipe asks for it).

Every row of every file the run reads is validated here, before Ray starts and before any model
loads, so that a bad row fails in seconds, naming its file, line and field.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from cosmo.config import CosmoConfig
from cosmo.data import AugmentOptions, Sample, build_dataset, cached_augmentation, corpus_texts, load_jsonl
from cosmo.data.sampling import MixtureSampler
from cosmo.models import build_tiny_model

log = logging.getLogger("cosmo")


@dataclass(frozen=True)
class Assets:
    model: str
    train_file: str
    eval_file: str


def prepare_data(cfg: CosmoConfig) -> tuple[str, str]:
    """The training and eval files, built when the recipe asks for the built-in data and it is missing,
    then every row of both read and validated; the batch sizes checked against what they draw from.

    With `data.augment` the training file is the augmented copy (cosmo.data.augment), built once per
    content hash under `data.augment_dir` and reused by reruns; the eval file is never augmented."""
    data_dir = Path(cfg.data.dir)
    train_file, eval_file = data_dir / cfg.data.train_file, data_dir / cfg.data.eval_file
    if not train_file.is_file():
        if not cfg.data.build_if_missing:
            raise FileNotFoundError(f"data.dir: {train_file} does not exist (data.build_if_missing=false)")
        log.info("building the built-in multitask dataset in %s", data_dir)
        started = time.perf_counter()
        build_dataset(data_dir, seed=cfg.seed, train_per_task=cfg.data.train_per_task,
                      eval_per_task=cfg.data.eval_per_task)
        log.info("dataset built in %.1f s", time.perf_counter() - started)
    if cfg.data.augment:
        started = time.perf_counter()
        cache = Path(cfg.data.augment_dir) if cfg.data.augment_dir else data_dir / ".augmented"
        train_file = cached_augmentation(train_file, cache, seed=cfg.seed, options=AugmentOptions.from_config(cfg.data))
        log.info("augmented training file %s (%.1f s)", train_file, time.perf_counter() - started)
    rows = load_jsonl(train_file)
    if cfg.eval.enabled:
        load_jsonl(eval_file)
    check_batch_sizes(cfg, rows, str(train_file))
    return str(train_file), str(eval_file)


def check_batch_sizes(cfg: CosmoConfig, rows: list[Sample], train_file: str) -> list[str]:
    """A batch larger than the rows it draws from repeats rows within one step: warn, naming the keys.
    Returns the warnings (also logged)."""
    batches = {"sft": ("sft.global_batch_size", cfg.sft.global_batch_size),
               "rl": ("rl.prompts_per_step", cfg.rl.prompts_per_step)}
    sampler = MixtureSampler([r.task for r in rows], cfg.data.task_weights, cfg.seed) if cfg.data.task_weights else None
    warnings = []
    for stage in cfg.train.stages:
        key, size = batches[stage]
        if sampler is not None:
            quotas = sampler.quotas(size)
            short = {t: (n, len(sampler.rows[t])) for t, n in quotas.items() if n > len(sampler.rows[t])}
            warnings += [f"{key}={size} with data.task_weights draws {n} rows of task {t!r} per step, but "
                         f"{train_file} has only {have}: rows repeat within a step" for t, (n, have) in short.items()]
        elif size > len(rows):
            warnings.append(f"{key}={size} is larger than the {len(rows)} rows of {train_file}: rows repeat "
                            f"within a step (lower {key} or add rows)")
    for warning in warnings:
        log.warning("%s", warning)
    return warnings


def prepare_model(cfg: CosmoConfig) -> str:
    """The start model: `model.path`, built there from `model.build_preset` when it is not there yet."""
    model_dir = Path(cfg.model.path)
    if cfg.model.build_preset and not (model_dir / "config.json").is_file():
        log.info("building tiny model preset '%s' in %s", cfg.model.build_preset, model_dir)
        build_tiny_model(model_dir, preset=cfg.model.build_preset, seed=cfg.seed, corpus=corpus_texts())
    return str(model_dir) if model_dir.exists() else cfg.model.path


def prepare_assets(cfg: CosmoConfig) -> Assets:
    """Data first (validated), then the model: a bad row never waits for a model build."""
    train_file, eval_file = prepare_data(cfg)
    return Assets(model=prepare_model(cfg), train_file=train_file, eval_file=eval_file)
