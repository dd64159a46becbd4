"""Group-relative advantages: each response's reward against the other responses to the same prompt."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
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


def refusal_balanced(adv: Tensor, refused: Tensor, strata: Sequence[Hashable] | None = None
                     ) -> tuple[Tensor, dict[str, float]]:
    """Advantages [groups, samples] rescaled so that the batch pushes as hard toward answering as toward refusing.

    A group's push toward refusing is Σ_k A_k·refused_k: positive when it rewards its refusals over its
    answers, negative when the reverse, zero when all its responses refuse or all answer. Within each
    stratum (`strata`, one key per group; the driver passes the row's modality), the side (the groups
    pushing toward refusing, or those pushing toward answering) with the larger total push is scaled down
    to the other's. Each group stays centred and keeps its order of preference. Why: a small model that
    cannot tell a new harmful request from a benign one moves its overall readiness to refuse with
    whichever side pushes harder, for every request, and image rows pushing one way do not hold text rows
    (docs/results.md); balanced, a step changes which requests are refused, not how often the model refuses
    what it has not learned. `refused`: bool, shaped as `adv`.
    """
    push = (adv * refused.to(adv.dtype)).sum(dim=1)
    keys = [0] * len(push) if strata is None else list(strata)
    if len(keys) != len(push):
        raise ValueError(f"{len(keys)} strata for {len(push)} groups")
    scale = torch.ones_like(push)
    totals = {"advantage/push_refusing": 0.0, "advantage/push_answering": 0.0}
    for key in dict.fromkeys(keys):
        mine = torch.tensor([k == key for k in keys])
        up, down = mine & (push > 0), mine & (push < 0)
        toward_refusing, toward_answering = float(push[up].sum()), float(-push[down].sum())
        weaker = min(toward_refusing, toward_answering)
        if toward_refusing > weaker:
            scale[up] = weaker / toward_refusing
        if toward_answering > weaker:
            scale[down] = weaker / toward_answering
        totals["advantage/push_refusing"] += toward_refusing
        totals["advantage/push_answering"] += toward_answering
    return adv * scale[:, None], totals
