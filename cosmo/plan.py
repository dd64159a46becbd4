"""`cosmo plan`: will the recipe fit? Per-GPU memory of a learner rank and of a rollout engine, before launch.

Learner rank, per training stage of train.stages, each with its own config (the largest figure decides):
- model states: DeepSpeed's own ZeRO-2/ZeRO-3 estimators (GPU column, no offload) on the trainable
  parameters; ZeRO-0/1 and fp32 with the same byte accounting (below). Frozen weights (the vision tower
  with model.freeze_vision) are held in the compute dtype, sharded only by ZeRO-3; a KL reference model
  (algorithm.kl_coef > 0, RL only) likewise.
- activations: tokens x layers x bytes per token per layer. Per decoder layer and token the backward
  keeps the two RMSNorm inputs and outputs (4h), the rotated q and k and v (h + 2·kv·d), the attention
  output (h) and the MLP's gate, up, SiLU(gate) and product (4·I): 6h + 2·kv·d + 4·I elements. With
  learner.gradient_checkpointing each layer keeps only its input (h) and one layer is recomputed at a
  time: layers·h + (6h + 2·kv·d + 4·I). Tokens per micro-batch = micro_batch_size x data.max_length (or
  learner.max_tokens_per_micro_batch when set and smaller). The frozen vision tower keeps no activations.
- logits: tokens x vocab x 16 bytes: the forward's logits (2, bf16), their fp32 copy (4) and log-softmax
  (4) kept for the backward, whose two gradients (4 + 2) are live at the peak; with a chunked log-prob
  path only one chunk of tokens is live.
- runtime allowance: CUDA context, NCCL and cuBLAS workspaces, allocator slack (a rule of thumb).

Rollout engine, per GPU: vLLM takes rollout.gpu_memory_utilization of the GPU; the weights (/ tensor
parallel size) and an allowance for its activation peak and CUDA graphs come first, the KV cache gets the
rest: 2 (K, V) x layers x kv heads per GPU x head dim x dtype bytes per token. vLLM refuses to start when
that holds less than one rollout.max_model_len sequence.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass, field

from cosmo.config import CosmoConfig, stage_config
from cosmo.plan_shapes import ModelShape, model_shape

GIB = 2**30
LEARNER_ALLOWANCE = 1 * GIB
ENGINE_ALLOWANCE = 2 * GIB
LOGIT_BYTES = 16
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
# Learner keys another change introduces; read with defaults so the plan works before and after they exist.
CHECKPOINTING_KEY, MAX_TOKENS_KEY, LOGPROB_CHUNK_KEY = (
    "gradient_checkpointing", "max_tokens_per_micro_batch", "logprob_chunk_tokens")


@dataclass
class Part:
    label: str
    detail: str
    bytes: int


@dataclass
class Component:
    """One process kind's per-GPU figure: its parts, the budget it must fit in, and what to change if not."""

    title: str
    parts: list[Part]
    budget: int
    fits: bool
    notes: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(p.bytes for p in self.parts)


def learner_dtype(cfg: CosmoConfig) -> str:
    """The learner's compute dtype on GPU: model.dtype, with auto meaning bf16 there."""
    return "bfloat16" if cfg.model.dtype == "auto" else cfg.model.dtype


def model_states_bytes(trainable: int, frozen: int, largest_layer: int, ranks: int, stage: int, mixed: bool) -> int:
    """Weights, gradients and AdamW states per rank. Mixed precision (bf16/fp16) keeps 16-bit weights (2 bytes),
    16-bit gradients (2), fp32 gradients, master weights and two moments (4 + 4 + 8): DeepSpeed's accounting,
    whose estimators give stages 2 and 3; stage 1 shards only the fp32 part, stage 0 nothing. fp32 training:
    weights 4, gradients 4, moments 8."""
    if mixed:
        # deepspeed is heavy, so imported here; its import logs an accelerator probe to stdout, kept out of the report
        with contextlib.redirect_stdout(io.StringIO()):
            from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs  # noqa: PLC0415 - DeepSpeed loads torch
            from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs  # noqa: PLC0415 - DeepSpeed loads torch

        if stage == 3:
            gpu = estimate_zero3_model_states_mem_needs(
                total_params=trainable, largest_layer_params=largest_layer, num_gpus_per_node=ranks, num_nodes=1,
                cpu_offload=False, cpu_offload_params=False, zero_init=True)[1]
            return gpu + 2 * frozen // ranks
        if stage == 2:
            gpu = estimate_zero2_model_states_mem_needs(total_params=trainable, num_gpus_per_node=ranks, num_nodes=1,
                                                        cpu_offload=False)[1]
            return gpu + 2 * frozen
        sharded = 16 * trainable // ranks if stage == 1 else 16 * trainable
        return 4 * trainable + sharded + 2 * frozen
    if stage == 3:
        return 16 * trainable // ranks + 4 * largest_layer + 4 * frozen // ranks
    sharded = {0: (16, 0), 1: (8, 8), 2: (4, 12)}[stage]
    return sharded[0] * trainable + sharded[1] * trainable // ranks + 4 * frozen


