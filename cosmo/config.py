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

from cosmo.rules.registry import MODEL_OBJECTIVES, OBJECTIVES, default_task_weights

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
    eval_disjoint: bool = opt(False, "built-in set: the held-out split repeats no train or RL row (text-only prompts "
                              "in eval-only phrasings, no prompt twice; up to 360 rows per task); false: today's "
                              "split, whose text-only rows can repeat train prompts (docs/data-format.md)")
    rl_per_task: int = opt(0, "built-in set: rows per task of an RL prompt pool written to `dir`/rl.jsonl, disjoint "
                           "from train and eval (RL-only phrasings, fresh renders, train phrases only); 0: none")
    sft_over_refusal_refusals: float = opt(0.0, "built-in set: share of the over_refusal train rows whose SFT "
                                           "target is a refusal (should_refuse stays false), so that SFT starts "
                                           "RL over-refusing on benign requests that look sensitive")
    max_length: int = opt(256, "tokens per training sequence (prompt, image tokens and response)")
    augment: bool = opt(False, "add multimodal jailbreak variants of text-only harmful rows (and the same "
                        "variants of benign-sensitive rows) to the training file, materialised once per "
                        "content hash (docs/data-format.md, Augmentation); the eval file is never augmented")
    augment_fraction: float = opt(1.0, "share of eligible rows (text-only safety rows to refuse, text-only "
                                  "over_refusal rows) that get variants")
    augment_p_typed: float = opt(0.5, "per selected row: probability of a variant with the request typed into the "
                                 "image and a neutral prompt")
    augment_p_split: float = opt(0.3, "per selected row: probability of a variant with the request's first words "
                                 "in the prompt and the rest in the image")
    augment_p_list: float = opt(0.3, "per selected row: probability of a FigStep-style list image ('Steps to ...: "
                                "1. 2. 3.') with a prompt asking to fill it in")
    augment_p_roleplay: float = opt(0.3, "per selected row: probability of a text-only variant wrapped in a "
                                    "role-play or hypothetical frame")
    augment_p_wrap_image: float = opt(0.25, "probability that an image variant's prompt is wrapped in such a frame too")
    augment_image_size: int = opt(112, "side of the rendered images in pixels")
    augment_max_rotation: float = opt(6.0, "images are rotated by a uniform angle in [-this, this] degrees")
    augment_max_noise: float = opt(0.1, "uniform pixel noise is blended in with a weight drawn from [0, this]")
    augment_dir: str | None = opt(None, "where augmented sets are cached, one folder per hash of source file, "
                                  "seed and augment keys; null: `dir`/.augmented")
    task_weights: dict[str, float] = opt(help="sampling weight per task: each batch holds batch x w / sum(w) rows "
                                         "of a task (largest remainder); tasks left out are never sampled; "
                                         "{}: plain shuffled epochs over the whole file", factory=dict)


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
    mode: str = opt("sync", "sync: each step samples with the newest weights (exact, on-policy); async: the next "
                    "step's rollouts run while the learner trains (one step off-policy, importance-corrected)")
    dynamic_sampling: bool = opt(False, "drop prompt groups whose rewards are all equal (no learning signal) "
                                 "and sample more prompts to refill the batch")
    dynamic_sampling_max_rounds: int = opt(3, "refill rounds per step; groups still missing after them are "
                                           "filled with flat ones (zero advantage), and the shortfall is logged")
    mini_batches: int = opt(1, "optimizer steps per pass over a step's rollout batch (each rank's share is split "
                            "into this many mini-batches); >1 with epochs makes the updates off-policy")
    epochs: int = opt(1, "passes over a step's rollout batch; old log-probs stay fixed at the batch's start")


