"""From sampled trajectories to the learner's batch: rewards, dynamic sampling, advantages.

Each function is one stage of the RL step as the loop in `cosmo.driver.rl` calls it. The rollout and
reward pool are passed in (anything with the same methods works), so this module runs without Ray.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cosmo.algorithms.advantages import RefusalLedger
from cosmo.algorithms.batch import flat_groups, group_rewards, prepare_rl_batch, reward_stats
from cosmo.config import CosmoConfig
from cosmo.data import Sample
from cosmo.data.sampling import EpochSampler, MixtureSampler
from cosmo.trajectory import LearnerItem, Scored, Trajectory


class Rollout(Protocol):
    def generate(self, indices: list[int], n: int) -> list[Trajectory]: ...


class Rewards(Protocol):
    def score(self, trajectories: list[Trajectory]) -> list[Scored]: ...


@dataclass
class Rollouts:
    """One step's sampled trajectories and how long sampling them took (their throughput's denominator)."""

    trajectories: list[Trajectory]
    rollout_s: float  # submission -> last trajectory collected (overlaps the update in async mode)


@dataclass
class ScoredRollouts:
    """The trajectories the step trains on, and every trajectory sampled for it (with dynamic sampling
    the dropped flat groups too: the reward curve describes the policy, not the kept subset)."""

    kept: list[Scored]
    every: list[Scored]
    rollout_s: float  # sampling all of them took (with dynamic sampling, its rounds' generation too)
    stats: dict[str, float | None] = field(default_factory=dict)


@dataclass
class TrainBatch:
    """The learner's items with advantages attached, and the statistics of the batch's rewards."""

    items: list[LearnerItem]
    stats: dict[str, float | None]
    version: int  # oldest policy version among the trajectories
    samples: list[dict]  # one trajectory per group, for the sample log


def score(rewards: Rewards, rollouts: Rollouts) -> ScoredRollouts:
    """Every trajectory scored under its row's objectives (the reward worker pool)."""
    scored = rewards.score(rollouts.trajectories)
    return ScoredRollouts(scored, list(scored), rollouts.rollout_s)


def _split_flat(cfg: CosmoConfig, scored: list[Scored]) -> tuple[list[list[Scored]], list[list[Scored]]]:
    g = cfg.algorithm.group_size
    groups = [scored[i : i + g] for i in range(0, len(scored), g)]
    flat = flat_groups(group_rewards(scored, g, reward_cfg=cfg.reward))
    return [x for x, f in zip(groups, flat, strict=True) if not f], [x for x, f in zip(groups, flat, strict=True) if f]


def refill_flat_groups(cfg: CosmoConfig, batch: ScoredRollouts, sampler: EpochSampler | MixtureSampler,
                       rollout: Rollout, rewards: Rewards) -> ScoredRollouts:
    """Dynamic sampling: groups whose rewards are all equal (zero advantage, no signal) are replaced by
    groups of fresh prompts, sampled and scored in up to `rl.dynamic_sampling_max_rounds` rounds; a
    shortfall left after them is filled with flat groups (they keep the batch shape, add no gradient)."""
    prompts, g = cfg.rl.prompts_per_step, cfg.algorithm.group_size
    every = list(batch.every)
    keep, flat = _split_flat(cfg, batch.kept)
    rounds, gen_s = 0, 0.0
    while len(keep) < prompts and rounds < cfg.rl.dynamic_sampling_max_rounds:
        rounds += 1
        t0 = time.perf_counter()
        more = rollout.generate(sampler.next_batch(prompts - len(keep)), g)
        gen_s += time.perf_counter() - t0
        more_scored = rewards.score(more)
        every += more_scored
        k, f = _split_flat(cfg, more_scored)
        keep, flat = keep + k, flat + f
    shortfall = max(0, prompts - len(keep))
    chosen = keep + flat[:shortfall]
    stats = {"dynamic/refill_rounds": float(rounds), "dynamic/flat_groups_dropped": float(len(flat) - shortfall),
             "dynamic/shortfall_groups": float(shortfall)}
    return ScoredRollouts([s for group in chosen for s in group], every, batch.rollout_s + gen_s,
                          {**batch.stats, **stats})


def advantages(cfg: CosmoConfig, batch: ScoredRollouts, rows: Sequence[Sample],
               ledger: RefusalLedger | None = None) -> TrainBatch:
    """Group-relative advantages per prompt (cosmo.algorithms), and the step's reward statistics.
    `rows`: the training file's rows (`algorithm.refusal_balance` balances text and image rows apart);
    `ledger`: the stage's earlier pushes, for `algorithm.refusal_balance_window`."""
    g = cfg.algorithm.group_size
    items, kept_stats = prepare_rl_batch(batch.kept, g, cfg.algorithm.advantage_weight, reward_cfg=cfg.reward,
                                         refusal_balance=cfg.algorithm.refusal_balance, overlong=cfg.rl.overlong,
                                         strata=[bool(rows[s.trajectory.sample_index].images) for s in batch.kept]
                                         if cfg.algorithm.refusal_balance else None, ledger=ledger)
    if cfg.algorithm.kl_rows == "must_refuse":  # the learner weighs each sequence's reference KL by this
        for item, s in zip(items, batch.kept, strict=True):
            item.kl_weight = float(rows[s.trajectory.sample_index].should_refuse)
    stats = {**reward_stats(batch.every, group_rewards(batch.every, g)), **batch.stats,
             **{k: v for k, v in kept_stats.items() if k.startswith("advantage/")}}
    stats["rollout/trajectories"] = float(len(batch.every))
    stats["rollout/tokens_per_s"] = (sum(len(s.trajectory.response_ids) for s in batch.every)
                                     / max(batch.rollout_s, 1e-9))
    samples = [{"sample_index": s.trajectory.sample_index, "response": s.trajectory.text, "task": s.task,
                "total": s.total, "rewards": s.rewards, "error": s.error}
               for s in batch.kept[::g][: cfg.logging.samples_per_log]]
    return TrainBatch(items, stats, min(s.trajectory.version for s in batch.kept), samples)
