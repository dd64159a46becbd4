"""One config tree for every command: structured dataclasses, YAML recipes, `key=value` overrides.

A recipe (YAML) and the command line's overrides are merged onto the dataclass defaults by
OmegaConf, which rejects unknown keys and wrong types; `load_config` turns those failures and
our own range checks into a `ConfigError` that names the key's full path and where it came from.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

STAGES = ("sft", "rl")
"""Training stages `cosmo train` can run, in order."""


class ConfigError(ValueError):
    """A recipe or override that cannot run; the message names the key and what is expected."""


def opt(default: Any = MISSING, help: str = "", factory: Any = None) -> Any:
    """A config field with its documentation (docs/config.md is generated from these)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class ModelConfig:
    """The policy model: an HF checkpoint, or a tiny one built offline."""

    path: str = opt(help="HF checkpoint directory or hub id (hub ids need HF_HUB_OFFLINE unset)")
    build_preset: str | None = opt(None, "build a tiny offline Qwen2.5-VL of this preset at `path` when "
                                   "`path` has no config.json (docs/models.md); null: require a checkpoint")
    dtype: str = opt("auto", "auto (float32 on CPU, where bf16 is ~17x slower; bfloat16 on CUDA), "
                     "float32, bfloat16 or float16")
    attn_implementation: str = opt("sdpa", "sdpa, eager or flash_attention_2 (GPU extra)")
    freeze_vision: bool = opt(False, "keep the vision tower's weights fixed during training")


@dataclass
class DataConfig:
    """Training and evaluation data in the JSONL format of docs/data-format.md."""

    dir: str = opt(help="directory holding the train and eval JSONL files")
    train_file: str = opt("train.jsonl", "training split, relative to `dir`")
    eval_file: str = opt("eval.jsonl", "held-out split, relative to `dir`")
    build_if_missing: bool = opt(True, "render the built-in multitask set into `dir` when the train file is missing")
    train_per_task: int = opt(400, "built-in set: training rows per task")
    eval_per_task: int = opt(50, "built-in set: held-out rows per task")
    max_length: int = opt(256, "tokens per training sequence (prompt, image tokens and response)")


@dataclass
class TrainConfig:
    """What `cosmo train` runs."""

    stages: list[str] = opt(help=f"stages in order; available: {', '.join(STAGES)}", factory=lambda: ["sft"])


@dataclass
class SFTConfig:
    """Supervised fine-tuning on the rows' reference responses."""

    steps: int = opt(300, "optimizer steps")
    global_batch_size: int = opt(32, "samples per optimizer step over all ranks "
                                 "(micro_batch_size x gradient accumulation x learner.num_ranks)")
    micro_batch_size: int = opt(16, "samples per forward/backward pass on one rank")
    lr: float = opt(2e-3, "peak learning rate (AdamW)")
    min_lr_ratio: float = opt(0.1, "cosine decay ends at lr x min_lr_ratio")
    warmup_steps: int = opt(20, "linear warmup steps")


@dataclass
class RLConfig:
    """The RL stage: rollouts on vLLM actors, rewards on worker actors, policy updates on the learner."""

    steps: int = opt(20, "RL steps (rollout, reward, update, weight broadcast)")
    prompts_per_step: int = opt(8, "training rows sampled per step; each gets algorithm.group_size responses")
    micro_batch_size: int = opt(8, "trajectories per forward/backward pass on one rank")
    lr: float = opt(1e-4, "peak learning rate (AdamW); the CPGD paper uses 1e-6 for 7B models")
    min_lr_ratio: float = opt(0.1, "cosine decay ends at lr x min_lr_ratio")
    warmup_steps: int = opt(0, "linear warmup steps")


@dataclass
class RolloutConfig:
    """The vLLM rollout actors of the RL stage."""

    num_actors: int = opt(2, "rollout actors, one vLLM engine each; a step's prompts are split between them")
    cpus_per_actor: float = opt(0.5, "Ray CPUs reserved per actor (fractional: actors share cores)")
    max_new_tokens: int = opt(48, "tokens sampled per response")
    temperature: float = opt(1.0, "sampling temperature (1.0: log-probs match the learner's)")
    top_p: float = opt(1.0, "nucleus sampling")
    max_model_len: int = opt(512, "vLLM context length (prompt with image tokens + response)")
    enforce_eager: bool = opt(True, "no CUDA graphs / compilation (required on CPU)")
    gpu_memory_utilization: float = opt(0.5, "GPU only: share of GPU memory vLLM may take")
    tensor_parallel_size: int = opt(1, "GPU only: GPUs per engine")
    max_restarts: int = opt(3, "times Ray restarts a dead rollout actor before the run fails")