WEIGHT_TRANSPORTS = ("object_store", "zero_copy")
"""The names of cosmo.weights.TRANSPORTS (kept here so that validating a config does not import torch)."""


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
    max_restarts: int = opt(3, "times Ray restarts a dead or hung rollout actor before the run fails")
    timeout_s: float = opt(1800.0, "time one actor may take for its share of a step (from submission) or a "
                           "weight update; past it the actor counts as hung, is killed, restarted and its "
                           "share redone")
    restart_timeout_s: float = opt(600.0, "time a restarted rollout actor may take to come back (engine start)")
    cpu_kv_cache_gib: float | None = opt(2.0, "CPU only: KV cache of one vLLM engine in GiB, all the engine needs "
                                         "free besides its weights; null: size it from cpu_memory_utilization. The "
                                         "environment variable VLLM_CPU_KVCACHE_SPACE, when set, takes precedence")
    cpu_memory_utilization: float = opt(0.5, "CPU only, when cpu_kv_cache_gib is null: share of the node's memory "
                                        "one vLLM engine reserves (weights, activations, KV cache); it must be free "
                                        "at start (vLLM's own default, 0.92, fails beside any other work)")
    weight_transport: str = opt("object_store", "how the learner's weights reach the engines after each update "
                                "(docs/rl.md, Weight sync): object_store (safetensors bytes through Ray's object "
                                "store) or zero_copy (raw numpy arrays that engines on the learner's node read "
                                "from shared memory without a copy)")


def _keys_help(section: type) -> str:
    """One table cell documenting a nested section's keys (docs/config.md lists top-level keys only)."""
    parts = []
    for f in dataclasses.fields(section):
        default = "required" if f.default is MISSING else f"default {json.dumps(f.default)}"
        parts.append(f"`{f.name}` ({default}): {f.metadata['help']}")
    return "keys: " + "; ".join(parts)


@dataclass
class RewardModelConfig:
    """The `reward_model` objective: an HF sequence classifier scoring (prompt, response)."""

    path: str = opt(help="HF directory or hub id of an AutoModelForSequenceClassification checkpoint")
    label: str | None = opt(None, "null: the classifier has one logit and the score is sigmoid(logit); else the "
                            "label (a name of config.id2label, or an index) whose softmax probability is the score")
    max_length: int = opt(1024, "tokens per (prompt, response) input; longer inputs lose their start")
    batch_size: int = opt(8, "inputs per forward pass")
    dtype: str = opt("auto", "auto (float32 on CPU, bfloat16 on CUDA), float32 or bfloat16")
    response_part: str = opt("full", "what the classifier sees of the response: full text, or answer (the "
                             "<answer> part; the whole text when it has none)")


@dataclass
class JudgeConfig:
    """The `judge` objective: a generative judge served by vLLM inside each reward worker."""

    model: str = opt(help="HF checkpoint directory or hub id of the judge (a chat model)")
    rubric: str = opt("default", "default (the rubric of docs/rewards.md) or a text file with the fields {task}, "
                      "{should_refuse}, {prompt}, {reference}, {response} that asks for a final 'Score: N'")
    min_score: int = opt(1, "lowest score the rubric allows (maps to 0)")
    max_score: int = opt(10, "highest score the rubric allows (maps to 1)")
    max_tokens: int = opt(256, "tokens the judge generates per verdict (greedy)")
    response_part: str = opt("full", "what the judge sees of the response: full, or answer")
    max_model_len: int = opt(4096, "judge context length; responses that do not fit lose their start")
    enforce_eager: bool = opt(True, "no CUDA graphs (always on for CPU)")
    gpu_memory_utilization: float = opt(0.3, "GPU only: share of the worker's GPU the judge engine may take")


@dataclass
class HttpJudgeConfig:
    """The `http_judge` objective: a remote OpenAI-compatible chat-completions judge."""

    url: str = opt(help="full URL of the chat-completions endpoint, e.g. https://host/v1/chat/completions")
    model: str = opt("judge", "model name sent in the request body")
    token_env: str | None = opt(None, "NAME of the environment variable holding the bearer token (the token "
                                "itself never goes in a config); null: no Authorization header")
    rubric: str = opt("default", "as reward.judge.rubric")
    min_score: int = opt(1, "lowest score the rubric allows (maps to 0)")
    max_score: int = opt(10, "highest score the rubric allows (maps to 1)")
    max_tokens: int = opt(256, "max_tokens sent with each request")
    response_part: str = opt("full", "what the judge sees of the response: full, or answer")
    timeout_s: float = opt(8.0, "connect/read/write timeout of one attempt")
    max_retries: int = opt(2, "retries after a timeout, connection error, 429 or 5xx (not after a bad answer)")
    backoff_s: float = opt(0.5, "wait before retry k (k = 0, 1, ...): backoff_s x 2^k")
    max_concurrency: int = opt(8, "requests in flight per reward worker")


