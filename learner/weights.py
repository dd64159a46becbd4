"""The learner's side of a weight sync: the full policy, gathered and named for the rollout engines.

Packing, the digest and the name mapping live in `cosmo.weights` (shared with the engines).
"""

from __future__ import annotations

import torch

from cosmo.weights import checkpoint_name
from learner.checkpoint import gathered_parameters


def export_state_dict(module: torch.nn.Module, zero_stage: int, rank: int) -> dict[str, torch.Tensor] | None:
    """Collective under ZeRO-3: every rank calls it; rank 0 returns full CPU tensors, others None.

    Only ZeRO-3's gathered parameters are copied (they are freed when the gather ends); below it, parameters
    already on the CPU are returned as they are, to be packed at once and not kept past the next optimizer
    step (a copy of 0.5 GB per sync saved on SmolLM2; the transport makes its own)."""
    with gathered_parameters(module, zero_stage):
        if rank != 0:
            return None
        tensors: dict[str, torch.Tensor] = {}
        storages: set[int] = set()
        for name, p in module.named_parameters(remove_duplicate=False):
            t = p.detach().to("cpu", copy=zero_stage == 3).contiguous()
            if t.data_ptr() in storages:  # a tied weight (lm_head = embed_tokens): packed as its own tensor
                t = t.clone()
            storages.add(t.data_ptr())
            tensors[checkpoint_name(name)] = t
    return tensors