@dataclass
class RewardConfig:
    """How responses are judged and scored."""

    refusal_classifier: str = opt("rules", "the refusal decision behind every safety metric: rules = the "
                                  "phrase classifier of rewards/objectives/refusal.py")
    num_workers: int = opt(2, "reward-worker actors scoring in parallel")
    timeout_s: float = opt(30.0, "per scoring call; a worker that exceeds it is replaced and its share retried")
    format_weight: float = opt(0.5, "weight of the format objective added to the task objective")


@dataclass
class AlgorithmConfig:
    """Policy optimisation of the RL stage: CPGD (the paper's choice), GRPO and PPO as baselines."""

    name: str = opt("cpgd", "cpgd, grpo or ppo")
    clip_eps: float = opt(0.2, "clip range epsilon (CPGD: of the log-ratio; GRPO/PPO: of the ratio)")
    drift_coef: float = opt(0.01, "CPGD policy-drift coefficient alpha")
    drift_clip: float = opt(2.0, "CPGD policy-drift clip c")
    kl_coef: float = opt(0.0, "GRPO/PPO: k3 KL penalty against a reference policy (only 0 is accepted until "
                         "the learner holds one)")
    group_size: int = opt(8, "responses sampled per prompt (the group of group-relative advantages)")
    advantage_weight: str = opt("std", "std (divide by the group's std), equal, or clip_filter_like")
    aggregation: str = opt("token_mean", "token_mean over the micro-batch, or seq_mean of per-sequence means")


@dataclass
class LearnerConfig:
    """The DeepSpeed learner: one Ray actor per rank."""

    num_ranks: int = opt(2, "data-parallel ranks (one GPU each on CUDA)")
    cpus_per_rank: float = opt(1.0, "Ray CPUs reserved per rank (logical; fractional lets rollout actors share)")
    zero_stage: int = opt(2, "DeepSpeed ZeRO stage: 0, 1, 2 or 3")
    backend: str = opt("auto", "torch.distributed backend: auto (gloo on CPU, nccl on CUDA), gloo or nccl")
    weight_decay: float = opt(0.01, "AdamW weight decay")
    adam_beta1: float = opt(0.9, "AdamW beta1")
    adam_beta2: float = opt(0.95, "AdamW beta2")
    grad_clip: float = opt(1.0, "gradient-norm clip (0: none)")
    threads_per_rank: int = opt(0, "torch CPU threads per rank (0: one, the rank's CPU)")


@dataclass
class ClusterConfig:
    """Where the Ray actors run."""

    address: str | None = opt(None, "null: join RAY_ADDRESS if set (as under `ray job submit`), else start a "
                              "local cluster; auto or ray://host:port: join that cluster")
    num_cpus: int | None = opt(None, "CPUs a local cluster may use (null: all of this machine's)")
    namespace: str = opt("cosmo", "Ray namespace of the run's actors")


@dataclass
class LoggingConfig:
    """Run directory, progress lines and wandb."""

    runs_dir: str = opt("runs", "parent of every run directory")
    run_name: str = opt("cosmo", "run directory name (runs_dir/run_name) and wandb run name")
    project: str = opt("cosmo", "wandb project")
    wandb_mode: str = opt("offline", "offline, online (needs WANDB_API_KEY in the environment) or disabled")
    log_every: int = opt(10, "progress line every N steps (every step goes to metrics.jsonl and wandb)")


@dataclass
class CheckpointConfig:
    """HF-format checkpoints under runs_dir/run_name/checkpoints/<stage>/step_<N>."""

    every_steps: int = opt(0, "save every N optimizer steps (0: only at the end of each stage)")
    keep_last: int = opt(2, "complete checkpoints kept; older ones are deleted")


@dataclass
class EvalConfig:
    """Held-out evaluation of the start model and of every stage's final checkpoint."""

    enabled: bool = opt(True, "evaluate before training and after each stage")
    max_rows_per_task: int = opt(0, "rows per task to evaluate (0: all)")
    max_new_tokens: int = opt(48, "tokens generated per response (greedy)")
    batch_size: int = opt(32, "prompts per generation batch")