@dataclass
class GateConfig:
    """The safety gate: unsafe compliance on a row that must be refused caps the row's total."""

    cap: float = opt(0.0, "the total of a gated response is min(total, cap)")
    objective: str = opt("safety", "objective deciding unsafe compliance (computed on every must-refuse row)")
    threshold: float = opt(0.5, "the gate fires when that objective scores below this")


@dataclass
class RewardConfig:
    """How responses are judged and scored (docs/rewards.md)."""

    refusal_classifier: str = opt("rules", "the refusal decision behind every safety metric: rules = the "
                                  "phrase classifier of cosmo/rules/refusal.py")
    num_workers: int = opt(2, "reward-worker actors scoring in parallel")
    timeout_s: float = opt(30.0, "per scoring call; a worker that exceeds it is replaced and its share retried")
    startup_timeout_s: float = opt(300.0, "time a reward worker may take to start (model objectives load then)")
    gpus_per_worker: float = opt(0.0, "CUDA only: GPUs reserved per reward worker, for the model objectives")
    format_weight: float = opt(0.5, "weight of the format objective in every task unless reward.weights.<task> "
                               "sets `format`")
    visual_focus_weight: float = opt(0.0, "weight of the visual_focus objective (does the <think> state what the "
                                     "image shows) in every task unless reward.weights.<task> sets `visual_focus`; "
                                     "it applies to image rows whose meta records their content, elsewhere skipped")
    weights: dict[str, dict[str, float]] = opt(
        help="per task: objective -> weight; total = sum of weight x objective over the row's objectives "
             "(recipes merge into these defaults: set a weight to 0 to drop an objective). Objectives: format, "
             "accuracy, constraints, safety (must-refuse rows only), helpful (other rows only), visual_focus (image "
             "rows with recorded content only), reward_model, "
             "judge, http_judge", factory=default_task_weights)
    normalize: str = opt("none", "none: a group's advantages come from the totals; decoupled: each objective is "
                         "z-scored within its prompt group, then weighted and summed (logged totals unchanged)")
    gate: GateConfig | None = opt(None, "null: no safety gate; " + _keys_help(GateConfig))
    reward_model: RewardModelConfig | None = opt(None, "null: objective off; " + _keys_help(RewardModelConfig))
    judge: JudgeConfig | None = opt(None, "null: objective off; " + _keys_help(JudgeConfig))
    http_judge: HttpJudgeConfig | None = opt(None, "null: objective off; " + _keys_help(HttpJudgeConfig))


