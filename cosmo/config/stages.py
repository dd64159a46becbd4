"""Named training stages (`train.stage_configs`): the config each stage of `train.stages` runs with.

The paper trains RL stage 1 (reasoning, instruction following) and RL stage 2 (safety, over-refusal,
jailbreaks and knowledge with the general tasks) one after the other, each with its own steps, lr, task
mixture and reward weights. A named stage is a kind (`sft` or `rl`) and a partial config tree merged over
the recipe for that stage only; `sft` and `rl` themselves run with the recipe as it is.
"""

from __future__ import annotations

import re

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cosmo.config.sections import STAGES, CheckFailed, ConfigError, CosmoConfig

ROLLOUT_STAGE_KEYS = ("max_new_tokens", "temperature", "top_p")
"""What a stage may change of `rollout`: how responses are sampled. The engines' shape and placement
(actors, CPUs, context length, memory, parallelism, timeouts) are sized once for the run's resources, and
the evaluation engine is built from them, so every stage's evaluation stays comparable."""

STAGE_KEYS: dict[str, dict[str, tuple[str, ...] | None]] = {
    "sft": {"sft": None, "data": ("task_weights",)},
    "rl": {"rl": None, "data": ("task_weights",), "reward": None, "algorithm": None, "rollout": ROLLOUT_STAGE_KEYS},
}
"""Per kind: the sections a stage may set, whole (None) or only these keys. Everything else (model, data
files, learner, cluster, logging, checkpoint, eval, seed) is the run's: one run directory, one set of
learner ranks (a checkpoint resumes only on the same ones), one evaluation for every column."""

RESERVED_NAMES = (*STAGES, "start", "event")
"""Not stage names: the plain stages, the start model's eval label, the metrics records of events."""
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
"""A stage's name becomes a folder (checkpoints/<name>), a file (eval/<name>.json) and wandb keys."""


def stage_config(cfg: CosmoConfig, name: str) -> tuple[str, CosmoConfig]:
    """(kind, config) of the stage `name` of train.stages: `sft` and `rl` run with `cfg` itself; a key of
    train.stage_configs with its sections merged over `cfg` (a new config; `cfg` is not changed). A kind
    other than sft or rl, a key the stage may not set, or a value of the wrong type raises ConfigError
    naming `train.stage_configs.<name>.<key>`."""
    if name in STAGES:
        return name, cfg
    prefix = f"train.stage_configs.{name}"
    if name not in cfg.train.stage_configs:
        raise CheckFailed("train.stages", f"sft, rl or a key of train.stage_configs {list(cfg.train.stage_configs)}",
                          name)
    entry = cfg.train.stage_configs[name]
    if not isinstance(entry, dict):
        raise CheckFailed(prefix, "a mapping with `kind` (sft or rl) and the sections the stage changes", entry)
    kind = entry.get("kind")
    if kind not in STAGES:
        raise CheckFailed(f"{prefix}.kind", " or ".join(STAGES), kind)
    allowed = STAGE_KEYS[kind]
    for section, value in entry.items():
        if section == "kind":
            continue
        if section not in allowed:
            raise CheckFailed(f"{prefix}.{section}", f"a section an {kind} stage may set ({allowed_keys(kind)})",
                              value)
        if not isinstance(value, dict):
            raise CheckFailed(f"{prefix}.{section}", "a section (a mapping of keys)", value)
        keys = allowed[section]
        for key in value:
            if keys is not None and key not in keys:
                raise CheckFailed(f"{prefix}.{section}.{key}",
                                  f"a key an {kind} stage may set in {section} ({', '.join(keys)})", value[key])
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cfg), {k: v for k, v in entry.items() if k != "kind"})
        return kind, OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        msg = (getattr(exc, "msg", None) or str(exc)).splitlines()[0]
        raise ConfigError(f"key '{prefix}.{key}': {msg}") from None


def allowed_keys(kind: str) -> str:
    """What a stage of `kind` may set, for messages and docs: `rl, data.task_weights, ...`."""
    return ", ".join(section if keys is None else ", ".join(f"{section}.{k}" for k in keys)
                     for section, keys in STAGE_KEYS[kind].items())
