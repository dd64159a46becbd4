"""A pool of reward-worker Ray actors that score trajectories in parallel, each call under a timeout.

A worker that raises marks its share as failed (excluded from the update, never scored 0); a worker
that dies or exceeds `reward.timeout_s` is killed, replaced, and its share retried once on the new
worker. Every failure is returned as an event for the run's log.
"""

from __future__ import annotations

import time

import ray

from cosmo.config import CosmoConfig
from cosmo.data import load_jsonl
from cosmo.trajectory import Scored, Trajectory
from rewards.combine import combined_reward, objective_scores


class RewardWorker:
    """Scores trajectories against the training rows; plain Python, wrapped as a Ray actor by the pool."""

    def __init__(self, train_file: str, format_weight: float) -> None:
        self.rows = load_jsonl(train_file)
        self.format_weight = format_weight

    def ready(self) -> bool:
        """Answers once the actor is up (imports and data loaded): the timeout covers scoring only."""
        return True

    def score(self, trajectories: list[Trajectory]) -> list[Scored]:
        scored = []
        for t in trajectories:
            row = self.rows[t.sample_index]
            try:
                scores = objective_scores(row, t.text)
                scored.append(Scored(t, row.task, scores, combined_reward(row, scores, self.format_weight)))
            except Exception as exc:  # one bad row must not sink the batch: mark it, keep going
                scored.append(Scored(t, row.task, error=f"{type(exc).__name__}: {exc}"))
        return scored


class RewardPool:
    def __init__(self, cfg: CosmoConfig, train_file: str) -> None:
        self.cfg, self.train_file = cfg, train_file
        self.timeout_s = cfg.reward.timeout_s
        # rule scoring is light (~1 ms a trajectory): the workers reserve no CPU, so they never wait
        # for the learner or the rollout engines to free one
        self._cls = ray.remote(RewardWorker).options(num_cpus=0)
        self.workers = [self._cls.remote(train_file, cfg.reward.format_weight) for _ in range(cfg.reward.num_workers)]
        self._wait_ready(self.workers)
        self.events: list[dict] = []

    @staticmethod
    def _wait_ready(workers: list, startup_timeout_s: float = 300.0) -> None:
        refs = [w.ready.remote() for w in workers]
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=startup_timeout_s)
        if len(done) < len(refs):
            raise RuntimeError(f"reward workers did not start within {startup_timeout_s:.0f} s")
        ray.get(done)

    def _new_worker(self):
        worker = self._cls.remote(self.train_file, self.cfg.reward.format_weight)
        self._wait_ready([worker])
        return worker

    def score(self, trajectories: list[Trajectory]) -> list[Scored]:
        """Scores in input order; a share that fails twice comes back with `error` set."""
        n = len(self.workers)
        shares = [trajectories[i::n] for i in range(n)]
        results: list[list[Scored]] = [[] for _ in range(n)]
        pending = {w.score.remote(share): i for i, (w, share) in enumerate(zip(self.workers, shares, strict=True))
                   if share}
        retried: set[int] = set()
        deadline = time.monotonic() + self.timeout_s
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:  # every pending share is past the timeout: replace those workers
                for ref, i in list(pending.items()):
                    del pending[ref]
                    self._replace(i, "timed out", f"no answer within {self.timeout_s} s")
                    self._retry_or_fail(i, shares, results, pending, retried, "timeout")
                deadline = time.monotonic() + self.timeout_s
                continue
            ref = ready[0]
            i = pending.pop(ref)
            try:
                results[i] = ray.get(ref)
            except ray.exceptions.RayError as exc:
                self._replace(i, "died", str(exc).splitlines()[0])
                self._retry_or_fail(i, shares, results, pending, retried, "worker died")
        # share i holds trajectories i, i + n, i + 2n, ...: put the results back in input order
        ordered: list[Scored] = [None] * len(trajectories)  # type: ignore[list-item]
        for i, share in enumerate(results):
            for j, scored in enumerate(share):
                ordered[i + j * n] = scored
        return ordered

    def _replace(self, i: int, what: str, detail: str) -> None:
        ray.kill(self.workers[i], no_restart=True)
        self.workers[i] = self._new_worker()
        self.events.append({"event": f"reward worker {i} {what}; replaced", "detail": detail, "time": time.time()})

    def _retry_or_fail(self, i, shares, results, pending, retried, reason) -> None:
        if i not in retried:
            retried.add(i)
            pending[self.workers[i].score.remote(shares[i])] = i
        else:
            results[i] = [Scored(t, "", error=f"reward scoring failed twice ({reason})") for t in shares[i]]

    def shutdown(self) -> None:
        for w in self.workers:
            ray.kill(w)