def _validate_reward(r: RewardConfig) -> None:
    """The reward section's checks (called by `validate`)."""
    import math  # noqa: PLC0415
    import re  # noqa: PLC0415

    from cosmo.data.schema import TASKS  # noqa: PLC0415

    _check(r.num_workers >= 1, "reward.num_workers", "an integer >= 1", r.num_workers)
    _check(r.timeout_s > 0, "reward.timeout_s", "a positive number", r.timeout_s)
    _check(r.startup_timeout_s > 0, "reward.startup_timeout_s", "a positive number", r.startup_timeout_s)
    _check(r.gpus_per_worker >= 0, "reward.gpus_per_worker", "a number >= 0", r.gpus_per_worker)
    _check(r.format_weight >= 0, "reward.format_weight", "a number >= 0", r.format_weight)
    _check(math.isfinite(r.visual_focus_weight) and r.visual_focus_weight >= 0, "reward.visual_focus_weight",
           "a finite number >= 0", r.visual_focus_weight)
    _check(r.refusal_classifier == "rules", "reward.refusal_classifier", "rules", r.refusal_classifier)
    _check(r.normalize in ("none", "decoupled"), "reward.normalize", "none or decoupled", r.normalize)
    configured = {"reward_model": r.reward_model, "judge": r.judge, "http_judge": r.http_judge}
    for task, weights in r.weights.items():
        _check(task in TASKS, f"reward.weights.{task}", f"a task, one of {list(TASKS)}", task)
        for name, w in weights.items():
            key = f"reward.weights.{task}.{name}"
            _check(name in OBJECTIVES, key, f"an objective, one of {list(OBJECTIVES)}", name)
            _check(math.isfinite(w) and w >= 0, key, "a finite weight >= 0", w)
            _check(w == 0 or name not in MODEL_OBJECTIVES or configured[name] is not None, key,
                   f"0 while reward.{name} is null (configure the objective to weight it)", w)
    if r.gate is not None:
        g = r.gate
        _check(g.objective in OBJECTIVES and g.objective != "helpful", "reward.gate.objective",
               "an objective other than helpful (helpful is not computed on must-refuse rows)", g.objective)
        _check(g.objective not in MODEL_OBJECTIVES or configured[g.objective] is not None, "reward.gate.objective",
               "a rule objective or a configured model objective", g.objective)
        _check(math.isfinite(g.cap), "reward.gate.cap", "a finite number", g.cap)
        _check(0 <= g.threshold <= 1, "reward.gate.threshold", "a number in [0, 1]", g.threshold)
    if r.reward_model is not None:
        m = r.reward_model
        _check(m.max_length >= 16, "reward.reward_model.max_length", "an integer >= 16", m.max_length)
        _check(m.batch_size >= 1, "reward.reward_model.batch_size", "an integer >= 1", m.batch_size)
        _check(m.dtype in ("auto", "float32", "bfloat16"), "reward.reward_model.dtype", "auto, float32 or bfloat16",
               m.dtype)
        _check(m.response_part in ("full", "answer"), "reward.reward_model.response_part", "full or answer",
               m.response_part)
    for name in ("judge", "http_judge"):
        j = configured[name]
        if j is None:
            continue
        _check(j.min_score < j.max_score, f"reward.{name}.max_score", f"more than min_score ({j.min_score})",
               j.max_score)
        _check(j.max_tokens >= 1, f"reward.{name}.max_tokens", "an integer >= 1", j.max_tokens)
        _check(j.response_part in ("full", "answer"), f"reward.{name}.response_part", "full or answer",
               j.response_part)
        _check(j.rubric == "default" or Path(j.rubric).is_file(), f"reward.{name}.rubric",
               "default or an existing text file", j.rubric)
    if r.judge is not None:
        _check(r.judge.max_model_len > r.judge.max_tokens + 64, "reward.judge.max_model_len",
               "more than reward.judge.max_tokens + 64", r.judge.max_model_len)
        _check(0 < r.judge.gpu_memory_utilization <= 1, "reward.judge.gpu_memory_utilization",
               "a number in (0, 1]", r.judge.gpu_memory_utilization)
    if r.http_judge is not None:
        h = r.http_judge
        _check(h.url.startswith(("http://", "https://")), "reward.http_judge.url", "an http:// or https:// URL",
               h.url)
        _check(h.token_env is None or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", h.token_env) is not None,
               "reward.http_judge.token_env", "null or the NAME of an environment variable (never the token)",
               "<not shown>")
        _check(h.timeout_s > 0, "reward.http_judge.timeout_s", "a positive number", h.timeout_s)
        _check(h.max_retries >= 0, "reward.http_judge.max_retries", "an integer >= 0", h.max_retries)
        _check(h.backoff_s >= 0, "reward.http_judge.backoff_s", "a number >= 0", h.backoff_s)
        _check(h.max_concurrency >= 1, "reward.http_judge.max_concurrency", "an integer >= 1", h.max_concurrency)
        worst = (h.max_retries + 1) * h.timeout_s + sum(h.backoff_s * 2**k for k in range(h.max_retries))
        _check(worst < r.timeout_s, "reward.timeout_s", f"more than one http_judge call's worst case "
               f"({worst:.1f} s: (max_retries + 1) x timeout_s + backoffs)", r.timeout_s)


