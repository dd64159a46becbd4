"""The learner as the driver sees it: N `LearnerRank` Ray actors in one placement group.

Every method fans one call out to all ranks and waits; a rank that dies or raises becomes a
`LearnerError` that names the rank and what it was doing, instead of a hang or a bare traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from cosmo.config import CosmoConfig
from learner.actor import LearnerRank, resolve_device
from learner.engine import OptimSpec


class LearnerError(RuntimeError):
    """A learner rank failed; the message says which and during what."""


class LearnerGroup:
    """Creates the ranks (one CPU, or one GPU, each) and runs collective calls on them."""

    def __init__(self, cfg: CosmoConfig, *, placement_timeout_s: float = 120.0) -> None:
        self.cfg = cfg
        n = cfg.learner.num_ranks
        use_gpu = resolve_device(cfg.device).type == "cuda"
        bundle = {"CPU": 1, "GPU": 1} if use_gpu else {"CPU": 1}
        self.pg = placement_group([bundle] * n, strategy="PACK", name=f"{cfg.logging.run_name}-learner")
        ready, _ = ray.wait([self.pg.ready()], timeout=placement_timeout_s)
        if not ready:
            remove_placement_group(self.pg)
            raise LearnerError(
                f"the Ray cluster cannot place {n} learner ranks of {bundle} within {placement_timeout_s:.0f} s "
                f"(cluster resources: {ray.cluster_resources()}); lower learner.num_ranks or add nodes"
            )
        remote_cls = ray.remote(LearnerRank)
        self.ranks = [
            remote_cls.options(
                num_cpus=1,
                num_gpus=1 if use_gpu else 0,
                scheduling_strategy=PlacementGroupSchedulingStrategy(self.pg, placement_group_bundle_index=i),
            ).remote(i, n, cfg)
            for i in range(n)
        ]

    def _all(self, what: str, method: str, per_rank_args: Sequence[tuple] | None = None, **kwargs: Any) -> list:
        refs = [
            getattr(actor, method).remote(*(per_rank_args[i] if per_rank_args else ()), **kwargs)
            for i, actor in enumerate(self.ranks)
        ]
        return self._gather(what, refs)

    @staticmethod
    def _gather(what: str, refs: list) -> list:
        results = []
        for i, ref in enumerate(refs):
            try:
                results.append(ray.get(ref))
            except ray.exceptions.RayActorError as exc:
                raise LearnerError(f"learner rank {i} died during {what}: {exc}") from exc
            except ray.exceptions.RayTaskError as exc:
                raise LearnerError(f"learner rank {i} failed during {what}: {exc.cause!r}") from exc
        return results

    def setup(self, model_path: str, train_file: str, spec: OptimSpec) -> list[dict]:
        addr, port = self._gather("store address lookup", [self.ranks[0].store_address.remote()])[0]
        threads = self.cfg.learner.threads_per_rank or 1
        return self._all("setup", "setup", None, master_addr=addr, master_port=port, model_path=model_path,
                         train_file=train_file, spec=spec, threads=threads)

    def sft_step(self, indices: Sequence[int]) -> dict:
        """Split one global batch of sample indices evenly over the ranks and take one step."""
        n = len(self.ranks)
        share = len(indices) // n
        parts = [(list(indices[i * share : (i + 1) * share]),) for i in range(n)]
        stats = self._all("an SFT step", "sft_step", parts)
        tokens = sum(s["tokens"] for s in stats)
        return {
            "loss": sum(s["loss"] * s["tokens"] for s in stats) / max(tokens, 1),
            "tokens": tokens,
            "lr": stats[0]["lr"],
            "grad_norm": stats[0]["grad_norm"],
            "step_s": max(s["step_s"] for s in stats),
        }

    def save(self, out_dir: str, meta: dict) -> str:
        return self._all(f"checkpoint save to {out_dir}", "save", None, out_dir=out_dir, meta=meta)[0]

    def param_digests(self) -> list[float]:
        return self._all("a weight digest", "param_digest")

    def shutdown(self) -> None:
        for actor in self.ranks:
            ray.kill(actor)
        remove_placement_group(self.pg)
