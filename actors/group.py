"""The rollout actors as the driver sees them: N `RolloutWorker`s sharing each step's prompts.

Ray restarts a dead actor (up to rollout.max_restarts); one that hangs (no answer within
rollout.timeout_s) is killed first and restarted the same way. The group then loads the current
weights into the new engine and retries that actor's share of the step, so no row is lost or
sampled twice. Each restart is recorded in `events`. A second failure of the same call, or an
actor that does not come back within rollout.restart_timeout_s, stops the run with `RolloutError`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass

import ray

from actors.rollout import RolloutWorker
from cosmo.config import CosmoConfig
from cosmo.trajectory import Trajectory
from cosmo.vllm_env import vllm_env
from cosmo.workers import FAILED, HUNG, OK, Settled, WorkerError, settle, wait_started

log = logging.getLogger("cosmo")


class RolloutError(WorkerError):
    """A rollout actor failed beyond recovery; the message says which and during what."""


@dataclass
class PendingRollout:
    """A batch being sampled: each actor's share of row indices and the call producing it."""

    shares: list[list[int]]
    refs: dict[int, ray.ObjectRef]
    n: int
    version: int
    submitted: float  # perf_counter() at submission


class RolloutGroup:
    def __init__(self, cfg: CosmoConfig, model_path: str, train_file: str, version: int = 0,
                 worker_cls: type = RolloutWorker) -> None:
        """Engines on `model_path`, whose weights are policy `version` (a resumed run's checkpoint step).
        `worker_cls`: the actor's class (a stand-in with the same methods in the weight-sync contract tests)."""
        r = cfg.rollout
        gpus = r.tensor_parallel_size if cfg.device == "cuda" else 0
        env = vllm_env(weight_reload=True)
        need = {"CPU": r.cpus_per_actor * r.num_actors, "GPU": gpus * r.num_actors}
        free = ray.available_resources()
        short = {k: v for k, v in need.items() if v > free.get(k, 0.0) + 1e-9}
        if short:
            raise RolloutError(
                f"the Ray cluster lacks resources for {r.num_actors} rollout actors: they need {need}, "
                f"{ {k: free.get(k, 0.0) for k in need} } is free (the learner holds its share); lower "
                "rollout.cpus_per_actor or learner.cpus_per_rank, or add nodes"
            )
        remote_cls = ray.remote(worker_cls).options(
            num_cpus=r.cpus_per_actor, num_gpus=gpus, max_restarts=r.max_restarts, max_task_retries=0,
            runtime_env={"env_vars": env},
        )
        self.actors = [remote_cls.remote(model_path, train_file, cfg, i, version) for i in range(r.num_actors)]
        self.version = version
        self.timeout_s, self.restart_timeout_s, self.max_restarts = r.timeout_s, r.restart_timeout_s, r.max_restarts
        self.weights_ref: ray.ObjectRef | None = None
        self.events: list[dict] = []
        self.info = self._started()

    def _started(self) -> list[dict]:
        """Each actor's info once its engine is up; one that fails or takes longer than
        rollout.restart_timeout_s to start stops the run, named."""
        info = wait_started({i: a.info.remote() for i, a in enumerate(self.actors)}, self.restart_timeout_s,
                            "rollout.restart_timeout_s", lambda i: f"rollout actor {i} (its vLLM engine)", RolloutError)
        return [info[i] for i in range(len(self.actors))]

    def generate(self, indices: list[int], n: int) -> list[Trajectory]:
        """`n` responses for each row index, split over the actors in contiguous shares, in order."""
        return self.collect(self.submit(indices, n))

    def submit(self, indices: list[int], n: int) -> PendingRollout:
        """Start sampling with the current weights and return at once (async mode overlaps this
        with the learner's update); `collect` waits for the result."""
        k = len(self.actors)
        bounds = [round(i * len(indices) / k) for i in range(k + 1)]
        shares = [indices[bounds[i] : bounds[i + 1]] for i in range(k)]
        refs = {i: self.actors[i].generate.remote(share, n, self.version) for i, share in enumerate(shares) if share}
        return PendingRollout(shares, refs, n, self.version, time.perf_counter())

    def collect(self, pending: PendingRollout) -> list[Trajectory]:
        """The trajectories of a submitted batch, in row order. A share whose actor died, or gave no
        answer within `rollout.timeout_s` of submission (hung), is redone by the restarted actor."""
        if pending.version != self.version:
            raise RuntimeError(f"rollouts submitted at policy version {pending.version} must be collected before "
                               f"the weight update to version {self.version}")
        results: dict[int, list[Trajectory]] = {}
        for s in settle(pending.refs, pending.submitted + self.timeout_s):
            share = pending.shares[s.key]
            what = f"generating {len(share)} rows"
            if s.status == OK:
                results[s.key] = s.value
                continue
            self._recover(s, what, rows_retried=len(share))
            results[s.key] = self._call(s.key, what + " again after its restart",
                                        self.actors[s.key].generate.remote(share, pending.n, self.version))
        return [t for i in sorted(results) for t in results[i]]

    def _recover(self, s: Settled[int], what: str, rows_retried: int | None = None) -> dict | None:
        """Actor `s.key` died or hung while `what`: restart it with the current weights (returns that
        load's report); one that raised ends the run."""
        if s.status == FAILED:
            raise RolloutError(f"rollout actor {s.key} failed {what}: {s.detail}") from s.error
        hung = s.status == HUNG
        why = f"gave no answer within rollout.timeout_s={self.timeout_s:g} s (hung)" if hung else f"died ({s.detail})"
        return self._restart(s.key, what, why, hung=hung, rows_retried=rows_retried)

    def _call(self, i: int, what: str, ref: ray.ObjectRef):
        """One call on a freshly restarted actor: an error or a second hang ends the run."""
        s = next(settle({i: ref}, time.perf_counter() + self.timeout_s))
        if s.status == HUNG:
            raise RolloutError(f"rollout actor {i} hung again {what}: no answer within rollout.timeout_s="
                               f"{self.timeout_s:g} s")
        if s.status != OK:
            raise RolloutError(f"rollout actor {i} failed {what}: {s.detail}") from s.error
        return s.value

    def _restart(self, i: int, what: str, why: str, *, hung: bool, rows_retried: int | None) -> dict | None:
        """Actor i died or hung while `what`: have Ray restart it (killing a hung one first, which
        counts against rollout.max_restarts), wait for its engine, load the current weights.
        Returns the weight load's report, or None when the engines still hold the start model.
        `rows_retried`: the rows the caller samples again (recorded in the event)."""
        started = time.perf_counter()
        log.warning("[rollout] actor %d %s while %s; restarting it", i, why, what)
        actor = self.actors[i]
        if hung:
            self._kill_hung(i)
        self._wait_restarted(i, what)
        loaded = None
        if self.weights_ref is not None:
            loaded = self._call(i, f"loading policy version {self.version} after its restart",
                                actor.update_weights.remote(self.weights_ref, self.version))
        event = {"event": f"rollout actor {i} restarted", "why": why, "while": what, "version": self.version,
                 "recovery_s": round(time.perf_counter() - started, 2), "time": time.time()}
        if rows_retried is not None:
            event["rows_retried"] = rows_retried
        self.events.append(event)
        log.warning("[rollout] actor %d restarted at policy version %d in %.1f s", i, self.version,
                    event["recovery_s"])
        return loaded

    def _kill_hung(self, i: int) -> None:
        """End a hung actor's process so that Ray restarts it. On this node: SIGKILL to its pid (seen
        with Ray 2.60: after `ray.kill` a SIGSTOPped actor could stay frozen, the run then waiting
        out rollout.restart_timeout_s); on another node: `ray.kill`."""
        proc = self.info[i]
        if proc["host"] == ray.util.get_node_ip_address():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc["pid"], signal.SIGKILL)
        else:
            ray.kill(self.actors[i], no_restart=False)

    def _wait_restarted(self, i: int, what: str) -> None:
        """Poll until Ray has restarted actor i and its engine answers; past rollout.restart_timeout_s,
        or when Ray has given up on it (rollout.max_restarts used), the run stops."""
        deadline = time.monotonic() + self.restart_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                self.info[i] = ray.get(self.actors[i].info.remote(), timeout=max(1.0, min(remaining, 30.0)))
                return
            except (ray.exceptions.ActorUnavailableError, ray.exceptions.GetTimeoutError) as exc:
                if remaining <= 0:
                    raise RolloutError(f"rollout actor {i} did not come back within rollout.restart_timeout_s="
                                       f"{self.restart_timeout_s:g} s after failing while {what}") from exc
                time.sleep(1.0)
            except ray.exceptions.OutOfMemoryError as exc:
                raise RolloutError(f"rollout actor {i} was killed by Ray's memory monitor while restarting after "
                                   f"failing while {what}: {str(exc).splitlines()[0]} Run nothing else on the node, "
                                   "lower rollout.cpu_kv_cache_gib or rl.micro_batch_size, and keep checkpoint."
                                   "every_steps set so that resume=auto continues the stage") from exc
            except ray.exceptions.RayActorError as exc:
                raise RolloutError(f"rollout actor {i} could not be restarted after failing while {what} "
                                   f"(rollout.max_restarts={self.max_restarts} used?): "
                                   f"{str(exc).splitlines()[0]}") from exc

    def update_weights(self, weights_ref: ray.ObjectRef, version: int) -> list[dict]:
        """Load new weights into every engine in place; returns each actor's digest and load time.
        An actor that dies or hangs (no answer within rollout.timeout_s) is restarted and loaded."""
        self.weights_ref, self.version = weights_ref, version
        what = f"loading policy version {version}"
        refs = {i: a.update_weights.remote(weights_ref, version) for i, a in enumerate(self.actors)}
        reports = {}
        for s in settle(refs, time.perf_counter() + self.timeout_s):
            # an actor restarted on the way loads the weights then: its report stands in for the update's
            reports[s.key] = s.value if s.status == OK else self._recover(s, what)
        return [reports[i] for i in range(len(self.actors))]

    def shutdown(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