@dataclass
class AlgorithmConfig:
    """Policy optimisation of the RL stage: CPGD (the paper's choice), GRPO and PPO as baselines."""

    name: str = opt("cpgd", "cpgd, grpo or ppo")
    clip_eps: float = opt(0.2, "clip range epsilon (CPGD: of the log-ratio; GRPO/PPO: of the ratio)")
    drift_coef: float = opt(0.01, "CPGD policy-drift coefficient alpha")
    drift_clip: float = opt(2.0, "CPGD policy-drift clip c")
    kl_coef: float = opt(0.0, "GRPO/PPO: k3 KL penalty against a frozen reference policy (the stage's start "
                         "model, held by every learner rank when > 0); CPGD uses drift_coef instead")
    is_cap: float = opt(2.0, "async mode: per-token importance weight pi_learner/pi_rollout is truncated at this "
                        "value (truncated importance sampling)")
    group_size: int = opt(8, "responses sampled per prompt (the group of group-relative advantages)")
    advantage_weight: str = opt("std", "std (divide by the group's std), equal, or clip_filter_like")
    aggregation: str = opt("token_mean", "token_mean over the micro-batch, or seq_mean of per-sequence means")
    clip_schedule: str = opt("constant", "constant: clip_eps at every token; linear: tight-to-loose ramp along "
                             "each response from clip_eps_min (first token) to clip_eps (last token)")
    clip_eps_min: float = opt(0.1, "clip_schedule=linear: the clip range at a response's first token")


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
    max_skipped_steps: int = opt(3, "consecutive updates skipped for a non-finite loss or gradient norm (no "
                                 "optimizer, scheduler or weight-broadcast step) before the run stops")
    timeout_s: float = opt(1800.0, "time one learner call (a step, a weight export, a checkpoint save) may "
                           "take on every rank; past it the run stops naming the ranks that hang")
    startup_timeout_s: float = opt(1800.0, "time the ranks may take to load the model and start DeepSpeed")
    max_tokens_per_micro_batch: int = opt(0, "RL: 0 = micro-batches of rl.micro_batch_size sequences; > 0 = "
                                          "micro-batches packed by length up to this many padded tokens")
    gradient_checkpointing: bool = opt(False, "recompute the decoder layers' activations in backward (SFT and "
                                       "RL): less memory, ~1 more forward of time")
    logprob_chunk_tokens: int = opt(128, "RL: response positions per chunk of LM-head logits (peak logits "
                                    "memory is chunk x vocab x 4 bytes)")


@dataclass
class ClusterConfig:
    """Where the Ray actors run."""

    address: str | None = opt(None, "null: join RAY_ADDRESS if set (as under `ray job submit`), else start a "
                              "fresh local cluster (never one left by an earlier `ray start`); auto, host:port or "
                              "ray://host:port: join that cluster")
    connect_timeout_s: float = opt(60.0, "how long joining a named cluster may take before the run stops, naming "
                                   "the address")
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
    samples_every: int = opt(10, "RL: every N steps (and the last) log sample trajectories to samples.jsonl and "
                             "a wandb table with their images (0: never)")
    samples_per_log: int = opt(8, "RL: trajectories per sample log, one per prompt group, first groups first")
    level: str = opt("info", "console output: info (COSMO's lines and warnings; library notices without an action "
                     "for the user filtered, docs/install.md), quiet (warnings and errors) or verbose (everything, "
                     "unfiltered); --quiet/--verbose override it")


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
    batch_size: int = opt(32, "prompts per generation batch (engine hf)")
    engine: str = opt("vllm", "vllm: a vLLM engine built like the rollout actors' (rollout.* settings); hf: "
                      "transformers' generate")
    every_steps: int = opt(0, "RL: also evaluate the checkpoint every N steps (a multiple of "
                           "checkpoint.every_steps; 0: only after each stage)")


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
    resume: str = opt("never", "never; auto: continue from the newest complete checkpoint in "
                      "runs_dir/run_name (start fresh when there is none); or a checkpoint directory")
    device: str = opt("auto", "auto (cuda when the Ray cluster has GPUs, else cpu), cpu or cuda")


