"""`cosmo plan`: will the recipe fit? Per-GPU memory of a learner rank and of a rollout engine, before launch.

Learner rank, per training stage of train.stages, each with its own config (the largest figure decides):
- model states: DeepSpeed's own ZeRO-2/ZeRO-3 estimators (GPU column, no offload) on the trainable
  parameters; ZeRO-0/1 and fp32 with the same byte accounting (below). Frozen weights (the vision tower
  with model.freeze_vision) are held in the compute dtype, sharded only by ZeRO-3; a KL reference model
  (algorithm.kl_coef > 0, RL only) likewise. ZeRO-1/2/3 also keep a gradient bucket of DeepSpeed's
  reduce_bucket_size (5e8 elements), which the estimators leave out.
- activations: what the installed transformers' Qwen2.5-VL decoder saves for its backward, counted
  tensor by tensor with a saved-tensor hook (tests/test_plan.py holds the formula to that count), in
  bytes per token and layer for a compute dtype of b bytes:
    each RMSNorm: its fp32 input (4h), the fp32 rsqrt (4), the normalised input in b and its output (2·b·h)
    attention: q and the output (2·b·heads·d), K and V (2·b·kv·d; expanded to every head, 2·b·heads·d,
      when the micro-batch is padded and sdpa gets a mask), the fp32 logsumexp (4·heads), and with
      padding the additive mask sdpa makes of the boolean one in every layer (b·T, T the padded length)
    MLP: gate, up, SiLU(gate) and their product (4·b·I)
  so 2·(4h + 4 + 2bh) + 2b·heads·d + 2b·kv·d + 4·heads + 4b·I unpadded; in bf16 on a padded batch about
  24h + 8I + 2T. Outside the layers: the final norm, cos and sin, the ids the embedding keeps. With
  learner.gradient_checkpointing each layer keeps only its input (b·h) and one layer is recomputed at a
  time. A micro-batch is padded when it has more than one row (or a token budget packs rows); its tokens
  are rows x data.max_length (the padded worst case). The frozen vision tower keeps no activations.
- logits: the backward keeps the fp32 log-softmax (4 B per position and vocabulary entry, measured);
  its incoming gradient and its result (4 + 4) are live with it when the backward starts; with the
  chunked log-prob path (learner.logprob_chunk_tokens, RL) only one chunk of positions is live.
- inputs held on the GPU: ids, attention mask, labels and mm_token_type_ids (int64 each) and fp32
  pixel_values, bounded by every position being an image token; learner/actor.py encodes every micro-batch
  of an optimizer step before its first forward (SFT: the rank's share of the step; RL: of the update).
- runtime allowance: CUDA context, NCCL and cuBLAS workspaces (a rule of thumb); then a margin for the
  caching allocator's fragmentation and what the formulas leave out.
The budget is what CUDA reports of the GPU (79.6 GiB of an 80 GB H100); above 90 % of it the report warns.

Rollout engine, per GPU: vLLM takes rollout.gpu_memory_utilization of what CUDA reports; the weights
(/ tensor parallel size) and an allowance for its activation peak and CUDA graphs come first, the KV
cache gets the rest: 2 (K, V) x layers x kv heads per GPU x head dim x dtype bytes per token. vLLM
refuses to start when that holds less than one rollout.max_model_len sequence.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass, field

from cosmo.config import CosmoConfig, stage_config
from cosmo.plan_shapes import ModelShape, model_shape

GIB = 2**30
CUDA_VISIBLE = 0.995
"""The share of a GPU's nominal memory CUDA reports as its total: 79.6 GiB of an 80 GB H100 (81,559 MiB),
about 140.4 GiB of a 141 GB H200."""
WARN_FRACTION = 0.90
MARGIN_FRACTION = 0.05
LEARNER_ALLOWANCE = 1 * GIB
ENGINE_ALLOWANCE = 2 * GIB
LOGIT_SAVED_BYTES = 4
LOGIT_BACKWARD_BYTES = 8
ZERO_BUCKET_ELEMENTS = 500_000_000
"""DeepSpeed's default reduce_bucket_size, which learner/engine.py leaves as it is."""
INPUT_ID_BYTES = 4 * 8
"""input_ids, attention_mask, labels and mm_token_type_ids per position, int64 each."""
PIXEL_BYTES = 4
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


