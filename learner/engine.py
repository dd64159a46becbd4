"""DeepSpeed engine construction for one learner rank: process group, ZeRO config, optimizer, schedule."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from cosmo.config import LearnerConfig


@dataclass(frozen=True)
class OptimSpec:
    """What a stage asks of the optimizer; the learner section supplies the rest."""

    lr: float
    total_steps: int
    warmup_steps: int
    min_lr_ratio: float
    micro_batch_size: int
    grad_accum: int
    mini_batches: int = 1  # RL: optimizer steps per pass over a step's batch (rl.mini_batches)
    epochs: int = 1  # RL: passes over a step's batch (rl.epochs)

    @property
    def updates_per_step(self) -> int:
        """Optimizer steps per stage step; the LR schedule counts optimizer steps, so `total_steps` and
        `warmup_steps` (in stage steps) are multiplied by it."""
        return self.mini_batches * self.epochs


def resolve_backend(cfg: LearnerConfig, device: torch.device) -> str:
    """gloo on CPU (no oneCCL needed), NCCL on CUDA, unless the config names one."""
    if cfg.backend != "auto":
        return cfg.backend
    return "nccl" if device.type == "cuda" else "gloo"


def init_process_group(rank: int, world_size: int, rendezvous: str, backend: str) -> None:
    """Join the learner's torch.distributed group at `rendezvous` (a torch init_method URL).

    `file://...` (every rank on one node) opens no TCP store and keeps gloo's sockets on loopback,
    so a local run listens on nothing beyond 127.0.0.1; `tcp://host:port` (ranks on several nodes)
    has rank 0 host the store, which torch binds on all interfaces (the other nodes connect to it).
    """
    import deepspeed  # noqa: PLC0415 - heavy; only learner processes import it

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK="0")
    if rendezvous.startswith("file://") and backend == "gloo":
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    # On CPU DeepSpeed JIT-loads its shared-memory all-reduce op (used only by its inference
    # all-reduce) behind torch's file lock in ~/.cache/torch_extensions; a rank killed while holding
    # that lock makes every later learner on the node wait on it forever. Training collectives go
    # through torch.distributed, so the op is switched off.
    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False, init_method=rendezvous, rank=rank,
                               world_size=world_size)


def deepspeed_config(cfg: LearnerConfig, spec: OptimSpec, world_size: int, bf16: bool) -> dict:
    """The DeepSpeed JSON config for one stage; fp32 on CPU (bf16 is ~17x slower there)."""
    zero: dict = {"stage": cfg.zero_stage}
    if cfg.zero_stage == 3:
        zero.update(stage3_gather_16bit_weights_on_model_save=False)
    return {
        "train_micro_batch_size_per_gpu": spec.micro_batch_size,
        "gradient_accumulation_steps": spec.grad_accum,
        "train_batch_size": spec.micro_batch_size * spec.grad_accum * world_size,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,
        # a non-finite gradient norm skips the optimizer and scheduler step (fp32 always does)
        "bf16": {"enabled": bf16, "check_grad_overflow": True} if bf16 else {"enabled": False},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def warmup_cosine(spec: OptimSpec):
    """LR multiplier per optimizer step: linear warmup, then cosine decay to `min_lr_ratio` at the last step."""
    total, warmup = spec.total_steps * spec.updates_per_step, spec.warmup_steps * spec.updates_per_step

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        span = max(1, total - warmup)
        progress = min(1.0, (step - warmup) / span)
        return spec.min_lr_ratio + (1 - spec.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def build_engine(model: torch.nn.Module, cfg: LearnerConfig, spec: OptimSpec, world_size: int, bf16: bool):
    """Wrap `model` in a DeepSpeed engine with AdamW and the warmup-cosine schedule."""
    import deepspeed  # noqa: PLC0415 - heavy; only learner processes

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=spec.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(spec))
    engine, *_ = deepspeed.initialize(
        model=model,
        optimizer=optimizer,
        lr_scheduler=scheduler,
        config=deepspeed_config(cfg, spec, world_size, bf16),
    )
    return engine


def build_frozen(model: torch.nn.Module, cfg: LearnerConfig, spec: OptimSpec, world_size: int, bf16: bool,
                 device: torch.device) -> torch.nn.Module:
    """A frozen copy of a policy (the KL reference): ZeRO-3 keeps it partitioned like the policy
    (a DeepSpeed engine without optimizer); other stages hold it whole on the rank's device."""
    model.requires_grad_(False)
    model.eval()
    if cfg.zero_stage == 3:
        import deepspeed  # noqa: PLC0415 - heavy; only learner processes

        config = deepspeed_config(cfg, spec, world_size, bf16)
        config.pop("gradient_clipping")
        engine, *_ = deepspeed.initialize(model=model, config=config)
        engine.eval()
        return engine
    return model.to(device, dtype=torch.bfloat16 if bf16 else torch.float32)
