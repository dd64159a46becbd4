"""Full policy weights for the rollout engines, named as in an HF checkpoint, packed as safetensors.

transformers 5.x keeps Qwen2.5-VL parameters in memory as `model.language_model.*` and
`model.visual.*` but saves (and vLLM loads) them as `model.*` and `visual.*`. The tied
`lm_head.weight` is sent too: vLLM's CPU backend repacks every weight it loads and would otherwise
keep a stale output head.
"""

from __future__ import annotations

import hashlib

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from learner.checkpoint import gathered_parameters

_RENAMES = (("model.language_model.", "model."), ("model.visual.", "visual."))


def checkpoint_name(name: str) -> str:
    """In-memory parameter name -> the name the checkpoint (and vLLM's loader) uses."""
    for old, new in _RENAMES:
        if name.startswith(old):
            return new + name[len(old) :]
    return name


def export_state_dict(module: torch.nn.Module, zero_stage: int, rank: int) -> dict[str, torch.Tensor] | None:
    """Collective under ZeRO-3: every rank calls it; rank 0 returns full CPU tensors, others None."""
    with gathered_parameters(module, zero_stage):
        if rank != 0:
            return None
        tensors = {
            checkpoint_name(name): p.detach().to("cpu", copy=True).contiguous()
            for name, p in module.named_parameters(remove_duplicate=False)
        }
    return tensors


def pack(tensors: dict[str, torch.Tensor]) -> bytes:
    """safetensors bytes: a dict of tensors survives Ray's object store and RPC boundaries intact."""
    return st_save(tensors)


def unpack(blob: bytes) -> dict[str, torch.Tensor]:
    return st_load(blob)


def digest(blob: bytes) -> str:
    """Content hash of packed weights: equal on the learner and on every rollout actor after a sync."""
    return hashlib.sha256(blob).hexdigest()[:16]