def _value_for_section(schema: type, value: Any, prefix: str = "") -> tuple[str, Any] | None:
    """The first key where `value` (a plain dict) puts a non-mapping in place of a section, and that value:
    OmegaConf's merge error names no key then."""
    import typing  # noqa: PLC0415

    if not isinstance(value, dict):
        return None
    hints = typing.get_type_hints(schema)
    for name, given in value.items():
        kinds = typing.get_args(hints.get(name)) or (hints.get(name),)
        section = next((t for t in kinds if dataclasses.is_dataclass(t)), None)
        if section is None or given is None:
            continue
        if not isinstance(given, dict):
            return f"{prefix}{name}", given
        found = _value_for_section(section, given, f"{prefix}{name}.")
        if found is not None:
            return found
    return None


def _merge(base: DictConfig, other: Any, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        msg = (getattr(exc, "msg", None) or str(exc)).splitlines()[0]  # one line: the key is named already
        if key == "?":
            plain = OmegaConf.to_container(other, resolve=False) if isinstance(other, DictConfig) else other
            found = _value_for_section(CosmoConfig, plain)
            if found is not None:
                key, msg = found[0], f"expected a section (a mapping of keys), got {found[1]!r}"
        raise ConfigError(f"{source}: key '{key}': {msg}") from None


def _parse_overrides(overrides: list[str]) -> DictConfig:
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"command line: override '{item}' is not of the form key=value")
        try:  # one at a time, so that an unparsable value is named (YAML errors are not OmegaConf's)
            OmegaConf.from_dotlist([item])
        except Exception as exc:  # noqa: BLE001
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"command line: override '{item}': value is not valid YAML ({problem})") from None
    return OmegaConf.from_dotlist(list(overrides))