@dataclass
class Part:
    label: str
    detail: str
    bytes: int


@dataclass
class Component:
    """One process kind's per-GPU figure: its parts, the budget it must fit in, and what to change if not
    (or if it fits with under a tenth of the budget to spare: `tight`)."""

    title: str
    parts: list[Part]
    budget: int
    fits: bool
    tight: bool = False
    notes: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(p.bytes for p in self.parts)


@dataclass(frozen=True)
class MicroBatch:
    """The largest micro-batch a stage runs on one rank, and the rows whose inputs are on the GPU with it."""

    tokens: int  # padded positions of the micro-batch
    width: int  # its padded sequence length
    padded: bool  # rows of different lengths, so the model gets an attention mask
    held_rows: int


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


def zero_bucket_bytes(stage: int, mixed: bool) -> int:
    """The gradient bucket ZeRO-1/2/3 allocate on the GPU (reduce_bucket_size elements): 16-bit under mixed
    precision, except ZeRO-1's fp32 accumulator; ZeRO-0 has none."""
    if stage == 0:
        return 0
    return ZERO_BUCKET_ELEMENTS * (2 if mixed and stage > 1 else 4)


def layer_activation_bytes(s: ModelShape, width: int, padded: bool, dtype_bytes: int) -> int:
    """Bytes one decoder layer keeps per token for its backward (see the module docstring); `width` is the
    padded sequence length, which only a padded micro-batch's mask depends on."""
    b, h, q = dtype_bytes, s.hidden, s.heads * s.head_dim
    norms = 2 * (4 * h + 4 + 2 * b * h)
    kv = 2 * b * (q if padded else s.kv_heads * s.head_dim)
    attention = 2 * b * q + kv + 4 * s.heads + (b * width if padded else 0)
    return norms + attention + 4 * b * s.intermediate


def outer_activation_bytes(s: ModelShape, dtype_bytes: int) -> int:
    """Bytes per token kept outside the decoder layers: the final norm (its output too, the LM head's input),
    the rotary cos and sin every layer shares, and the int64 ids the embedding keeps."""
    return 4 * s.hidden + 4 + 2 * dtype_bytes * s.hidden + 2 * dtype_bytes * s.head_dim + 8


def activation_bytes(s: ModelShape, mb: MicroBatch, checkpointing: bool, dtype_bytes: int) -> int:
    """A micro-batch's activations at the backward's start: every layer's, or with checkpointing every layer's
    input and one layer recomputed."""
    per_layer = layer_activation_bytes(s, mb.width, mb.padded, dtype_bytes)
    layers = s.layers * dtype_bytes * s.hidden + per_layer if checkpointing else s.layers * per_layer
    return mb.tokens * (layers + outer_activation_bytes(s, dtype_bytes))


