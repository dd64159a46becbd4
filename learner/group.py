"""The learner as the driver sees it: N `LearnerRank` Ray actors in one placement group.

Every method fans one call out to all ranks and waits at most `learner.timeout_s` (at setup
`learner.startup_timeout_s`); a rank that dies, raises or hangs becomes a `LearnerError` that names
the rank and what it was doing, instead of a hang or a bare traceback. Ranks are not restarted:
a new process cannot rejoin the torch.distributed group, so recovery is a relaunch from the last
checkpoint (`resume=auto`).
"""

from __future__ import annotations

import logging
import secrets
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from cosmo.config import CosmoConfig
from cosmo.trajectory import LearnerItem
from cosmo.workers import HUNG, OK, WorkerError, settle
from learner.actor import LearnerRank, resolve_device
from learner.engine import OptimSpec

log = logging.getLogger("cosmo")


def _process_state(pid: int) -> str | None:
    """The kernel's state of a local process (running, sleeping, stopped, zombie...), None if unknown."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            line = next(x for x in f if x.startswith("State:"))
    except (OSError, StopIteration):
        return None
    return line.split("(", 1)[-1].rstrip(")\n") if "(" in line else None


class LearnerError(WorkerError):
    """A learner rank failed; the message says which and during what."""


class NonFiniteError(LearnerError):
    """Too many consecutive updates had a non-finite loss or gradient norm."""


class LearnerGroup:
    """Creates the ranks (one CPU, or one GPU, each) and runs collective calls on them."""

    def __init__(self, cfg: CosmoConfig, *, placement_timeout_s: float = 120.0,
                 rank_cls: type = LearnerRank) -> None:
        """`rank_cls`: the rank's class (a stand-in with the same methods in the weight-sync contract tests)."""
        self.cfg = cfg
        n = cfg.learner.num_ranks
        use_gpu = resolve_device(cfg.device).type == "cuda"
        cpus = cfg.learner.cpus_per_rank
        bundle = {"CPU": cpus, "GPU": 1} if use_gpu else {"CPU": cpus}
        self.pg = placement_group([bundle] * n, strategy="PACK", name=f"{cfg.logging.run_name}-learner")
        ready, _ = ray.wait([self.pg.ready()], timeout=placement_timeout_s)
        if not ready:
            remove_placement_group(self.pg)
            raise LearnerError(
                f"the Ray cluster cannot place {n} learner ranks of {bundle} within {placement_timeout_s:.0f} s "
                f"(cluster resources: {ray.cluster_resources()}); lower learner.num_ranks or add nodes"
            )
        self.skipped_in_a_row = 0
        self.processes: list[dict] = []  # each rank's pid and host, once it answers
        self.store_file: Path | None = None  # the file rendezvous of ranks on one node
        remote_cls = ray.remote(rank_cls)
        self.ranks = []
        try:
            self.ranks = [
                remote_cls.options(
                    num_cpus=cpus,
                    num_gpus=1 if use_gpu else 0,
                    scheduling_strategy=PlacementGroupSchedulingStrategy(self.pg, placement_group_bundle_index=i),
                ).remote(i, n, cfg)
                for i in range(n)
            ]
            self.processes = self._gather("start", [rank.process.remote() for rank in self.ranks],
                                          timeout_key="startup_timeout_s")
        except BaseException:
            # nobody holds this group to shut it down: its named placement group would outlive the
            # failure and refuse the next group of the same run name in this Ray cluster
            self.shutdown()
            raise

    def _all(self, what: str, method: str, per_rank_args: Sequence[tuple] | None = None, *,
             timeout_key: str = "timeout_s", **kwargs: Any) -> list:
        refs = [
            getattr(actor, method).remote(*(per_rank_args[i] if per_rank_args else ()), **kwargs)
            for i, actor in enumerate(self.ranks)
        ]
        return self._gather(what, refs, timeout_key=timeout_key)

    def _gather(self, what: str, refs: list, ranks: Sequence[int] | None = None, *,
                timeout_key: str = "timeout_s") -> list:
        """Results in order; the first rank to die or raise ends the wait at once, and ranks that give
        no answer within `learner.<timeout_key>` (a hung process, or its peers blocked in a collective
        with it) end the run, named with their process and its state."""
        ranks = list(ranks) if ranks is not None else list(range(len(refs)))
        results: list = [None] * len(refs)
        timeout = getattr(self.cfg.learner, timeout_key)
        hung = []
        for s in settle(dict(enumerate(refs)), time.perf_counter() + timeout):
            if s.status == HUNG:
                hung.append(ranks[s.key])
            elif s.status != OK:
                raise LearnerError(f"learner rank {ranks[s.key]} {s.status} during {what}: {s.detail}") from s.error
            else:
                results[s.key] = s.value
        if hung:
            raise LearnerError(f"learner ranks {hung} gave no answer within learner.{timeout_key}="
                               f"{timeout:g} s during {what}: {self._describe(hung)}")
        return results

    def _describe(self, ranks: list[int]) -> str:
        """'rank 1: pid 4242 on 10.0.0.5 (stopped)': the state is read from /proc when the rank runs on
        this host (stopped = SIGSTOP or a debugger; sleeping = waiting, e.g. in a collective)."""
        parts = []
        for r in ranks:
            if r >= len(self.processes):  # hung before it reported its process
                parts.append(f"rank {r}: process not known yet")
                continue
            proc = self.processes[r]
            state = _process_state(proc["pid"]) if proc["host"] == ray.util.get_node_ip_address() else None
            parts.append(f"rank {r}: pid {proc['pid']} on {proc['host']}" + (f" ({state})" if state else ""))
        return "; ".join(parts)

    def setup(self, model_path: str, train_file: str, spec: OptimSpec, reference: str | None = None,
              train_state: str | None = None, sft_file: str | None = None) -> list[dict]:
        """Load the model on every rank; `reference`: a frozen model for the KL penalty;
        `train_state`: restore optimizer, schedule, counters and RNG from a checkpoint (resume);
        `sft_file`: the rows of the RL updates' supervised loss (algorithm.sft_coef)."""
        threads = self.cfg.learner.threads_per_rank or 1
        return self._all("setup", "setup", None, timeout_key="startup_timeout_s", rendezvous=self._rendezvous(),
                         model_path=model_path, train_file=train_file, spec=spec, threads=threads,
                         reference=reference, train_state=train_state, sft_file=sft_file)

    def _rendezvous(self) -> str:
        """Ranks on one node meet through a fresh file (no TCP listener at all); ranks on several
        nodes through a TCP store on rank 0's node."""
        if len({p["host"] for p in self.processes}) == 1:
            self.store_file = Path(tempfile.gettempdir()) / f"cosmo-learner-{secrets.token_hex(8)}"
            return f"file://{self.store_file}"
        addr, port = self._gather("store address lookup", [self.ranks[0].store_address.remote()], [0],
                                  timeout_key="startup_timeout_s")[0]
        return f"tcp://{addr}:{port}"

    def sft_step(self, indices: Sequence[int]) -> dict:
        """Split one global batch of sample indices evenly over the ranks and take one SFT step."""
        return self._step("an SFT step", "sft_step", indices)

    def rl_step(self, items: Sequence[LearnerItem]) -> dict:
        """Split one batch of scored trajectories evenly over the ranks and take one policy update."""
        return self._step("an RL step", "rl_step", items)

    def _step(self, what: str, method: str, work: Sequence) -> dict:
        n = len(self.ranks)
        share = len(work) // n
        stats = self._all(what, method, [(list(work[i * share : (i + 1) * share]),) for i in range(n)])
        tokens = sum(s["tokens"] for s in stats)
        counts = ("rows", "truncated_rows", "micro_batches", "padded_micro_batches")  # RL: summed over ranks
        per_rank = ("tokens", "lr", "grad_norm", "step_s", "skipped", *counts)
        merged = {k: sum(s[k] * s["tokens"] for s in stats) / max(tokens, 1) for k in stats[0] if k not in per_rank}
        # the gradient norm is global, so every rank takes (or skips) the same optimizer step
        merged.update(tokens=tokens, lr=stats[0]["lr"], grad_norm=stats[0]["grad_norm"],
                      step_s=max(s["step_s"] for s in stats), skipped=max(s["skipped"] for s in stats))
        merged.update({k: sum(s[k] for s in stats) for k in counts if k in stats[0]})
        if "rows" in merged:  # responses data.max_length cut before the loss (the reward scored them whole)
            merged["truncated_fraction"] = merged["truncated_rows"] / max(merged["rows"], 1)
        self._count_skips(what, merged)
        return merged

    def _count_skips(self, what: str, stats: dict) -> None:
        """A non-finite loss or gradient norm makes DeepSpeed skip the optimizer and scheduler step;
        `learner.max_skipped_steps` of those in a row stop the run instead of spinning on."""
        if not stats["skipped"]:
            self.skipped_in_a_row = 0
            return
        self.skipped_in_a_row += 1
        limit = self.cfg.learner.max_skipped_steps
        log.warning("[learner] %s skipped: non-finite loss %s or gradient norm (%d in a row, limit %d)", what,
                    stats.get("loss"), self.skipped_in_a_row, limit)
        if self.skipped_in_a_row >= limit:
            raise NonFiniteError(f"{limit} consecutive updates had a non-finite loss or gradient norm (last loss "
                                 f"{stats.get('loss')}); lower the learning rate, or check the rewards and data")

    def export_weights(self) -> tuple[ray.ObjectRef, str]:
        """Rank 0's packed weights as an object ref (the driver hands it on without fetching the
        bytes) and their digest, to check every rollout actor against."""
        pairs = [actor.export_weights.options(num_returns=2).remote() for actor in self.ranks]
        blob_ref, digest_ref = pairs[0]
        # every rank takes part in ZeRO-3's gather; rank 0's digest comes once its blob is made
        return blob_ref, self._gather("a weight export", [digest_ref] + [d for _, d in pairs[1:]])[0]

    def save(self, out_dir: str, meta: dict, driver_state: dict) -> str:
        """A complete checkpoint in three phases: staging dir, every rank's files, manifest + rename."""
        what = f"checkpoint save to {out_dir}"
        tmp = self._gather(what, [self.ranks[0].prepare_checkpoint.remote(out_dir)], [0])[0]
        self._all(what, "save", None, tmp=tmp)
        return self._gather(what, [self.ranks[0].finalize_checkpoint.remote(tmp, out_dir, meta, driver_state)],
                            [0])[0]

    def state_digests(self) -> list[dict]:
        return self._all("a training-state digest", "state_digest")

    def param_digests(self) -> list[float]:
        return self._all("a weight digest", "param_digest")

    def shutdown(self) -> None:
        for actor in self.ranks:
            ray.kill(actor)
        remove_placement_group(self.pg)
        if self.store_file is not None:  # torch removes it only when every rank closes the store
            self.store_file.unlink(missing_ok=True)
