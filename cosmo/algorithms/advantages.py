"""Group-relative advantages: each response's reward against the other responses to the same prompt."""

from __future__ import annotations

from torch import Tensor

from cosmo.algorithms.names import WEIGHTS


def group_advantages(rewards: Tensor, weight: str = "std", eps: float = 1e-9) -> Tensor:
    """A_k = ω(x)·(R_k − mean_group R) for rewards shaped [groups, samples_per_group].

    ω: `std` → 1/(std_group + eps) (GRPO's normalisation, the CPGD default; unbiased std);
    `equal` → 1; `clip_filter_like` → min(3, B / (B − #groups with zero std)) for the whole batch,
    which scales the signal up when many groups carry none. Groups with equal rewards get A = 0.
    """
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(f"rewards must be [groups, samples>=2], got shape {tuple(rewards.shape)}")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if weight == "std":
        return centred / (rewards.std(dim=1, keepdim=True) + eps)
    if weight == "equal":
        return centred
    if weight == "clip_filter_like":
        groups = rewards.shape[0]
        flat = int((rewards.std(dim=1) == 0).sum())
        scale = 3.0 if flat == groups else min(3.0, groups / (groups - flat))
        return centred * scale
    raise ValueError(f"advantage weight must be one of {WEIGHTS}, got {weight!r}")