def micro_batch(cfg: CosmoConfig, kind: str, stage_cfg: CosmoConfig) -> MicroBatch:
    """SFT: micro_batch_size rows, and every row of the step (each rank's share of global_batch_size) encoded
    before its first forward. RL: rl.micro_batch_size rows, or rows packed up to
    learner.max_tokens_per_micro_batch padded tokens (a longer row alone), and every row of an update (each
    rank's share / rl.mini_batches) encoded at once."""
    length = cfg.data.max_length
    if kind == "sft":
        rows = stage_cfg.sft.micro_batch_size
        return MicroBatch(rows * length, length, rows > 1, stage_cfg.sft.global_batch_size // cfg.learner.num_ranks)
    rl = stage_cfg.rl
    per_update = rl.prompts_per_step * stage_cfg.algorithm.group_size // cfg.learner.num_ranks // rl.mini_batches
    budget = cfg.learner.max_tokens_per_micro_batch
    if budget:
        return MicroBatch(min(max(budget, length), per_update * length), length, True, per_update)
    return MicroBatch(rl.micro_batch_size * length, length, rl.micro_batch_size > 1, per_update)


def kv_bytes_per_token(s: ModelShape, tp: int, dtype_bytes: int) -> int:
    """K and V of every layer for one token on one GPU; vLLM replicates KV heads when tp exceeds them."""
    return 2 * s.layers * max(1, s.kv_heads // tp) * s.head_dim * dtype_bytes


def _gib(n: float) -> str:
    return f"{n / GIB:.2f}"


def _count(n: int) -> str:
    """A parameter count readable at every size: 1.07 M, 8.29 B."""
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.2f} M"


def plan_learner(cfg: CosmoConfig, s: ModelShape, budget: int) -> Component:
    """The learner rank's parts for its largest stage; fits within `budget`, tight above WARN_FRACTION of it."""
    ln = cfg.learner
    dtype = learner_dtype(cfg)
    mixed, dbytes = dtype != "float32", DTYPE_BYTES[dtype]
    frozen = s.vision_params if cfg.model.freeze_vision else 0
    trainable = s.params - frozen
    states = model_states_bytes(trainable, frozen, s.largest_layer, ln.num_ranks, ln.zero_stage, mixed)
    bucket = zero_bucket_bytes(ln.zero_stage, mixed)
    per_input = INPUT_ID_BYTES + PIXEL_BYTES * s.image_token_values
    worst: list[Part] = []
    for stage in cfg.train.stages:
        kind, stage_cfg = stage_config(cfg, stage)
        mb = micro_batch(cfg, kind, stage_cfg)
        live = min(mb.tokens, ln.logprob_chunk_tokens) if ln.logprob_chunk_tokens and kind == "rl" else mb.tokens
        logit_bytes = LOGIT_SAVED_BYTES + LOGIT_BACKWARD_BYTES
        held = mb.held_rows * cfg.data.max_length
        parts = [
            Part(f"model states (ZeRO-{ln.zero_stage})",
                 f"{_count(trainable)} trainable over {ln.num_ranks} ranks, {'mixed ' + dtype if mixed else dtype}"
                 + (f"; {_count(frozen)} frozen" if frozen else ""), states),
        ]
        if bucket:
            parts.append(Part("ZeRO gradient bucket", f"reduce_bucket_size {ZERO_BUCKET_ELEMENTS:,} x "
                              f"{bucket // ZERO_BUCKET_ELEMENTS} B", bucket))
        parts += [
            Part(f"activations ({stage})", f"{mb.tokens:,} tokens {'padded' if mb.padded else 'unpadded'} "
                 f"({mb.width:,} wide) x {s.layers} layers, checkpointing "
                 f"{'on' if ln.gradient_checkpointing else 'off'}", activation_bytes(s, mb, ln.gradient_checkpointing,
                                                                                      dbytes)),
            Part(f"logits ({stage})", f"{live:,} tokens x vocab {s.vocab:,} x {logit_bytes} B",
                 live * s.vocab * logit_bytes),
            Part(f"inputs held ({stage})", f"{mb.held_rows} row(s) x {cfg.data.max_length:,} x {per_input:,} B "
                 f"(ids, masks, labels; pixels if all image)", held * per_input),
        ]
        if kind == "rl" and stage_cfg.algorithm.kl_coef > 0:
            ref = s.params * dbytes // (ln.num_ranks if ln.zero_stage == 3 else 1)
            parts.append(Part("KL reference model", f"{_count(s.params)} x {dbytes} B", ref))
        parts.append(Part("runtime allowance", "CUDA context, NCCL/cuBLAS workspaces", LEARNER_ALLOWANCE))
        subtotal = sum(p.bytes for p in parts)
        parts.append(Part("margin", f"{100 * MARGIN_FRACTION:.0f} % of the above: allocator fragmentation, the "
                          "unmodelled", int(MARGIN_FRACTION * subtotal)))
        if not worst or sum(p.bytes for p in parts) > sum(p.bytes for p in worst):
            worst, worst_stage, worst_kind = parts, stage, kind
    total = sum(p.bytes for p in worst)
    comp = Component(f"learner rank (1 GPU each, {ln.num_ranks} ranks; largest stage: {worst_stage})", worst, budget,
                     total <= budget, tight=WARN_FRACTION * budget < total <= budget)
    if not comp.fits or comp.tight:
        where = "" if worst_stage == worst_kind else f"train.stage_configs.{worst_stage}."
        comp.advice = [k for k, ok in (
            ("learner.zero_stage=3", ln.zero_stage < 3),
            ("learner.num_ranks (more ranks shard more)", ln.zero_stage > 0),
            ("learner.gradient_checkpointing=true", not ln.gradient_checkpointing),
            (f"{where}{worst_kind}.micro_batch_size", not (worst_kind == "rl" and ln.max_tokens_per_micro_batch)),
            ("learner.max_tokens_per_micro_batch", worst_kind == "rl"), ("data.max_length", True),
        ) if ok]
    return comp


def plan_engine(cfg: CosmoConfig, s: ModelShape, usable: int) -> Component:
    """One rollout engine: vLLM's share of what CUDA reports, weights and allowance first, the KV cache the rest."""
    r = cfg.rollout
    dbytes = 2  # bf16 on GPU (actors.rollout.open_engine)
    share = int(r.gpu_memory_utilization * usable)
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
                     f"rollout.gpu_memory_utilization {r.gpu_memory_utilization} x usable)", parts, share,
                     kv > 0 and tokens >= r.max_model_len)
    comp.notes.append(f"KV cache holds {seqs:,} sequences of rollout.max_model_len {r.max_model_len:,}; a step "
                      f"sends each engine {per_engine} sequences"
                      + (" (fewer fit at once: vLLM runs them in waves, slower)" if seqs < per_engine else ""))
    if not comp.fits:
        comp.advice = ["rollout.gpu_memory_utilization", "rollout.tensor_parallel_size", "rollout.max_model_len"]
    return comp


