"""The order training rows are drawn in: seeded epochs over the file, or fixed per-task quotas per batch.

Both samplers save and restore their position, so a resumed run draws exactly the rows an
uninterrupted run would have drawn."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from fractions import Fraction

from cosmo.config import ConfigError, CosmoConfig

log = logging.getLogger("cosmo")


class EpochSampler:
    """Sample indices in a seeded random order, epoch after epoch, without repeats within an epoch."""

    def __init__(self, n_rows: int, seed: int) -> None:
        if n_rows == 0:
            raise ValueError("the training file has no rows")
        self.n_rows, self.seed = n_rows, seed
        self.epoch, self.position = 0, 0
        self._order = self._shuffled(0)

    def _shuffled(self, epoch: int) -> list[int]:
        order = list(range(self.n_rows))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def state_dict(self) -> dict:
        return {"n_rows": self.n_rows, "seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        """Continue where a saved run stopped; the data must be the same size as then."""
        if "n_rows" not in state:
            raise ConfigError("the checkpoint's data order is a task mixture (data.task_weights was set); resume "
                              "with the same data.task_weights")
        if state["n_rows"] != self.n_rows or state["seed"] != self.seed:
            raise ConfigError(f"the checkpoint's data order was for {state['n_rows']} rows with seed "
                              f"{state['seed']}, this run has {self.n_rows} rows with seed {self.seed}: resume "
                              "with the same data and seed")
        self.epoch, self.position = state["epoch"], state["position"]
        self._order = self._shuffled(self.epoch)

    def next_batch(self, size: int) -> list[int]:
        batch: list[int] = []
        while len(batch) < size:
            if self.position == self.n_rows:
                self.epoch += 1
                self.position = 0
                self._order = self._shuffled(self.epoch)
            take = min(size - len(batch), self.n_rows - self.position)
            batch += self._order[self.position : self.position + take]
            self.position += take
        return batch


class MixtureSampler:
    """Batches with a fixed share per task (`data.task_weights`), each task in its own seeded epochs.

    A batch of `size` holds size x w_t / sum(w) rows of task t, rounded by largest remainder so the
    quotas sum to `size`; among tasks with equal remainders the extra rows go first to the task after
    the one that got them last batch (the sorted task list rotates by one every batch). Each task's rows
    are drawn from their own shuffled order, without repeats within that task's epoch, and the batch is
    shuffled. Tasks without weight are never drawn. `epoch` is the smallest epoch over the weighted
    tasks (how many full passes the slowest task has completed); `epochs` has them all.
    """

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float], seed: int) -> None:
        self.seed = seed
        self.weights = {t: float(weights[t]) for t in sorted(weights) if weights[t] > 0}
        if not self.weights:
            raise ConfigError("data.task_weights: at least one task needs a weight > 0")
        self.rows: dict[str, list[int]] = {t: [] for t in self.weights}
        for i, task in enumerate(tasks):
            if task in self.rows:
                self.rows[task].append(i)
        empty = [t for t, rows in self.rows.items() if not rows]
        if empty:
            raise ConfigError(f"data.task_weights gives weight to {', '.join(empty)}, but the training file has "
                              "no rows of that task: set its weight to 0 or add rows")
        self.epochs = dict.fromkeys(self.weights, 0)
        self.positions = dict.fromkeys(self.weights, 0)
        self.batches = 0
        self._orders = {t: self._shuffled(t, 0) for t in self.weights}

    @property
    def epoch(self) -> int:
        return min(self.epochs.values())

    def _shuffled(self, task: str, epoch: int) -> list[int]:
        order = list(self.rows[task])
        random.Random(f"cosmo-mixture/{self.seed}/{task}/{epoch}").shuffle(order)
        return order

    def quotas(self, size: int) -> dict[str, int]:
        """Rows per task in the next batch of `size` (exact arithmetic: no float ties)."""
        exact = {t: size * Fraction(w) / sum(Fraction(v) for v in self.weights.values())
                 for t, w in self.weights.items()}
        counts = {t: math.floor(x) for t, x in exact.items()}
        tasks = list(self.weights)
        turn = self.batches % len(tasks)
        rotated = tasks[turn:] + tasks[:turn]
        # largest remainder first; sorted() is stable, so equal remainders keep the rotated order
        for t in sorted(rotated, key=lambda t: counts[t] - exact[t])[: size - sum(counts.values())]:
            counts[t] += 1
        return counts

    def _take(self, task: str, n: int) -> list[int]:
        out: list[int] = []
        rows = len(self.rows[task])
        while len(out) < n:
            if self.positions[task] == rows:
                self.epochs[task] += 1
                self.positions[task] = 0
                self._orders[task] = self._shuffled(task, self.epochs[task])
            take = min(n - len(out), rows - self.positions[task])
            out += self._orders[task][self.positions[task] : self.positions[task] + take]
            self.positions[task] += take
        return out

    def next_batch(self, size: int) -> list[int]:
        batch: list[int] = []
        for task, n in self.quotas(size).items():
            batch += self._take(task, n)
        random.Random(f"cosmo-mixture/{self.seed}/batch/{self.batches}").shuffle(batch)
        self.batches += 1
        return batch

    def state_dict(self) -> dict:
        return {"kind": "task_mixture", "seed": self.seed, "weights": dict(self.weights),
                "task_rows": {t: len(r) for t, r in self.rows.items()}, "epochs": dict(self.epochs),
                "positions": dict(self.positions), "batches": self.batches}

    def load_state_dict(self, state: dict) -> None:
        """Continue where a saved run stopped; the data, weights and seed must be the same as then."""
        if state.get("kind") != "task_mixture":
            raise ConfigError("the checkpoint's data order is a plain epoch order (data.task_weights was empty), "
                              "this run sets data.task_weights: resume with the same data config")
        mine = {"seed": self.seed, "weights": self.weights, "task_rows": {t: len(r) for t, r in self.rows.items()}}
        saved = {k: state[k] for k in mine}
        if saved != mine:
            raise ConfigError(f"the checkpoint's data order was for {saved}, this run has {mine}: resume with "
                              "the same data, data.task_weights and seed")
        self.epochs, self.positions = dict(state["epochs"]), dict(state["positions"])
        self.batches = state["batches"]
        self._orders = {t: self._shuffled(t, self.epochs[t]) for t in self.weights}


def make_sampler(cfg: CosmoConfig, rows: Sequence, seed: int) -> EpochSampler | MixtureSampler:
    """The training stages' row order: plain epochs over the file when `data.task_weights` is empty,
    else a MixtureSampler over the rows' tasks (rows: the training file's Samples, in file order)."""
    weights = cfg.data.task_weights
    if not weights:
        return EpochSampler(len(rows), seed)
    tasks = [row.task for row in rows]
    sampler = MixtureSampler(tasks, weights, seed)
    unweighted = sorted({t for t in tasks if t not in sampler.weights})
    if unweighted:
        log.warning("data.task_weights: rows of %s have no weight and are never sampled", ", ".join(unweighted))
    log.info("task mixture: %s", ", ".join(f"{t} {w:g} ({len(sampler.rows[t])} rows)"
                                           for t, w in sampler.weights.items()))
    return sampler
