"""A pool of reward-worker Ray actors that score trajectories in parallel, each call under a timeout.

Each worker builds its objectives from `reward` config once (model objectives load in its constructor,
so `reward.startup_timeout_s` covers loading and `reward.timeout_s` covers scoring only). A trajectory
whose scoring fails (an objective errs, e.g. an unparseable judge verdict) comes back with `error` set
and is excluded from the update, never scored 0; the pool logs an event naming how many failed and
the first error. A worker whose call raises or dies, exceeds `reward.timeout_s`, or answers for other
trajectories than it was sent (checked by sample index, policy version and response) is killed, replaced,
and its share retried once on the new worker (`cosmo.workers.settle` classifies the outcomes). Every
failure is returned as an event for the run's log; a worker that cannot start is a `RewardError`.
"""

from __future__ import annotations

import math
import time

import ray

from cosmo.config import CosmoConfig, RewardConfig
from cosmo.data import load_jsonl
from cosmo.trajectory import Scored, Trajectory
from cosmo.vllm_env import vllm_env
from cosmo.workers import HUNG, OK, Settled, WorkerError, settle, wait_started
from rewards.combine import build_model_objectives, combine, model_objectives_for, objective_scores
from rewards.objectives.base import Item, ObjectiveStats


class RewardError(WorkerError):
    """A reward worker could not start; the message names it and the setting to change."""


class RewardWorker:
    """Scores trajectories against the training rows; plain Python, wrapped as a Ray actor by the pool.

    `reward` is the config's reward section (defaults when None); `device` is where model objectives run
    (cuda only when the worker holds a GPU); `seed` seeds the judge engine.
    """

    def __init__(self, train_file: str, reward: RewardConfig | None = None, device: str = "cpu", seed: int = 0) -> None:
        self.rows = load_jsonl(train_file)
        self.cfg = reward if reward is not None else RewardConfig()
        self.objectives = build_model_objectives(self.cfg, device, seed)
        self.rule_stats = ObjectiveStats("rules")

    def ready(self) -> bool:
        """Answers once the actor is up (imports, data and models loaded): the timeout covers scoring only."""
        return True

    def diagnostics(self) -> dict[str, dict]:
        """Per objective: items scored and failed, retries, seconds, load time, the last error."""
        return {"rules": self.rule_stats.as_dict(), **{n: o.stats.as_dict() for n, o in self.objectives.items()}}

    def score(self, trajectories: list[Trajectory]) -> list[Scored]:
        started = time.perf_counter()
        rows = [self.rows[t.sample_index] for t in trajectories]
        scores: list[dict[str, float]] = []
        errors: list[str | None] = []
        needed: list[list[str]] = []  # the model objectives each trajectory needs
        for t, row in zip(trajectories, rows, strict=True):
            try:
                scores.append(objective_scores(row, t.text))
                needed.append(model_objectives_for(row, self.cfg))
                errors.append(None)
            except Exception as exc:  # one bad row must not sink the batch: mark it, keep going
                scores.append({})
                needed.append([])
                errors.append(f"{type(exc).__name__}: {exc}")
        self.rule_stats.calls += 1
        self.rule_stats.items += len(trajectories)
        self.rule_stats.seconds += time.perf_counter() - started
        for name, objective in self.objectives.items():
            todo = [i for i, names in enumerate(needed) if name in names and errors[i] is None]
            if not todo:
                continue
            outcomes = objective.score([Item(rows[i], trajectories[i].text, trajectories[i].sample_id) for i in todo])
            for i, outcome in zip(todo, outcomes, strict=True):
                value = outcome.value
                if outcome.error is not None:
                    errors[i] = outcome.error
                elif value is None or not math.isfinite(value) or not objective.low <= value <= objective.high:
                    errors[i] = f"{name}: score {value!r} outside [{objective.low:g}, {objective.high:g}]"
                else:
                    scores[i][name] = value
        scored = []
        for t, row, s, err in zip(trajectories, rows, scores, errors, strict=True):
            if err is None:
                try:
                    scored.append(Scored(t, row.task, s, combine(row, s, self.cfg)))
                    continue
                except Exception as exc:
                    err = f"{type(exc).__name__}: {exc}"
            self.rule_stats.failed += 1
            self.rule_stats.last_error = err
            scored.append(Scored(t, row.task, error=err))
        return scored


def share_mismatch(share: list[Trajectory], answer: list[Scored]) -> str | None:
    """What is wrong when a worker's answer is not one Scored per trajectory of its share, in order
    (same sample index, version and response); None when it is."""
    if len(answer) != len(share):
        return f"{len(answer)} results for {len(share)} trajectories"
    for k, (t, s) in enumerate(zip(share, answer, strict=True)):
        got = s.trajectory
        if (got.sample_index, got.version, got.response_ids) != (t.sample_index, t.version, t.response_ids):
            return (f"result {k} is for sample {got.sample_index} (version {got.version}), expected sample "
                    f"{t.sample_index} (version {t.version})")
    return None