def layer_activation_elems(s: ModelShape) -> int:
    """Elements one decoder layer keeps per token for its backward (see the module docstring)."""
    return 6 * s.hidden + 2 * s.kv_heads * s.head_dim + 4 * s.intermediate


def activation_bytes(s: ModelShape, tokens: int, checkpointing: bool, dtype_bytes: int) -> int:
    per_layer = layer_activation_elems(s)
    per_token = s.layers * s.hidden + per_layer if checkpointing else s.layers * per_layer
    return tokens * per_token * dtype_bytes


def kv_bytes_per_token(s: ModelShape, tp: int, dtype_bytes: int) -> int:
    """K and V of every layer for one token on one GPU; vLLM replicates KV heads when tp exceeds them."""
    return 2 * s.layers * max(1, s.kv_heads // tp) * s.head_dim * dtype_bytes


def _gib(n: float) -> str:
    return f"{n / GIB:.2f}"


def _count(n: int) -> str:
    """A parameter count readable at every size: 1.07 M, 8.29 B."""
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.2f} M"


def plan_learner(cfg: CosmoConfig, s: ModelShape, gpu: int) -> Component:
    ln = cfg.learner
    dtype = learner_dtype(cfg)
    mixed, dbytes = dtype != "float32", DTYPE_BYTES[dtype]
    frozen = s.vision_params if cfg.model.freeze_vision else 0
    trainable = s.params - frozen
    checkpointing = bool(getattr(ln, CHECKPOINTING_KEY, False))
    max_tokens = getattr(ln, MAX_TOKENS_KEY, None) or 0
    chunk = getattr(ln, LOGPROB_CHUNK_KEY, None) or 0
    states = model_states_bytes(trainable, frozen, s.largest_layer, ln.num_ranks, ln.zero_stage, mixed)
    worst: list[Part] = []
    for stage in cfg.train.stages:
        kind, stage_cfg = stage_config(cfg, stage)
        micro = stage_cfg.sft.micro_batch_size if kind == "sft" else stage_cfg.rl.micro_batch_size
        tokens = micro * cfg.data.max_length
        if max_tokens:
            tokens = min(tokens, max_tokens)
        live = min(tokens, chunk) if chunk and kind == "rl" else tokens
        parts = [
            Part(f"model states (ZeRO-{ln.zero_stage})",
                 f"{_count(trainable)} trainable over {ln.num_ranks} ranks, {'mixed ' + dtype if mixed else dtype}"
                 + (f"; {_count(frozen)} frozen" if frozen else ""), states),
            Part(f"activations ({stage})", f"{tokens:,} tokens x {s.layers} layers, checkpointing "
                 f"{'on' if checkpointing else 'off'}", activation_bytes(s, tokens, checkpointing, dbytes)),
            Part(f"logits ({stage})", f"{live:,} tokens x vocab {s.vocab:,} x {LOGIT_BYTES} B",
                 live * s.vocab * LOGIT_BYTES),
        ]
        if kind == "rl" and stage_cfg.algorithm.kl_coef > 0:
            ref = s.params * dbytes // (ln.num_ranks if ln.zero_stage == 3 else 1)
            parts.append(Part("KL reference model", f"{_count(s.params)} x {dbytes} B", ref))
        parts.append(Part("runtime allowance", "CUDA context, NCCL/cuBLAS workspaces", LEARNER_ALLOWANCE))
        if not worst or sum(p.bytes for p in parts) > sum(p.bytes for p in worst):
            worst, worst_stage, worst_kind = parts, stage, kind
    total = sum(p.bytes for p in worst)
    comp = Component(f"learner rank (1 GPU each, {ln.num_ranks} ranks; largest stage: {worst_stage})", worst, gpu,
                     total <= gpu)
    if not comp.fits:
        where = "" if worst_stage == worst_kind else f"train.stage_configs.{worst_stage}."
        micro_key = f"{where}{worst_kind}.micro_batch_size"
        comp.advice = [k for k, ok in (
            ("learner.zero_stage=3", ln.zero_stage < 3),
            ("learner.num_ranks (more ranks shard more)", ln.zero_stage > 0),
            (f"learner.{CHECKPOINTING_KEY}=true", hasattr(ln, CHECKPOINTING_KEY) and not checkpointing),
            (micro_key, True), (f"learner.{MAX_TOKENS_KEY}", hasattr(ln, MAX_TOKENS_KEY)), ("data.max_length", True),
        ) if ok]
    return comp


