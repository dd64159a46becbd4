"""The RL stage: rollouts -> rewards -> advantages -> learner update -> weight broadcast, every step.

`rl.mode=sync` samples each step with the newest weights (exact, on-policy). `rl.mode=async`
submits step k+1's rollouts before the learner trains on step k, so generation and training
overlap; step k+1 is then sampled by the weights of update k-1 (a lag of exactly one version,
corrected in the loss by truncated importance weights, see `cosmo.algorithms.importance_weights`).
Both modes take the same number of updates on the same prompt order.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from actors.group import PendingRollout, RolloutGroup
from cosmo.algorithms.batch import flat_groups, group_rewards, prepare_rl_batch, reward_stats
from cosmo.config import CosmoConfig
from cosmo.evaluation import evaluate_once
from cosmo.steps import EpochSampler, MixtureSampler, ResumePoint, make_sampler, save_if_due
from cosmo.tracking import Progress, RunTracker
from cosmo.trajectory import Scored
from rewards.pool import RewardPool

log = logging.getLogger("cosmo")


@dataclass
class StepBatch:
    """One step's training items and what it took to make them."""

    items: list[dict]
    stats: dict[str, float | None]
    version: int  # oldest policy version among the trajectories
    samples: list[dict]  # one trajectory per group, for the sample log: sample_index, response, task, rewards
    rollout_s: float  # submission -> last trajectory collected (overlaps training in async mode)
    wait_s: float  # the part of it the driver spent blocked, waiting for the rollouts
    reward_s: float


class BatchMaker:
    """Samples prompts, generates and scores their groups; with `rl.dynamic_sampling`, groups whose
    rewards are all equal (zero advantage, no signal) are replaced by groups of fresh prompts."""

    def __init__(self, cfg: CosmoConfig, sampler: EpochSampler | MixtureSampler, rollout: RolloutGroup,
                 rewards: RewardPool) -> None:
        self.cfg, self.sampler, self.rollout, self.rewards = cfg, sampler, rollout, rewards
        self.prompts = cfg.rl.prompts_per_step
        self.group_size = cfg.algorithm.group_size

    def submit(self) -> PendingRollout:
        return self.rollout.submit(self.sampler.next_batch(self.prompts), self.group_size)

    def complete(self, pending: PendingRollout) -> StepBatch:
        waited = time.perf_counter()
        trajectories = self.rollout.collect(pending)
        collected = time.perf_counter()
        scored = self.rewards.score(trajectories)
        reward_s = time.perf_counter() - collected
        rollout_s, wait_s = collected - pending.submitted, collected - waited
        extra: dict[str, float | None] = {}
        every = scored
        if self.cfg.rl.dynamic_sampling:
            scored, every, extra, timing = self._keep_signal(scored)
            rollout_s, wait_s, reward_s = rollout_s + timing[0], wait_s + timing[0], reward_s + timing[1]
        items, _ = prepare_rl_batch(scored, self.group_size, self.cfg.algorithm.advantage_weight,
                                    reward_cfg=self.cfg.reward)
        # reward statistics describe every sampled trajectory (the policy), not only the kept ones
        stats = {**reward_stats(every, group_rewards(every, self.group_size)), **extra}
        stats["rollout/trajectories"] = float(len(every))
        stats["rollout/tokens_per_s"] = sum(len(s.trajectory.response_ids) for s in every) / max(rollout_s, 1e-9)
        version = min(s.trajectory.version for s in scored)
        samples = [{"sample_index": s.trajectory.sample_index, "response": s.trajectory.text, "task": s.task,
                    "total": s.total, "rewards": s.rewards, "error": s.error}
                   for s in scored[:: self.group_size][: self.cfg.logging.samples_per_log]]
        return StepBatch(items, stats, version, samples, rollout_s, wait_s, reward_s)

    def _groups(self, scored: list[Scored]) -> tuple[list[list[Scored]], list[list[Scored]]]:
        g = self.group_size
        groups = [scored[i : i + g] for i in range(0, len(scored), g)]
        flat = flat_groups(group_rewards(scored, g, reward_cfg=self.cfg.reward))
        return [x for x, f in zip(groups, flat, strict=True) if not f], [x for x, f in zip(groups, flat, strict=True) if f]

    def _keep_signal(self, scored: list[Scored]) -> tuple[list[Scored], list[Scored], dict, tuple[float, float]]:
        every = list(scored)
        keep, flat = self._groups(scored)
        rounds, gen_s, score_s = 0, 0.0, 0.0
        while len(keep) < self.prompts and rounds < self.cfg.rl.dynamic_sampling_max_rounds:
            rounds += 1
            t0 = time.perf_counter()
            more = self.rollout.generate(self.sampler.next_batch(self.prompts - len(keep)), self.group_size)
            t1 = time.perf_counter()
            more_scored = self.rewards.score(more)
            gen_s, score_s = gen_s + t1 - t0, score_s + time.perf_counter() - t1
            every += more_scored
            k, f = self._groups(more_scored)
            keep, flat = keep + k, flat + f
        shortfall = max(0, self.prompts - len(keep))
        chosen = keep + flat[:shortfall]  # flat groups keep the learner's batch shape; they add no gradient
        stats = {"dynamic/refill_rounds": float(rounds), "dynamic/flat_groups_dropped": float(len(flat) - shortfall),
                 "dynamic/shortfall_groups": float(shortfall)}
        return [s for group in chosen for s in group], every, stats, (gen_s, score_s)