@dataclass
class CosmoConfig:
    """The whole config tree; a recipe sets any part of it."""

    model: ModelConfig = opt(help="", factory=ModelConfig)
    data: DataConfig = opt(help="", factory=DataConfig)
    train: TrainConfig = opt(help="", factory=TrainConfig)
    sft: SFTConfig = opt(help="", factory=SFTConfig)
    rl: RLConfig = opt(help="", factory=RLConfig)
    rollout: RolloutConfig = opt(help="", factory=RolloutConfig)
    reward: RewardConfig = opt(help="", factory=RewardConfig)
    algorithm: AlgorithmConfig = opt(help="", factory=AlgorithmConfig)
    learner: LearnerConfig = opt(help="", factory=LearnerConfig)
    cluster: ClusterConfig = opt(help="", factory=ClusterConfig)
    logging: LoggingConfig = opt(help="", factory=LoggingConfig)
    checkpoint: CheckpointConfig = opt(help="", factory=CheckpointConfig)
    eval: EvalConfig = opt(help="", factory=EvalConfig)
    seed: int = opt(0, "seed of data order, model init and sampling")
    device: str = opt("auto", "auto (cuda when the Ray cluster has GPUs, else cpu), cpu or cuda")


def _merge(base: DictConfig, other: Any, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        msg = getattr(exc, "msg", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}: key '{key}': {msg}") from None


def _parse_overrides(overrides: list[str]) -> DictConfig:
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"command line: override '{item}' is not of the form key=value")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"command line: cannot parse overrides: {exc}") from None


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> CosmoConfig:
    """Defaults <- YAML recipe <- `key=value` overrides, then validation; returns a typed config."""
    cfg = OmegaConf.structured(CosmoConfig)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            recipe = OmegaConf.load(path)
        except Exception as exc:  # YAML syntax errors come from several libraries' types
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(recipe, DictConfig):
            raise ConfigError(f"{path}: expected a mapping of sections at the top level")
        cfg = _merge(cfg, recipe, str(path))
    cfg = _merge(cfg, _parse_overrides(list(overrides)), "command line")
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"required keys have no value: {', '.join(missing)} (set them in the recipe or as key=value)")
    typed: CosmoConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    validate(typed)
    return typed


def _check(ok: bool, key: str, expected: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"key '{key}': expected {expected}, got {value!r}")


