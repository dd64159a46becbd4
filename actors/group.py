"""The rollout actors as the driver sees them: N `RolloutWorker`s sharing each step's prompts.

Ray restarts a dead actor (up to rollout.max_restarts); the group then loads the current weights
into the new engine and retries that actor's share of the step, so no row is lost or sampled
twice. Each restart is recorded in `events`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import ray

from actors.rollout import RolloutWorker
from cosmo.config import CosmoConfig
from cosmo.trajectory import Trajectory

log = logging.getLogger("cosmo")


class RolloutError(RuntimeError):
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
    def __init__(self, cfg: CosmoConfig, model_path: str, train_file: str, version: int = 0) -> None:
        """Engines on `model_path`, whose weights are policy `version` (a resumed run's checkpoint step)."""
        r = cfg.rollout
        gpus = r.tensor_parallel_size if cfg.device == "cuda" else 0
        env = {
            "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # engine in the actor's process: 2.5 s start instead of 20-30 s
            "VLLM_ALLOW_INSECURE_SERIALIZATION": "1",  # collective_rpc carries the weight-reload function
            # INFO lines per request and WARNINGs per weight reload (modules without weights, LD_PRELOAD hints)
            # would bury the run's progress lines; errors still show
            "VLLM_LOGGING_LEVEL": "ERROR",
        }
        need = {"CPU": r.cpus_per_actor * r.num_actors, "GPU": gpus * r.num_actors}
        free = ray.available_resources()
        short = {k: v for k, v in need.items() if v > free.get(k, 0.0) + 1e-9}
        if short:
            raise RolloutError(
                f"the Ray cluster lacks resources for {r.num_actors} rollout actors: they need {need}, "
                f"{ {k: free.get(k, 0.0) for k in need} } is free (the learner holds its share); lower "
                "rollout.cpus_per_actor or learner.cpus_per_rank, or add nodes"
            )
        remote_cls = ray.remote(RolloutWorker).options(
            num_cpus=r.cpus_per_actor, num_gpus=gpus, max_restarts=r.max_restarts, max_task_retries=0,
            runtime_env={"env_vars": env},
        )
        self.actors = [remote_cls.remote(model_path, train_file, cfg, i, version) for i in range(r.num_actors)]
        self.version = version
        self.weights_ref: ray.ObjectRef | None = None
        self.events: list[dict] = []
        self.info = self._gather("engine start", [a.info.remote() for a in self.actors])

    def _gather(self, what: str, refs: list) -> list:
        try:
            return ray.get(refs)
        except ray.exceptions.RayError as exc:
            raise RolloutError(f"rollout actors failed during {what}: {str(exc).splitlines()[0]}") from exc

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
        """The trajectories of a submitted batch, in row order; a share whose actor died is redone."""
        if pending.version != self.version:
            raise RuntimeError(f"rollouts submitted at policy version {pending.version} must be collected before "
                               f"the weight update to version {self.version}")
        results: dict[int, list[Trajectory]] = {}
        for i, ref in pending.refs.items():
            try:
                results[i] = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                results[i] = self._recover(i, pending.shares[i], pending.n, exc)
            except ray.exceptions.RayTaskError as exc:
                raise RolloutError(f"rollout actor {i} failed generating {len(pending.shares[i])} rows: "
                                   f"{exc.cause!r}") from exc
        return [t for i in sorted(results) for t in results[i]]

    def _recover(self, i: int, share: list[int], n: int, exc: Exception) -> list[Trajectory]:
        """Actor i died mid-step: wait for Ray's restart, give it the current weights, redo its share."""
        started = time.perf_counter()
        log.warning("[rollout] actor %d died during generation (%s); waiting for its restart",
                    i, str(exc).splitlines()[0])
        actor = self.actors[i]
        try:
            self._wait_restarted(actor)
            if self.weights_ref is not None:
                ray.get(actor.update_weights.remote(self.weights_ref, self.version))
            trajectories = ray.get(actor.generate.remote(share, n, self.version))
        except ray.exceptions.RayError as again:
            raise RolloutError(f"rollout actor {i} could not be recovered (rollout.max_restarts reached?): "
                               f"{str(again).splitlines()[0]}") from again
        event = {"event": f"rollout actor {i} restarted", "version": self.version, "rows_retried": len(share),
                 "recovery_s": round(time.perf_counter() - started, 2), "time": time.time()}
        self.events.append(event)
        log.warning("[rollout] actor %d restarted at policy version %d; %d rows retried in %.1f s",
                    i, self.version, len(share), event["recovery_s"])
        return trajectories

    @staticmethod
    def _wait_restarted(actor, timeout_s: float = 600.0) -> None:
        """Poll until Ray has restarted the actor and its engine answers (or it is dead for good)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                ray.get(actor.info.remote())
                return
            except ray.exceptions.ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def update_weights(self, weights_ref: ray.ObjectRef, version: int) -> list[dict]:
        """Load new weights into every engine in place; returns each actor's digest and load time."""
        self.weights_ref, self.version = weights_ref, version
        return self._gather(f"the weight update to version {version}",
                            [a.update_weights.remote(weights_ref, version) for a in self.actors])

    def shutdown(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
