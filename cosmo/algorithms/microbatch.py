"""Splitting a rank's batch into micro-batches, and loss weights that do not depend on the split.

DeepSpeed accumulates gradients over micro-batches and averages them over ranks; each micro-batch's
loss is a weighted sum of per-token terms. With weights from `token_weights`, given the totals of the
whole optimizer step over every rank (`UpdateTotals`), the gradient DeepSpeed ends with is the one of
`algorithm.aggregation` over the whole update, however the sequences fall into micro-batches and ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from cosmo.algorithms.names import AGGREGATIONS


def fixed_count(n: int, size: int) -> list[list[int]]:
    """Consecutive micro-batches of `size` sequences (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"micro-batch size must be >= 1, got {size}")
    return [list(range(start, min(start + size, n))) for start in range(0, n, size)]


def pack_by_tokens(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Micro-batches of at most `budget` padded tokens (rows x longest row), longest sequences first.

    Sorting by length before packing keeps the rows of a micro-batch alike, so right-padding to the
    longest adds little. A sequence longer than the budget goes alone into its own micro-batch.
    """
    if budget < 1:
        raise ValueError(f"token budget must be >= 1, got {budget}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        # sorted descending: the first row of a micro-batch is its longest
        if current and (len(current) + 1) * longest > budget:
            batches.append(current)
            current = []
        if not current:
            longest = lengths[i]
        current.append(i)
    if current:
        batches.append(current)
    return batches


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of the padded token slots that hold padding."""
    slots = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1.0 - sum(lengths) / slots if slots else 0.0


@dataclass(frozen=True)
class UpdateTotals:
    """One optimizer step's counts over every rank, exchanged once per step: what the loss divides by."""

    tokens: int  # unmasked tokens
    sequences: int  # sequences with at least one unmasked token
    ranks: int = 1  # DeepSpeed divides the summed gradients by this; the weights multiply it back
    micro_batches: int = 0  # the most micro-batches any rank runs in this step (the others pad to it)


def local_totals(masks: Sequence[Tensor]) -> UpdateTotals:
    """The totals of one rank's micro-batches, as if it were the only rank."""
    return UpdateTotals(tokens=sum(int(m.sum()) for m in masks),
                        sequences=sum(int((m.sum(-1) > 0).sum()) for m in masks), ranks=1, micro_batches=len(masks))


def token_weights(masks: Sequence[Tensor], how: str, totals: UpdateTotals | None = None) -> list[Tensor]:
    """Per-token loss weights for this rank's micro-batches `masks` ([rows, tokens] each) of one optimizer step.

    With N the unmasked tokens and S the non-empty sequences of the step over every rank, R the ranks:
    token_mean: R / N; seq_mean: R / (|y_i| · S) for a token of sequence i. Σ (terms · mask · weight)
    over every micro-batch of every rank, divided by R (DeepSpeed's average), is then exactly the
    aggregation over the whole update. `totals`: the step's `UpdateTotals` (default: this rank alone).
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {how!r}")
    totals = totals or local_totals(masks)
    if how == "token_mean":
        return [m.float() * totals.ranks / max(totals.tokens, 1) for m in masks]
    return [m.float() * totals.ranks / (m.sum(-1, keepdim=True).clamp(min=1) * max(totals.sequences, 1))
            for m in masks]


def place(mask: Tensor, values: Sequence[Sequence[float] | Tensor], dtype: torch.dtype = torch.float32) -> Tensor:
    """A [rows, tokens] tensor holding row r's `values[r]` at its mask positions (in order), 0 elsewhere.

    Extra values are dropped (a response cut by max_length); missing ones stay 0."""
    out = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    for row, vals in enumerate(values):
        positions = mask[row].nonzero().squeeze(-1)
        n = min(len(positions), len(vals))
        out[row, positions[:n]] = torch.as_tensor(vals[:n], dtype=dtype, device=mask.device)
    return out