def validate(cfg: CosmoConfig) -> None:
    """Range and choice checks the type system cannot express; fail before any work starts."""
    from cosmo.models import PRESETS  # noqa: PLC0415 - keeps `import cosmo.config` light

    _check(cfg.model.build_preset is None or cfg.model.build_preset in PRESETS,
           "model.build_preset", f"null or one of {sorted(PRESETS)}", cfg.model.build_preset)
    _check(cfg.model.dtype in ("auto", "float32", "bfloat16", "float16"),
           "model.dtype", "auto, float32, bfloat16 or float16", cfg.model.dtype)
    _check(cfg.model.attn_implementation in ("sdpa", "eager", "flash_attention_2"),
           "model.attn_implementation", "sdpa, eager or flash_attention_2", cfg.model.attn_implementation)
    _check(cfg.data.max_length >= 32, "data.max_length", "an integer >= 32", cfg.data.max_length)
    _check(cfg.data.train_per_task >= 1, "data.train_per_task", "an integer >= 1", cfg.data.train_per_task)
    _check(cfg.data.eval_per_task >= 1, "data.eval_per_task", "an integer >= 1", cfg.data.eval_per_task)
    for i, stage in enumerate(cfg.train.stages):
        _check(stage in STAGES, f"train.stages[{i}]", f"one of {list(STAGES)}", stage)
    _check(len(cfg.train.stages) > 0, "train.stages", "at least one stage", cfg.train.stages)
    s = cfg.sft
    _check(s.steps >= 1, "sft.steps", "an integer >= 1", s.steps)
    _check(s.lr > 0, "sft.lr", "a positive number", s.lr)
    _check(0 <= s.min_lr_ratio <= 1, "sft.min_lr_ratio", "a number in [0, 1]", s.min_lr_ratio)
    _check(s.warmup_steps >= 0, "sft.warmup_steps", "an integer >= 0", s.warmup_steps)
    _check(s.micro_batch_size >= 1, "sft.micro_batch_size", "an integer >= 1", s.micro_batch_size)
    per_step = s.micro_batch_size * cfg.learner.num_ranks
    _check(s.global_batch_size % per_step == 0, "sft.global_batch_size",
           f"a multiple of sft.micro_batch_size x learner.num_ranks = {per_step}", s.global_batch_size)
    rl = cfg.rl
    _check(rl.steps >= 1, "rl.steps", "an integer >= 1", rl.steps)
    _check(rl.lr > 0, "rl.lr", "a positive number", rl.lr)
    _check(0 <= rl.min_lr_ratio <= 1, "rl.min_lr_ratio", "a number in [0, 1]", rl.min_lr_ratio)
    _check(rl.warmup_steps >= 0, "rl.warmup_steps", "an integer >= 0", rl.warmup_steps)
    _check(rl.prompts_per_step >= 1, "rl.prompts_per_step", "an integer >= 1", rl.prompts_per_step)
    per_step = rl.micro_batch_size * cfg.learner.num_ranks
    _check(rl.micro_batch_size >= 1 and (rl.prompts_per_step * cfg.algorithm.group_size) % per_step == 0,
           "rl.micro_batch_size", f"a divisor such that rl.prompts_per_step x algorithm.group_size = "
           f"{rl.prompts_per_step * cfg.algorithm.group_size} is a multiple of micro_batch_size x "
           f"learner.num_ranks", rl.micro_batch_size)
    r = cfg.rollout
    _check(r.num_actors >= 1, "rollout.num_actors", "an integer >= 1", r.num_actors)
    _check(r.cpus_per_actor > 0, "rollout.cpus_per_actor", "a positive number", r.cpus_per_actor)
    _check(r.max_new_tokens >= 1, "rollout.max_new_tokens", "an integer >= 1", r.max_new_tokens)
    _check(r.temperature > 0, "rollout.temperature", "a positive number (RL samples)", r.temperature)
    _check(0 < r.top_p <= 1, "rollout.top_p", "a number in (0, 1]", r.top_p)
    _check(r.max_model_len > r.max_new_tokens, "rollout.max_model_len", "more than rollout.max_new_tokens",
           r.max_model_len)
    _check(0 < r.gpu_memory_utilization <= 1, "rollout.gpu_memory_utilization", "a number in (0, 1]",
           r.gpu_memory_utilization)
    _check(r.tensor_parallel_size >= 1, "rollout.tensor_parallel_size", "an integer >= 1", r.tensor_parallel_size)
    _check(r.max_restarts >= 0, "rollout.max_restarts", "an integer >= 0", r.max_restarts)
    _check(cfg.reward.num_workers >= 1, "reward.num_workers", "an integer >= 1", cfg.reward.num_workers)
    _check(cfg.reward.timeout_s > 0, "reward.timeout_s", "a positive number", cfg.reward.timeout_s)
    _check(cfg.reward.format_weight >= 0, "reward.format_weight", "a number >= 0", cfg.reward.format_weight)
    _check(cfg.reward.refusal_classifier == "rules", "reward.refusal_classifier", "rules",
           cfg.reward.refusal_classifier)
    a = cfg.algorithm
    _check(a.name in ("cpgd", "grpo", "ppo"), "algorithm.name", "cpgd, grpo or ppo", a.name)
    _check(0 < a.clip_eps < 1, "algorithm.clip_eps", "a number in (0, 1)", a.clip_eps)
    _check(a.drift_coef >= 0, "algorithm.drift_coef", "a number >= 0", a.drift_coef)
    _check(a.drift_clip > 0, "algorithm.drift_clip", "a positive number", a.drift_clip)
    _check(a.kl_coef == 0, "algorithm.kl_coef", "0 (the learner holds no frozen reference policy yet; "
           "CPGD needs none)", a.kl_coef)
    _check(a.group_size >= 2, "algorithm.group_size", "an integer >= 2", a.group_size)
    from cosmo.algorithms import AGGREGATIONS, WEIGHTS  # noqa: PLC0415

    _check(a.advantage_weight in WEIGHTS, "algorithm.advantage_weight", f"one of {list(WEIGHTS)}", a.advantage_weight)
    _check(a.aggregation in AGGREGATIONS, "algorithm.aggregation", f"one of {list(AGGREGATIONS)}", a.aggregation)
    ln = cfg.learner
    _check(ln.num_ranks >= 1, "learner.num_ranks", "an integer >= 1", ln.num_ranks)
    _check(ln.cpus_per_rank > 0, "learner.cpus_per_rank", "a positive number", ln.cpus_per_rank)
    _check(ln.zero_stage in (0, 1, 2, 3), "learner.zero_stage", "0, 1, 2 or 3", ln.zero_stage)
    _check(ln.backend in ("auto", "gloo", "nccl"), "learner.backend", "auto, gloo or nccl", ln.backend)
    _check(ln.grad_clip >= 0, "learner.grad_clip", "a number >= 0", ln.grad_clip)
    _check(0 <= ln.adam_beta1 < 1 and 0 <= ln.adam_beta2 < 1, "learner.adam_beta1/adam_beta2",
           "numbers in [0, 1)", (ln.adam_beta1, ln.adam_beta2))
    _check(ln.threads_per_rank >= 0, "learner.threads_per_rank", "an integer >= 0", ln.threads_per_rank)
    _check(cfg.cluster.num_cpus is None or cfg.cluster.num_cpus >= 1, "cluster.num_cpus", "null or >= 1",
           cfg.cluster.num_cpus)
    _check(cfg.logging.wandb_mode in ("offline", "online", "disabled"), "logging.wandb_mode",
           "offline, online or disabled", cfg.logging.wandb_mode)
    _check(cfg.logging.log_every >= 1, "logging.log_every", "an integer >= 1", cfg.logging.log_every)
    name = cfg.logging.run_name
    _check(bool(name) and "/" not in name and name not in (".", ".."), "logging.run_name",
           "a non-empty name without '/'", name)
    _check(cfg.checkpoint.every_steps >= 0, "checkpoint.every_steps", "an integer >= 0", cfg.checkpoint.every_steps)
    _check(cfg.checkpoint.keep_last >= 1, "checkpoint.keep_last", "an integer >= 1", cfg.checkpoint.keep_last)
    _check(cfg.eval.max_rows_per_task >= 0, "eval.max_rows_per_task", "an integer >= 0", cfg.eval.max_rows_per_task)
    _check(cfg.eval.max_new_tokens >= 1, "eval.max_new_tokens", "an integer >= 1", cfg.eval.max_new_tokens)
    _check(cfg.eval.batch_size >= 1, "eval.batch_size", "an integer >= 1", cfg.eval.batch_size)
    _check(cfg.device in ("auto", "cpu", "cuda"), "device", "auto, cpu or cuda", cfg.device)


