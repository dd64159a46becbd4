"""Scored trajectories -> the learner's items (advantages attached) and the step's reward statistics."""

from __future__ import annotations

from collections import defaultdict

import torch

from cosmo.algorithms.advantages import group_advantages
from cosmo.trajectory import Scored


def prepare_rl_batch(
    scored: list[Scored], group_size: int, weight: str
) -> tuple[list[dict], dict[str, float | None]]:
    """Group-relative advantages per prompt; trajectories whose scoring failed are excluded.

    Trajectories arrive grouped: `group_size` consecutive responses per prompt. An excluded
    trajectory stays in the batch (the learner's batch shape is fixed) with `exclude=True`, which
    masks all its tokens out of the loss; for its group's normalisation it counts at the mean of
    the group's valid rewards, so it adds nothing to the centred rewards of the others.
    """
    if len(scored) % group_size:
        raise ValueError(f"{len(scored)} trajectories do not form groups of {group_size}")
    rewards = torch.zeros(len(scored) // group_size, group_size, dtype=torch.float64)
    for g in range(rewards.shape[0]):
        group = scored[g * group_size : (g + 1) * group_size]
        valid = [s.total for s in group if s.error is None]
        fill = sum(valid) / len(valid) if valid else 0.0
        rewards[g] = torch.tensor([s.total if s.error is None else fill for s in group], dtype=torch.float64)
    adv = group_advantages(rewards, weight).flatten().tolist()
    items = [
        {"sample_index": s.trajectory.sample_index, "response_ids": s.trajectory.response_ids,
         "logprobs": s.trajectory.logprobs, "advantage": a, "exclude": s.error is not None}
        for s, a in zip(scored, adv, strict=True)
    ]
    return items, reward_stats(scored, rewards)


def reward_stats(scored: list[Scored], rewards: torch.Tensor) -> dict[str, float | None]:
    """Mean reward overall, per objective and per task; response length; failures; flat groups."""
    ok = [s for s in scored if s.error is None]
    stats: dict[str, float] = {
        "reward/mean": sum(s.total for s in ok) / len(ok) if ok else None,
        "reward/failed": float(len(scored) - len(ok)),
        "reward/flat_group_frac": float((rewards.std(dim=1) == 0).float().mean()),
        "response/length_mean": sum(len(s.trajectory.response_ids) for s in scored) / len(scored),
        "response/truncated_frac": sum(s.trajectory.finish_reason == "length" for s in scored) / len(scored),
    }
    by_objective: dict[str, list[float]] = defaultdict(list)
    by_task: dict[str, list[float]] = defaultdict(list)
    for s in ok:
        for name, value in s.rewards.items():
            by_objective[name].append(value)
        by_task[s.task].append(s.total)
    stats.update({f"reward/{k}": sum(v) / len(v) for k, v in sorted(by_objective.items())})
    stats.update({f"reward_task/{k}": sum(v) / len(v) for k, v in sorted(by_task.items())})
    return stats