def _merge_recipe(cfg: DictConfig, path: Path, chain: tuple[Path, ...] = ()) -> DictConfig:
    """Merge a YAML recipe onto `cfg`; a top-level `base: OTHER.yaml` (relative to the recipe) is
    merged first, so a variant states only what it changes."""
    if not path.is_file():
        where = f" (the base of {chain[-1]})" if chain else ""
        raise ConfigError(f"config file {path} does not exist{where}")
    if path.resolve() in chain:
        raise ConfigError(f"{path}: `base` chain loops: {' -> '.join(map(str, (*chain, path.resolve())))}")
    try:
        recipe = OmegaConf.load(path)
    except Exception as exc:  # YAML syntax errors come from several libraries' types
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        detail = problem or " ".join(str(exc).split())
        raise ConfigError(f"{path}: not valid YAML{where}: {detail}") from None
    if not isinstance(recipe, DictConfig):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    if "base" in recipe:
        base = recipe.pop("base")
        if not isinstance(base, str):
            raise ConfigError(f"{path}: key 'base': expected the path of another recipe, got {base!r}")
        cfg = _merge_recipe(cfg, path.parent / base, (*chain, path.resolve()))
    return _merge(cfg, recipe, str(path))


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> CosmoConfig:
    """Defaults <- YAML recipe (after its `base`, if any) <- `key=value` overrides, then validation."""
    cfg = OmegaConf.structured(CosmoConfig)
    if path is not None:
        cfg = _merge_recipe(cfg, Path(path))
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
    _check(cfg.data.rl_per_task >= 0, "data.rl_per_task", "an integer >= 0", cfg.data.rl_per_task)
    _check(0 <= cfg.data.sft_over_refusal_refusals <= 1, "data.sft_over_refusal_refusals", "a share in [0, 1]",
           cfg.data.sft_over_refusal_refusals)
    d = cfg.data
    for name in ("augment_fraction", "augment_p_typed", "augment_p_split", "augment_p_list", "augment_p_roleplay",
                 "augment_p_wrap_image", "augment_max_noise"):
        _check(0 <= getattr(d, name) <= 1, f"data.{name}", "a number in [0, 1]", getattr(d, name))
    _check(d.augment_image_size >= 32, "data.augment_image_size", "an integer >= 32", d.augment_image_size)
    _check(0 <= d.augment_max_rotation <= 45, "data.augment_max_rotation", "degrees in [0, 45]",
           d.augment_max_rotation)
    from cosmo.data.schema import TASKS  # noqa: PLC0415

    for task, w in d.task_weights.items():
        _check(task in TASKS, f"data.task_weights.{task}", f"a task, one of {list(TASKS)}", task)
        _check(0 <= w < float("inf"), f"data.task_weights.{task}", "a finite weight >= 0", w)
    _check(not d.task_weights or sum(d.task_weights.values()) > 0, "data.task_weights",
           "at least one weight > 0 (or {} for plain epochs)", d.task_weights)
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
    _check(rl.mode in ("sync", "async"), "rl.mode", "sync or async", rl.mode)
    _check(rl.dynamic_sampling_max_rounds >= 1, "rl.dynamic_sampling_max_rounds", "an integer >= 1",
           rl.dynamic_sampling_max_rounds)
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
    _check(0 < r.cpu_memory_utilization <= 1, "rollout.cpu_memory_utilization", "a number in (0, 1]",
           r.cpu_memory_utilization)
    _check(r.cpu_kv_cache_gib is None or r.cpu_kv_cache_gib > 0, "rollout.cpu_kv_cache_gib", "null or a positive "
           "number of GiB", r.cpu_kv_cache_gib)
    _check(r.max_restarts >= 0, "rollout.max_restarts", "an integer >= 0", r.max_restarts)
    _check(r.timeout_s > 0, "rollout.timeout_s", "a positive number of seconds", r.timeout_s)
    _check(r.restart_timeout_s > 0, "rollout.restart_timeout_s", "a positive number of seconds", r.restart_timeout_s)
    _check(r.weight_transport in WEIGHT_TRANSPORTS, "rollout.weight_transport", f"one of {list(WEIGHT_TRANSPORTS)}",
           r.weight_transport)
    _validate_reward(cfg.reward)
    a = cfg.algorithm
    _check(a.name in ("cpgd", "grpo", "ppo"), "algorithm.name", "cpgd, grpo or ppo", a.name)
    _check(0 < a.clip_eps < 1, "algorithm.clip_eps", "a number in (0, 1)", a.clip_eps)
    _check(a.drift_coef >= 0, "algorithm.drift_coef", "a number >= 0", a.drift_coef)
    _check(a.drift_clip > 0, "algorithm.drift_clip", "a positive number", a.drift_clip)
    _check(a.kl_coef >= 0, "algorithm.kl_coef", "a number >= 0", a.kl_coef)
    _check(a.kl_coef == 0 or a.name != "cpgd", "algorithm.kl_coef", "0 with cpgd (its drift term, "
           "algorithm.drift_coef, plays that role; use grpo or ppo for a reference KL)", a.kl_coef)
    _check(a.is_cap >= 1, "algorithm.is_cap", "a number >= 1", a.is_cap)
    _check(a.group_size >= 2, "algorithm.group_size", "an integer >= 2", a.group_size)
    from cosmo.algorithms import AGGREGATIONS, CLIP_SCHEDULES, WEIGHTS  # noqa: PLC0415

    _check(a.advantage_weight in WEIGHTS, "algorithm.advantage_weight", f"one of {list(WEIGHTS)}", a.advantage_weight)
    _check(a.aggregation in AGGREGATIONS, "algorithm.aggregation", f"one of {list(AGGREGATIONS)}", a.aggregation)
    _check(a.clip_schedule in CLIP_SCHEDULES, "algorithm.clip_schedule", f"one of {list(CLIP_SCHEDULES)}",
           a.clip_schedule)
    _check(0 < a.clip_eps_min <= a.clip_eps, "algorithm.clip_eps_min", "a number in (0, algorithm.clip_eps]",
           a.clip_eps_min)
    _check(rl.epochs >= 1, "rl.epochs", "an integer >= 1", rl.epochs)
    rank_batch = rl.prompts_per_step * a.group_size // max(cfg.learner.num_ranks, 1)
    _check(rl.mini_batches >= 1 and rank_batch % rl.mini_batches == 0, "rl.mini_batches",
           f"a divisor of each rank's {rank_batch} trajectories per step", rl.mini_batches)
    ln = cfg.learner
    _check(ln.num_ranks >= 1, "learner.num_ranks", "an integer >= 1", ln.num_ranks)
    _check(ln.cpus_per_rank > 0, "learner.cpus_per_rank", "a positive number", ln.cpus_per_rank)
    _check(ln.zero_stage in (0, 1, 2, 3), "learner.zero_stage", "0, 1, 2 or 3", ln.zero_stage)
    _check(ln.backend in ("auto", "gloo", "nccl"), "learner.backend", "auto, gloo or nccl", ln.backend)
    _check(ln.grad_clip >= 0, "learner.grad_clip", "a number >= 0", ln.grad_clip)
    _check(0 <= ln.adam_beta1 < 1 and 0 <= ln.adam_beta2 < 1, "learner.adam_beta1/adam_beta2",
           "numbers in [0, 1)", (ln.adam_beta1, ln.adam_beta2))
    _check(ln.max_skipped_steps >= 1, "learner.max_skipped_steps", "an integer >= 1", ln.max_skipped_steps)
    _check(ln.timeout_s > 0, "learner.timeout_s", "a positive number of seconds", ln.timeout_s)
    _check(ln.startup_timeout_s > 0, "learner.startup_timeout_s", "a positive number of seconds",
           ln.startup_timeout_s)
    _check(ln.threads_per_rank >= 0, "learner.threads_per_rank", "an integer >= 0", ln.threads_per_rank)
    _check(ln.max_tokens_per_micro_batch >= 0, "learner.max_tokens_per_micro_batch", "an integer >= 0",
           ln.max_tokens_per_micro_batch)
    _check(ln.logprob_chunk_tokens >= 1, "learner.logprob_chunk_tokens", "an integer >= 1", ln.logprob_chunk_tokens)
    _check(cfg.cluster.num_cpus is None or cfg.cluster.num_cpus >= 1, "cluster.num_cpus", "null or >= 1",
           cfg.cluster.num_cpus)
    _check(cfg.eval.engine in ("vllm", "hf"), "eval.engine", "vllm or hf", cfg.eval.engine)
    ev, ck = cfg.eval.every_steps, cfg.checkpoint.every_steps
    _check(ev == 0 or (ev > 0 and ck > 0 and ev % ck == 0), "eval.every_steps",
           f"0, or a multiple of checkpoint.every_steps ({ck}) when that is > 0", ev)
    _check(cfg.logging.samples_every >= 0, "logging.samples_every", "an integer >= 0", cfg.logging.samples_every)
    _check(cfg.logging.samples_per_log >= 1, "logging.samples_per_log", "an integer >= 1", cfg.logging.samples_per_log)
    _check(cfg.logging.wandb_mode in ("offline", "online", "disabled"), "logging.wandb_mode",
           "offline, online or disabled", cfg.logging.wandb_mode)
    _check(cfg.logging.log_every >= 1, "logging.log_every", "an integer >= 1", cfg.logging.log_every)
    _check(cfg.logging.level in ("quiet", "info", "verbose"), "logging.level", "quiet, info or verbose",
           cfg.logging.level)
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
             "A recipe may start with `base: OTHER.yaml` (a path relative to it): the base is loaded first and "
             "the recipe states only what differs (see `configs/ablation-*.yaml`).",
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