def format_plan(cfg: CosmoConfig, s: ModelShape, gpu: int, usable: int, comps: list[Component]) -> str:
    r = cfg.rollout
    gpus = cfg.learner.num_ranks + r.num_actors * r.tensor_parallel_size
    lines = [
        f"model  {s.name}: {_count(s.params)} params ({_count(s.vision_params)} vision), {s.layers} layers, "
        f"hidden {s.hidden}, {s.heads} heads / {s.kv_heads} KV heads x {s.head_dim}, FFN {s.intermediate}, "
        f"vocab {s.vocab} [{s.source}]",
        f"GPUs   {gpu / GIB:.1f} GiB each, {_gib(usable)} GiB usable (what CUDA reports); "
        f"{cfg.learner.num_ranks} learner + {r.num_actors} x {r.tensor_parallel_size} rollout = {gpus} GPUs",
    ]
    if cfg.device == "cpu":
        lines.append("note   the recipe runs on CPU (device=cpu); this is what it would need on GPUs")
    for c in comps:
        lines += ["", c.title, f"  {'part':34s} {'GiB':>8s}  detail"]
        lines += [f"  {p.label:34s} {_gib(p.bytes):>8s}  {p.detail}" for p in c.parts]
        lines.append(f"  {'total':34s} {_gib(c.total):>8s}  of {_gib(c.budget)} GiB "
                     f"({100 * c.total / c.budget:.0f} %)")
        lines += [f"  {n}" for n in c.notes]
        lines.append(f"  verdict: {'DOES NOT FIT' if not c.fits else 'fits, tightly' if c.tight else 'fits'}")
        if not c.fits:
            lines.append(f"  WARNING: does not fit; change {', '.join(c.advice)}")
        elif c.tight:
            lines.append(f"  WARNING: above {100 * WARN_FRACTION:.0f} % of the budget, little room for what the "
                         f"estimate misses; consider {', '.join(c.advice)}")
    return "\n".join(lines)


def plan(cfg: CosmoConfig, gpu_gib: float) -> tuple[str, bool]:
    """The report for a resolved recipe on GPUs of `gpu_gib` GiB (nominal; CUDA reports CUDA_VISIBLE of it),
    and whether every component fits."""
    shape = model_shape(cfg.model.path, cfg.model.build_preset)
    gpu = int(gpu_gib * GIB)
    usable = int(CUDA_VISIBLE * gpu)
    comps = [plan_learner(cfg, shape, usable)]
    rl_stages = [c for kind, c in (stage_config(cfg, s) for s in cfg.train.stages) if kind == "rl"]
    if rl_stages:  # the engines are the run's; the stage with the most sequences per step sizes the note
        comps.append(plan_engine(max(rl_stages, key=lambda c: c.rl.prompts_per_step * c.algorithm.group_size),
                                 shape, usable))
    return format_plan(cfg, shape, gpu, usable, comps), all(c.fits for c in comps)