def plan_engine(cfg: CosmoConfig, s: ModelShape, gpu: int) -> Component:
    r = cfg.rollout
    dbytes = 2  # bf16 on GPU (actors.rollout.open_engine)
    share = int(r.gpu_memory_utilization * gpu)
    weights = s.params * dbytes // r.tensor_parallel_size
    kv = share - weights - ENGINE_ALLOWANCE
    per_token = kv_bytes_per_token(s, r.tensor_parallel_size, dbytes)
    tokens = max(kv, 0) // per_token
    seqs = tokens // r.max_model_len
    per_engine = math.ceil(cfg.rl.prompts_per_step * cfg.algorithm.group_size / r.num_actors)
    parts = [
        Part("weights", f"{_count(s.params)} x {dbytes} B / tensor_parallel_size {r.tensor_parallel_size}",
             weights),
        Part("runtime allowance", "CUDA context and graphs, activation peak vLLM profiles", ENGINE_ALLOWANCE),
        Part("KV cache (the rest of its share)", f"{tokens:,} tokens x {per_token / 1024:.1f} KiB", max(kv, 0)),
    ]
    comp = Component(f"rollout engine ({r.num_actors} engines, {r.tensor_parallel_size} GPU(s) each; budget = "
                     f"rollout.gpu_memory_utilization {r.gpu_memory_utilization} x GPU)", parts, share,
                     kv > 0 and tokens >= r.max_model_len)
    comp.notes.append(f"KV cache holds {seqs:,} sequences of rollout.max_model_len {r.max_model_len:,}; a step "
                      f"sends each engine {per_engine} sequences"
                      + (" (fewer fit at once: vLLM runs them in waves, slower)" if seqs < per_engine else ""))
    if not comp.fits:
        comp.advice = ["rollout.gpu_memory_utilization", "rollout.tensor_parallel_size", "rollout.max_model_len"]
    return comp


def format_plan(cfg: CosmoConfig, s: ModelShape, gpu: int, comps: list[Component]) -> str:
    r = cfg.rollout
    gpus = cfg.learner.num_ranks + r.num_actors * r.tensor_parallel_size
    lines = [
        f"model  {s.name}: {_count(s.params)} params ({_count(s.vision_params)} vision), {s.layers} layers, "
        f"hidden {s.hidden}, {s.heads} heads / {s.kv_heads} KV heads x {s.head_dim}, FFN {s.intermediate}, "
        f"vocab {s.vocab} [{s.source}]",
        f"GPUs   {gpu / GIB:.1f} GiB each; {cfg.learner.num_ranks} learner + {r.num_actors} x "
        f"{r.tensor_parallel_size} rollout = {gpus} GPUs",
    ]
    if cfg.device == "cpu":
        lines.append("note   the recipe runs on CPU (device=cpu); this is what it would need on GPUs")
    for c in comps:
        lines += ["", c.title, f"  {'part':34s} {'GiB':>8s}  detail"]
        lines += [f"  {p.label:34s} {_gib(p.bytes):>8s}  {p.detail}" for p in c.parts]
        lines.append(f"  {'total':34s} {_gib(c.total):>8s}  of {_gib(c.budget)} GiB "
                     f"({100 * c.total / c.budget:.0f} %)")
        lines += [f"  {n}" for n in c.notes]
        lines.append(f"  verdict: {'fits' if c.fits else 'DOES NOT FIT'}")
        if not c.fits:
            lines.append(f"  WARNING: does not fit; change {', '.join(c.advice)}")
    return "\n".join(lines)


def plan(cfg: CosmoConfig, gpu_gib: float) -> tuple[str, bool]:
    """The report for a resolved recipe on GPUs of `gpu_gib` GiB, and whether every component fits."""
    shape = model_shape(cfg.model.path, cfg.model.build_preset)
    gpu = int(gpu_gib * GIB)
    comps = [plan_learner(cfg, shape, gpu)]
    rl_stages = [c for kind, c in (stage_config(cfg, s) for s in cfg.train.stages) if kind == "rl"]
    if rl_stages:  # the engines are the run's; the stage with the most sequences per step sizes the note
        comps.append(plan_engine(max(rl_stages, key=lambda c: c.rl.prompts_per_step * c.algorithm.group_size),
                                 shape, gpu))
    return format_plan(cfg, shape, gpu, comps), all(c.fits for c in comps)
