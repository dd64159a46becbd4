"""Group-relative advantages: each response's reward against the other responses to the same prompt."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence

import torch
from torch import Tensor

from cosmo.algorithms.names import WEIGHTS


def group_advantages(rewards: Tensor, weight: str = "std", eps: float = 1e-9) -> Tensor:
    """A_k = ω(x)·(R_k − mean_group R) for rewards shaped [groups, samples_per_group].

    ω: `std` → 1/(std_group + eps) (GRPO's normalisation, the CPGD default; unbiased std);
    `equal` → 1; `clip_filter_like` → min(3, B / (B − #groups with zero std)) for the whole batch,
    which scales the signal up when many groups carry none. Groups with equal rewards get A = 0.
    """
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(f"rewards must be [groups, samples>=2], got shape {tuple(rewards.shape)}")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if weight == "std":
        return centred / (rewards.std(dim=1, keepdim=True) + eps)
    if weight == "equal":
        return centred
    if weight == "clip_filter_like":
        groups = rewards.shape[0]
        flat = int((rewards.std(dim=1) == 0).sum())
        scale = 3.0 if flat == groups else min(3.0, groups / (groups - flat))
        return centred * scale
    raise ValueError(f"advantage weight must be one of {WEIGHTS}, got {weight!r}")


class RefusalLedger:
    """The pushes toward refusing and toward answering of the last `window - 1` batches, per stratum,
    which `refusal_balanced` weighs together with the current batch's.

    Why: balanced batch by batch, a batch with no group on one side (every look-alike drawn was answered
    by every sample) has its other side scaled to nothing, so a policy drifting toward answering is
    never pushed back on the harmful requests it now complies with. Over a window, such a batch's push
    is matched against the pushes of the batches before it. Saved in checkpoints (`state_dict`), so a
    resumed run balances as the uninterrupted one would."""

    def __init__(self, window: int = 1) -> None:
        if window < 1:
            raise ValueError(f"a refusal-balance window is >= 1 batches, got {window}")
        self.past: deque[list[list]] = deque(maxlen=window - 1)

    def earlier(self, key: Hashable) -> tuple[float, float]:
        """The summed (toward refusing, toward answering) pushes of stratum `key` in the past batches."""
        sums = [0.0, 0.0]
        for batch in self.past:
            for k, refusing, answering in batch:
                if k == key:
                    sums[0] += refusing
                    sums[1] += answering
        return sums[0], sums[1]

    def record(self, pushes: dict[Hashable, tuple[float, float]]) -> None:
        if self.past.maxlen:
            self.past.append([[k, r, a] for k, (r, a) in pushes.items()])

    def state_dict(self) -> list[list[list]]:
        return [list(batch) for batch in self.past]

    def load_state_dict(self, state: list[list[list]]) -> None:
        self.past.clear()
        for batch in state:
            self.record({k: (r, a) for k, r, a in batch})


def refusal_balanced(adv: Tensor, refused: Tensor, strata: Sequence[Hashable] | None = None,
                     ledger: RefusalLedger | None = None) -> tuple[Tensor, dict[str, float]]:
    """Advantages [groups, samples] rescaled so that the batch pushes as hard toward answering as toward refusing.

    A group's push toward refusing is Σ_k A_k·refused_k: positive when it rewards its refusals over its
    answers, negative when the reverse, zero when all its responses refuse or all answer. Within each
    stratum (`strata`, one key per group; the driver passes the row's modality), the side (the groups
    pushing toward refusing, or those pushing toward answering) with the larger total push is scaled down
    to the other's. Each group stays centred and keeps its order of preference. Why: a small model that
    cannot tell a new harmful request from a benign one moves its overall readiness to refuse with
    whichever side pushes harder, for every request, and image rows pushing one way do not hold text rows
    (docs/results.md); balanced, a step changes which requests are refused, not how often the model refuses
    what it has not learned. `refused`: bool, shaped as `adv`. With a `ledger` the totals compared also
    count its earlier batches' pushes (a window of batches; this batch's are recorded in it); the scale
    still applies to this batch's groups only. The statistics report this batch's pushes.
    """
    push = (adv * refused.to(adv.dtype)).sum(dim=1)
    keys = [0] * len(push) if strata is None else list(strata)
    if len(keys) != len(push):
        raise ValueError(f"{len(keys)} strata for {len(push)} groups")
    scale = torch.ones_like(push)
    pushes: dict[Hashable, tuple[float, float]] = {}  # this batch's (toward refusing, toward answering) per stratum
    for key in dict.fromkeys(keys):
        mine = torch.tensor([k == key for k in keys])
        up, down = mine & (push > 0), mine & (push < 0)
        toward_refusing, toward_answering = float(push[up].sum()), float(-push[down].sum())
        pushes[key] = (toward_refusing, toward_answering)
        past_refusing, past_answering = ledger.earlier(key) if ledger is not None else (0.0, 0.0)
        refusing, answering = toward_refusing + past_refusing, toward_answering + past_answering
        weaker = min(refusing, answering)
        if refusing > weaker:
            scale[up] = weaker / refusing
        if answering > weaker:
            scale[down] = weaker / answering
    if ledger is not None:
        ledger.record(pushes)
    totals = {"advantage/push_refusing": sum((r for r, _ in pushes.values()), 0.0),
              "advantage/push_answering": sum((a for _, a in pushes.values()), 0.0)}
    return adv * scale[:, None], totals