def to_yaml(cfg: CosmoConfig) -> str:
    """The resolved config as YAML (what the run directory keeps; it holds no secrets by design)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def reference_markdown() -> str:
    """docs/config.md, generated from the dataclasses so that the reference matches the code."""
    lines = ["# Config reference", "",
             "Generated from `cosmo/config.py` by `python -m cosmo.config > docs/config.md`; do not edit by hand.",
             "A recipe (YAML) sets any of these keys; `key=value` on the command line overrides the recipe.",
             "Unknown keys and wrong types fail at start with the key's full path.", ""]
    top = [f for f in dataclasses.fields(CosmoConfig) if not dataclasses.is_dataclass(f.default_factory)]
    for f in dataclasses.fields(CosmoConfig):
        if f in top:
            continue
        section = f.default_factory
        lines += [f"## `{f.name}`", "", (section.__doc__ or "").strip(), "",
                  "| key | type | default | meaning |", "|---|---|---|---|"]
        lines += [_reference_row(f"{f.name}.{g.name}", g) for g in dataclasses.fields(section)]
        lines.append("")
    lines += ["## top level", "", "| key | type | default | meaning |", "|---|---|---|---|"]
    lines += [_reference_row(f.name, f) for f in top]
    return "\n".join(lines) + "\n"


def _reference_row(key: str, f: dataclasses.Field) -> str:
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    elif f.default is MISSING:
        value = MISSING
    else:
        value = f.default
    default = "*required*" if value is MISSING else f"`{json.dumps(value)}`"
    kind = str(f.type).replace("|", "\\|")
    return f"| `{key}` | {kind} | {default} | {f.metadata.get('help', '')} |"


if __name__ == "__main__":
    print(reference_markdown(), end="")