def run_rl(cfg: CosmoConfig, tracker: RunTracker, model_path: str, train_file: str,
           resume: ResumePoint | None = None, eval_file: str | None = None) -> str:
    """The actor-learner loop; returns the final checkpoint's path.

    `model_path` is the stage's start model (and the KL reference). With `resume` the learner and
    the engines start from that checkpoint at its policy version, the data order continues, and in
    async mode the batch that was already sampled for the next step is trained on as it was.
    With `eval_file` and `eval.every_steps`, the checkpoints in between are evaluated too.
    """
    from cosmo.data import load_jsonl  # noqa: PLC0415
    from learner.checkpoint import TRAIN_STATE  # noqa: PLC0415
    from learner.engine import OptimSpec  # noqa: PLC0415
    from learner.group import LearnerGroup  # noqa: PLC0415

    rl, a, n_ranks = cfg.rl, cfg.algorithm, cfg.learner.num_ranks
    batch_size = rl.prompts_per_step * a.group_size
    spec = OptimSpec(lr=rl.lr, total_steps=rl.steps, warmup_steps=rl.warmup_steps, min_lr_ratio=rl.min_lr_ratio,
                     micro_batch_size=rl.micro_batch_size, grad_accum=batch_size // (rl.micro_batch_size * n_ranks))
    rows = load_jsonl(train_file)  # the data order, and prompts and images for the sample log
    sampler = make_sampler(cfg, rows, cfg.seed + 1)
    first, start_model = 1, model_path
    if resume is not None:
        sampler.load_state_dict(resume.state["sampler"])
        first, start_model = resume.step + 1, str(resume.path)
    started = time.perf_counter()
    learner = LearnerGroup(cfg)
    rollout = rewards = None
    checkpoints = Path(tracker.dir) / "checkpoints" / "rl"
    path = str(resume.path) if resume else ""
    try:
        learner.setup(start_model, train_file, spec, reference=model_path if a.kl_coef > 0 else None,
                      train_state=str(resume.path / TRAIN_STATE) if resume else None)
        rollout = RolloutGroup(cfg, start_model, train_file, version=resume.state["policy_version"] if resume else 0)
        rewards = RewardPool(cfg, train_file)
        log.info("[rl] %d learner ranks, %d vLLM rollout actors, %d reward workers ready in %.1f s "
                 "(%s, %s mode, %d prompts x %d samples per step%s)", n_ranks, cfg.rollout.num_actors,
                 cfg.reward.num_workers, time.perf_counter() - started, a.name, rl.mode, rl.prompts_per_step,
                 a.group_size, ", dynamic sampling" if rl.dynamic_sampling else "")
        maker = BatchMaker(cfg, sampler, rollout, rewards)
        every_eval = cfg.eval.every_steps if eval_file else 0
        if resume is not None:
            log.info("[rl] resumed after step %d from %s", resume.step, resume.path)
            if every_eval and resume.step % every_eval == 0:  # the earlier launch may have died before it
                evaluate_once(cfg, tracker, f"rl_step_{resume.step}", str(resume.path), eval_file, resume.step,
                              series="rl", during_training=True)
        progress = Progress("rl", rl.steps, cfg.logging.log_every, first=first)
        overlap = rl.mode == "async"
        last = time.perf_counter()
        sampled = resume.state.get("next_batch") if resume else None
        batch = StepBatch(**sampled) if sampled else maker.complete(maker.submit())
        for step in range(first, rl.steps + 1):
            pending = maker.submit() if overlap and step < rl.steps else None  # runs while the learner trains
            t0 = time.perf_counter()
            train = learner.rl_step(batch.items)
            t1 = time.perf_counter()
            upcoming = maker.complete(pending) if pending is not None else None
            t2 = time.perf_counter()
            if train["skipped"]:  # non-finite update: the weights did not change, the engines keep theirs
                synced, learner_digest = [], None
                tracker.log("event", step, {"event": "update skipped: non-finite loss or gradient norm",
                                            "loss": train["loss"], "time": time.time()})
            else:
                weights_ref, learner_digest = learner.export_weights()
                synced = rollout.update_weights(weights_ref, version=step)
            t3 = time.perf_counter()
            tracker.log_ledger("rl", step, [rows[it["sample_index"]].id for it in batch.items],
                               excluded=[k for k, it in enumerate(batch.items) if it["exclude"]],
                               skipped=bool(train["skipped"]))
            stats = {**batch.stats, **{f"train/{k}": v for k, v in train.items()}}
            stats.update({
                "time/rollout": batch.rollout_s, "time/rollout_wait": batch.wait_s, "time/reward": batch.reward_s,
                "time/train": t1 - t0, "time/sync": t3 - t2, "time/step": t3 - last,
                "policy/version": batch.version, "policy/version_lag": step - 1 - batch.version,
                # every engine loaded exactly the bytes the learner sent
                "sync/digest_match": float(all(s["digest"] == learner_digest for s in synced)),
                "sync/load_s": max((s["load_s"] for s in synced), default=0.0),
                "epoch": sampler.epoch,
            })
            last = t3
            for event in rollout.events + rewards.events:
                tracker.log("event", step, event)
            rollout.events.clear()
            rewards.events.clear()
            tracker.log("rl", step, stats)
            every = cfg.logging.samples_every
            if every and (step % every == 0 or step == rl.steps):
                tracker.log_samples("rl", step, [{**x, "prompt": rows[x["sample_index"]].prompt,
                                                  "images": [str(p) for p in rows[x["sample_index"]].images]}
                                                 for x in batch.samples])
            progress.update(step, {"reward": stats["reward/mean"], "loss": train["loss"], "clip": train["clip_frac"],
                                   "lag": stats["policy/version_lag"], "sync_s": round(t3 - t2, 3),
                                   "step_s": round(stats["time/step"], 2)})
            def state(upcoming: StepBatch | None = upcoming) -> dict:
                return {"sampler": sampler.state_dict(), "stage_start_model": model_path,
                        "policy_version": rollout.version,  # type: ignore[union-attr]
                        # async: the next step's batch is already sampled (by the previous weights)
                        "next_batch": asdict(upcoming) if upcoming is not None else None}

            saved = save_if_due(cfg, learner, checkpoints, "rl", step, rl.steps, state)
            path = saved or path
            if saved and every_eval and step % every_eval == 0 and step < rl.steps:
                # the checkpoint just written, in a Ray task, while the loop waits
                evaluate_once(cfg, tracker, f"rl_step_{step}", saved, eval_file, step, series="rl",
                              during_training=True)
            if not overlap and step < rl.steps:
                upcoming = maker.complete(maker.submit())  # sampled by the weights just broadcast
            batch = upcoming  # type: ignore[assignment]
    finally:
        for part in (rewards, rollout, learner):
            if part is not None:
                part.shutdown()
    return path
