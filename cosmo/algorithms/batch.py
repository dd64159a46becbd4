"""Scored trajectories -> the learner's items (advantages attached) and the step's reward statistics."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from cosmo.algorithms.advantages import RefusalLedger, group_advantages, refusal_balanced
from cosmo.rules.refusal import is_refusal
from cosmo.rules.registry import task_weights
from cosmo.trajectory import LearnerItem, Scored

if TYPE_CHECKING:
    from cosmo.config import RewardConfig


def excluded(scored: Scored, overlong: str = "keep") -> bool:
    """Out of the loss: a trajectory whose scoring failed, or (`rl.overlong: exclude`, DAPO's overlong filtering)
    one cut by rollout.max_new_tokens, whose reward judged an unfinished answer: penalising it teaches brevity,
    not correctness."""
    return scored.error is not None or (overlong == "exclude" and scored.trajectory.finish_reason == "length")


def prepare_rl_batch(
    scored: list[Scored], group_size: int, weight: str, *, reward_cfg: RewardConfig | None = None,
    refusal_balance: bool = False, strata: Sequence[Hashable] | None = None, overlong: str = "keep",
    ledger: RefusalLedger | None = None,
) -> tuple[list[LearnerItem], dict[str, float | None]]:
    """Group-relative advantages per prompt; trajectories whose scoring failed (and, with `overlong="exclude"`,
    those cut at the token limit) are excluded.

    Trajectories arrive grouped: `group_size` consecutive responses per prompt. An excluded
    trajectory stays in the batch (the learner's batch shape is fixed) with `exclude=True`, which
    masks all its tokens out of the loss; for its group's normalisation it counts at the mean of
    the group's valid rewards, so it adds nothing to the centred rewards of the others.
    With `reward_cfg.normalize == "decoupled"` the advantages start from `decoupled_group_rewards`
    instead of the totals; the returned statistics always describe the totals. With `refusal_balance`
    the advantages are then `refusal_balanced` (refusals by `is_refusal`; `strata`: one key per
    trajectory, the same within a group; `ledger`: the earlier batches' pushes it weighs this batch's
    against, see `RefusalLedger`), its pushes in the statistics.
    """
    out = [excluded(s, overlong) for s in scored]
    rewards = group_rewards(scored, group_size, reward_cfg=reward_cfg, overlong=overlong)
    adv = group_advantages(rewards, weight)
    balance: dict[str, float] = {}
    if refusal_balance:
        refused = torch.tensor([is_refusal(s.trajectory.text) for s in scored]).view_as(adv)
        adv, balance = refusal_balanced(adv, refused, None if strata is None else list(strata)[::group_size],
                                         ledger)
    adv = adv.flatten().tolist()
    items = [LearnerItem(s.trajectory.sample_index, s.trajectory.response_ids, s.trajectory.logprobs, a, exclude=x)
             for s, a, x in zip(scored, adv, out, strict=True)]
    totals = rewards if reward_cfg is None or reward_cfg.normalize == "none" else group_rewards(scored, group_size)
    return items, {**reward_stats(scored, totals), **balance}


def group_rewards(scored: list[Scored], group_size: int, *, reward_cfg: RewardConfig | None = None,
                  overlong: str = "keep") -> torch.Tensor:
    """Rewards as [groups, group_size]; a trajectory left out of the loss (`excluded`: failed, or cut with
    `overlong="exclude"`) counts at its group's mean of valid ones.

    The totals, or with `reward_cfg.normalize == "decoupled"` the decoupled group rewards."""
    if len(scored) % group_size:
        raise ValueError(f"{len(scored)} trajectories do not form groups of {group_size}")
    ok = [not excluded(s, overlong) for s in scored]
    if reward_cfg is not None and reward_cfg.normalize == "decoupled":
        weights = [task_weights(s.task, reward_cfg.weights, reward_cfg.format_weight,
                                reward_cfg.visual_focus_weight) if valid else {}
                   for s, valid in zip(scored, ok, strict=True)]
        return decoupled_group_rewards([s.rewards for s in scored], weights, group_size, valid=ok,
                                       gated=[s.rewards.get("gated", 0.0) == 1.0 for s in scored])
    rewards = torch.zeros(len(scored) // group_size, group_size, dtype=torch.float64)
    for g in range(rewards.shape[0]):
        group = range(g * group_size, (g + 1) * group_size)
        valid = [scored[i].total for i in group if ok[i]]
        fill = sum(valid) / len(valid) if valid else 0.0
        rewards[g] = torch.tensor([scored[i].total if ok[i] else fill for i in group], dtype=torch.float64)
    return rewards


def decoupled_group_rewards(
    scores: Sequence[Mapping[str, float]], weights: Sequence[Mapping[str, float]], group_size: int, *,
    valid: Sequence[bool] | None = None, gated: Sequence[bool] | None = None, eps: float = 1e-9,
) -> torch.Tensor:
    """Decoupled normalisation, as [groups, group_size]: within each prompt group, every weighted objective
    is z-scored over the group's valid responses, z = (x − mean) / (std + eps) (unbiased std; 0 when the
    group agrees or has one valid response), then the response's value is Σ_o weight_o · z_o. An
    objective missing from a response (not applicable to the row) adds nothing. A gated response (unsafe
    compliance) takes its group's lowest value, so it never ranks above another response; an invalid
    (failed) one counts at the group's mean, like `group_rewards`. An objective with a small spread
    then moves the advantage as much as one with a large spread: none drowns the others.
    """
    n = len(scores)
    if n % group_size:
        raise ValueError(f"{n} trajectories do not form groups of {group_size}")
    valid = [True] * n if valid is None else list(valid)
    gated = [False] * n if gated is None else list(gated)
    out = torch.zeros(n // group_size, group_size, dtype=torch.float64)
    for g in range(out.shape[0]):
        idx = [g * group_size + k for k in range(group_size)]
        ok = [i for i in idx if valid[i]]
        values = dict.fromkeys(ok, 0.0)
        names = sorted({o for i in ok for o, w in weights[i].items() if w != 0.0})
        for o in names:
            have = [i for i in ok if o in scores[i]]
            if not have:
                continue
            xs = [float(scores[i][o]) for i in have]
            mean = sum(xs) / len(xs)
            std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
            for i, x in zip(have, xs, strict=True):
                values[i] += weights[i].get(o, 0.0) * (x - mean) / (std + eps)
        if ok and any(gated[i] for i in ok):
            low = min(values.values())
            values.update({i: low for i in ok if gated[i]})
        fill = sum(values.values()) / len(values) if values else 0.0
        out[g] = torch.tensor([values.get(i, fill) for i in idx], dtype=torch.float64)
    return out


def flat_groups(rewards: torch.Tensor) -> list[bool]:
    """Groups whose rewards are all equal: their advantages are 0, so they carry no learning signal."""
    return (rewards.max(dim=1).values == rewards.min(dim=1).values).tolist()


def reward_stats(scored: list[Scored], rewards: torch.Tensor) -> dict[str, float | None]:
    """Mean reward overall, per objective and per task; response length; failures; flat groups."""
    ok = [s for s in scored if s.error is None]
    stats: dict[str, float] = {
        "reward/mean": sum(s.total for s in ok) / len(ok) if ok else None,
        "reward/failed": float(len(scored) - len(ok)),
        "reward/flat_group_frac": sum(flat_groups(rewards)) / rewards.shape[0],
        "response/length_mean": sum(len(s.trajectory.response_ids) for s in scored) / len(scored),
        "response/truncated_frac": sum(s.trajectory.finish_reason == "length" for s in scored) / len(scored),
    }
    by_objective: dict[str, list[float]] = defaultdict(list)
    by_task: dict[str, list[float]] = defaultdict(list)
    by_task_objective: dict[str, list[float]] = defaultdict(list)
    for s in ok:
        for name, value in s.rewards.items():
            by_objective[name].append(value)
            by_task_objective[f"{s.task}/{name}"].append(value)
        by_task[s.task].append(s.total)
    stats.update({f"reward/{k}": sum(v) / len(v) for k, v in sorted(by_objective.items())})
    stats.update({f"reward_task/{k}": sum(v) / len(v) for k, v in sorted(by_task.items())})
    stats.update({f"reward/{k}": sum(v) / len(v) for k, v in sorted(by_task_objective.items())})
    return stats