class RewardPool:
    """`reward.num_workers` workers of class `worker` (a RewardWorker or a subclass with other objectives)."""

    def __init__(self, cfg: CosmoConfig, train_file: str, worker: type[RewardWorker] = RewardWorker) -> None:
        r = cfg.reward
        self.cfg, self.train_file = cfg, train_file
        self.timeout_s = r.timeout_s
        gpus = r.gpus_per_worker if cfg.device == "cuda" else 0.0
        # rule scoring is light (~1 ms a trajectory): the workers reserve no CPU, so they never wait
        # for the learner or the rollout engines to free one; model objectives run on a GPU only when
        # the worker reserves one (reward.gpus_per_worker), else on CPU
        options: dict = {"num_cpus": 0, "num_gpus": gpus}
        if r.judge is not None:
            options["runtime_env"] = {"env_vars": vllm_env()}  # the judge's engine
        self._cls = ray.remote(worker).options(**options)
        self._args = (train_file, r, "cuda" if gpus > 0 else "cpu", cfg.seed)
        self.workers = [self._cls.remote(*self._args) for _ in range(r.num_workers)]
        try:
            self._wait_ready(dict(enumerate(self.workers)))
        except RewardError:
            self.shutdown()  # the caller never gets the pool: end the workers that did start
            raise
        self.events: list[dict] = []

    def _wait_ready(self, workers: dict[int, object]) -> None:
        wait_started({i: w.ready.remote() for i, w in workers.items()}, self.cfg.reward.startup_timeout_s,
                     "reward.startup_timeout_s", lambda i: f"reward worker {i}", RewardError)

    def diagnostics(self) -> list[dict[str, dict]]:
        """Each worker's per-objective diagnostics (RewardWorker.diagnostics)."""
        return ray.get([w.diagnostics.remote() for w in self.workers], timeout=self.timeout_s)

    def score(self, trajectories: list[Trajectory]) -> list[Scored]:
        """Scores in input order; a share that fails twice comes back with `error` set."""
        n = len(self.workers)
        shares = [trajectories[i::n] for i in range(n)]
        results: list[list[Scored]] = [[] for _ in range(n)]
        todo = [i for i in range(n) if shares[i]]
        for attempt in (1, 2):  # the first try, then one retry of each failed share on its new worker
            refs = {i: self.workers[i].score.remote(shares[i]) for i in todo}
            todo = []
            for s in settle(refs, time.perf_counter() + self.timeout_s):
                failure = self._failure(s, shares[s.key])
                if failure is None:
                    results[s.key] = s.value
                    self._note_failures(s.value)
                    continue
                what, detail, reason = failure
                self._replace(s.key, what, detail)
                if attempt == 1:
                    todo.append(s.key)
                else:
                    results[s.key] = [Scored(t, "", error=f"reward scoring failed twice ({reason})")
                                      for t in shares[s.key]]
        # share i holds trajectories i, i + n, i + 2n, ...: put the results back in input order
        ordered: list[Scored] = [None] * len(trajectories)  # type: ignore[list-item]
        for i, share in enumerate(results):
            for j, scored in enumerate(share):
                ordered[i + j * n] = scored
        return ordered

    def _failure(self, s: Settled[int], share: list[Trajectory]) -> tuple[str, str, str] | None:
        """None for a good answer, else (what happened, detail, reason for a second failure)."""
        if s.status == HUNG:
            return "timed out", f"no answer within {self.timeout_s} s", "timeout"
        if s.status != OK:  # the worker died, or its call raised
            return "died", s.detail, "worker died"
        mismatch = share_mismatch(share, s.value)  # never file a score under another trajectory
        return ("answered for other trajectories", mismatch, "wrong trajectories") if mismatch else None

    def _note_failures(self, share: list[Scored]) -> None:
        failed = [s for s in share if s.error is not None]
        if failed:
            self.events.append({"event": f"reward scoring failed for {len(failed)} of {len(share)} trajectories "
                                "(excluded from the update)", "detail": failed[0].error, "time": time.time()})

    def _replace(self, i: int, what: str, detail: str) -> None:
        ray.kill(self.workers[i], no_restart=True)
        self.workers[i] = self._cls.remote(*self._args)
        self._wait_ready({i: self.workers[i]})
        self.events.append({"event": f"reward worker {i} {what}; replaced", "detail": detail, "time": time.time()})

    def shutdown(self) -> None:
        for w in self.workers:
            ray.kill(w)
