"""The learner's side of a weight sync: the full policy, gathered and named for the rollout engines.

Packing, the digest and the name mapping live in `cosmo.weights` (shared with the engines).
"""

from __future__ import annotations

import torch

from cosmo.weights import checkpoint_name
from learner.checkpoint import gathered_parameters


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
