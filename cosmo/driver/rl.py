"""The RL stage. Each step, in the order the data flows:

    sample -> rollout -> reward -> advantage -> update -> weight sync -> record -> checkpoint / eval

`rl.mode=sync` samples each step with the newest weights (exact, on-policy). `rl.mode=async` submits
step k+1's rollouts just before the learner's update of step k and collects them before the weights
change, so generation overlaps the update; step k+1 is then sampled by the weights of update k-1 (a
lag of exactly one version, corrected in the loss by truncated importance weights, see
`cosmo.algorithms.importance_weights`). Both modes take the same number of updates on the same
prompt order.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict

from actors.group import PendingRollout, RolloutGroup
from cosmo.algorithms.advantages import RefusalLedger
from cosmo.config import CosmoConfig
from cosmo.driver.checkpoint_eval import evaluate_once
from cosmo.driver.metrics import StepTimer, record_rl_step, rl_step_metrics
from cosmo.driver.resume import ResumePoint
from cosmo.driver.rl_batch import Rollouts, advantages, refill_flat_groups, score
from cosmo.driver.stage import Stage, open_stage, sampler_seed
from cosmo.driver.tracking import Progress, RunTracker
from cosmo.trajectory import Trajectory
from cosmo.weights import SyncReport, sync_weights
from rewards.pool import RewardPool

log = logging.getLogger("cosmo")


def run_rl(cfg: CosmoConfig, tracker: RunTracker, model_path: str, train_file: str,
           resume: ResumePoint | None = None, eval_file: str | None = None, name: str = "rl",
           sft_file: str | None = None) -> str:
    """The actor-learner loop on `model_path` (the stage's start model, and the KL reference); returns
    the final checkpoint's path. With `resume` the learner and the engines start from that checkpoint at
    its policy version, the data order continues, and in async mode the rollout that was already
    sampled for the next step is trained on as it was. With `eval_file` and `eval.every_steps`, the
    checkpoints in between are evaluated too. `name`: the stage's name in checkpoints, metrics, ledger,
    samples, progress lines and evaluation labels (`rl`, or a key of train.stage_configs). `sft_file`: the
    rows of `algorithm.sft_coef`'s supervised loss (default: `train_file`)."""
    rl, g = cfg.rl, cfg.algorithm.group_size
    with open_stage(cfg, tracker, name, rl, model_path=model_path, train_file=train_file,
                    items_per_step=rl.prompts_per_step * g, sampler_seed=sampler_seed(cfg.seed, name, "rl"),
                    resume=resume, reference=model_path if cfg.algorithm.kl_coef > 0 else None,
                    sft_file=(sft_file or train_file) if cfg.algorithm.sft_coef > 0 else None) as stage, \
            rollout_and_rewards(cfg, stage, train_file) as (rollout, rewards):
        evaluate_resumed_checkpoint(cfg, tracker, name, resume, eval_file)
        progress = Progress(name, rl.steps, cfg.logging.log_every, first=stage.first)
        ahead = _resumed_rollouts(resume)  # async: the next step's rollouts, sampled before the checkpoint
        ledger = RefusalLedger(cfg.algorithm.refusal_balance_window)  # the balance's earlier batches
        ledger.load_state_dict(resume.state.get("refusal_ledger", []) if resume else [])
        began = time.perf_counter()
        warned = False  # about responses data.max_length cuts: once per stage
        for step in stage.steps():
            timer = StepTimer(began)
            with timer.block("rollout_wait"):                                                     # sample, rollout
                rollouts = ahead or _generate(rollout, stage.sampler.next_batch(rl.prompts_per_step), g)
            with timer.block("reward"):                                                                # reward
                scored = score(rewards, rollouts)
            if rl.dynamic_sampling:
                with timer.block("refill"):
                    scored = refill_flat_groups(cfg, scored, stage.sampler, rollout, rewards)
            with timer.block("advantage"):                                                             # advantage
                batch = advantages(cfg, scored, stage.rows, ledger)
            pending = (rollout.submit(stage.sampler.next_batch(rl.prompts_per_step), g)  # async: step k+1's
                       if rl.mode == "async" and step < rl.steps else None)            # rollouts run meanwhile
            with timer.block("train"):                                                                 # update
                train = stage.learner.rl_step(batch.items)
            warned = warned or _warn_truncation(cfg, name, step, train["truncated_fraction"])
            with timer.block("rollout_wait"):  # async: done with the old weights, collected before the sync
                ahead = _collect(rollout, pending) if pending else None
            with timer.block("sync"):                                                                  # weight sync
                synced = (SyncReport(None) if train["skipped"]  # non-finite update: the engines keep their weights
                          else sync_weights(stage.learner, rollout, version=step))
            stats = rl_step_metrics(step, scored, batch, train, synced, timer, stage.sampler.epoch)  # record
            record_rl_step(tracker, name, step, rl.steps, stage.rows, batch, stats, _drain_events(rollout, rewards),
                           cfg.logging.samples_every)
            progress.update(step, {"reward": stats["reward/mean"], "loss": train["loss"], "clip": train["clip_frac"],
                                   "lag": stats["policy/version_lag"], "sync_s": round(timer.marks["sync"], 3),
                                   "step_s": round(stats["time/step"], 2)})
            saved = stage.checkpoint(step, lambda ahead=ahead: {"policy_version": rollout.version,     # checkpoint
                                                                "next_rollouts": asdict(ahead) if ahead else None,
                                                                "refusal_ledger": ledger.state_dict()})
            if saved and step < rl.steps:
                evaluate_periodically(cfg, tracker, name, step, saved, eval_file)                      # eval
            began = time.perf_counter()
        return stage.path


@contextlib.contextmanager
def rollout_and_rewards(cfg: CosmoConfig, stage: Stage, train_file: str) -> Iterator[tuple[RolloutGroup, RewardPool]]:
    """The vLLM engines on the stage's start weights (at the resumed policy version) and the reward
    workers; both shut down when the block ends."""
    started = time.perf_counter()
    resume = stage.resume
    rollout = rewards = None
    try:
        rollout = RolloutGroup(cfg, str(resume.path) if resume else stage.start_model, train_file,
                               version=resume.state["policy_version"] if resume else 0)
        rewards = RewardPool(cfg, train_file)
        log.info("[%s] %d vLLM rollout actors and %d reward workers ready in %.1f s (%s, %s mode, %d prompts x %d "
                 "samples per step%s)", stage.name, cfg.rollout.num_actors, cfg.reward.num_workers,
                 time.perf_counter() - started, cfg.algorithm.name, cfg.rl.mode, cfg.rl.prompts_per_step,
                 cfg.algorithm.group_size, ", dynamic sampling" if cfg.rl.dynamic_sampling else "")
        yield rollout, rewards
    finally:
        for part in (rewards, rollout):
            if part is not None:
                part.shutdown()


def _warn_truncation(cfg: CosmoConfig, name: str, step: int, fraction: float) -> bool:
    """Warn (and return True) when more than `rl.truncation_warn` of the step's responses did not fit in
    `data.max_length` beside their prompt: the reward scored text that the loss cuts off."""
    if fraction <= cfg.rl.truncation_warn:
        return False
    log.warning("[%s] step %d: %.0f%% of the responses were cut to fit data.max_length=%d before the loss "
                "(rl.truncated=%s; the reward scored them whole); raise data.max_length or lower "
                "rollout.max_new_tokens (train/truncated_fraction follows it; warned once per stage)",
                name, step, 100 * fraction, cfg.data.max_length, cfg.rl.truncated)
    return True


def _generate(rollout: RolloutGroup, indices: list[int], n: int) -> Rollouts:
    return _collect(rollout, rollout.submit(indices, n))


def _collect(rollout: RolloutGroup, pending: PendingRollout) -> Rollouts:
    trajectories = rollout.collect(pending)
    return Rollouts(trajectories, time.perf_counter() - pending.submitted)


def _resumed_rollouts(resume: ResumePoint | None) -> Rollouts | None:
    saved = resume.state.get("next_rollouts") if resume else None
    if not saved:
        return None
    return Rollouts([Trajectory(**t) for t in saved["trajectories"]], saved["rollout_s"])


def _drain_events(*workers: RolloutGroup | RewardPool) -> list[dict]:
    """Restarts and replacements the worker groups recorded during the step (then cleared)."""
    events = [e for w in workers for e in w.events]
    for w in workers:
        w.events.clear()
    return events


def evaluate_periodically(cfg: CosmoConfig, tracker: RunTracker, name: str, step: int, checkpoint: str,
                          eval_file: str | None) -> None:
    """`eval.every_steps`: the checkpoint just written, in a Ray task, while the loop waits; labelled
    `<stage>_step_<N>`, on the stage's eval series."""
    every = cfg.eval.every_steps if eval_file else 0
    if every and step % every == 0:
        evaluate_once(cfg, tracker, f"{name}_step_{step}", checkpoint, eval_file, step, series=name,  # type: ignore[arg-type]
                      during_training=True)


def evaluate_resumed_checkpoint(cfg: CosmoConfig, tracker: RunTracker, name: str, resume: ResumePoint | None,
                                eval_file: str | None) -> None:
    """The killed launch may have died before the periodic eval of the checkpoint it resumes from."""
    if resume is not None:
        log.info("[%s] resumed after step %d from %s", name, resume.step, resume.path)
        evaluate_periodically(cfg, tracker, name, resume.step, str(resume.path), eval_file)
