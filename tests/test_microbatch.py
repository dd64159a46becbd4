"""Micro-batches by token budget, and loss weights that give the gradient of one big batch."""

from __future__ import annotations

import pytest
import torch

from cosmo.algorithms import policy_loss
from cosmo.algorithms.microbatch import (
    UpdateTotals,
    fixed_count,
    local_totals,
    pack_by_tokens,
    padding_fraction,
    place,
    token_weights,
)


def test_pack_by_tokens_by_hand():
    lengths = [5, 2, 9, 3, 7]
    # longest first: 9 alone (2 x 9 > 14), then 7 + 5 (2 x 7 = 14), then 3 + 2
    batches = pack_by_tokens(lengths, 14)
    assert batches == [[2], [4, 0], [3, 1]]
    assert padding_fraction(lengths, batches) == pytest.approx(1 - 26 / 29)  # slots 9 + 14 + 6
    assert pack_by_tokens([20, 1], 10) == [[0], [1]]  # longer than the budget: alone
    assert fixed_count(5, 2) == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError, match="budget"):
        pack_by_tokens(lengths, 0)


def test_place_puts_values_at_mask_positions():
    mask = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    assert place(mask, [[2.0, 3.0], [4.0, 9.0]]).tolist() == [[0, 2, 3, 0], [4, 0, 0, 0]]


@pytest.mark.parametrize("aggregation", ["token_mean", "seq_mean"])
def test_packed_micro_batches_give_the_gradient_of_one_big_batch(aggregation):
    torch.manual_seed(0)
    lengths = [3, 11, 6, 1, 8, 4]
    head = torch.nn.Linear(16, 50)
    hidden = [torch.randn(n, 16) for n in lengths]
    targets = [torch.randint(0, 50, (n,)) for n in lengths]
    adv = torch.tensor([1.0, -0.5, 2.0, -1.0, 0.3, -2.0])

    def batch(rows):
        width = max(lengths[i] for i in rows)
        h, t = torch.zeros(len(rows), width, 16), torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.bool)
        for r, i in enumerate(rows):
            h[r, : lengths[i]], t[r, : lengths[i]], mask[r, : lengths[i]] = hidden[i], targets[i], True
        logp = torch.log_softmax(head(h), -1).gather(-1, t[..., None]).squeeze(-1)
        return logp, mask

    def grads():
        out = [p.grad.clone() for p in head.parameters()]
        head.zero_grad()
        return out

    logp, mask = batch(list(range(6)))
    old = logp.detach() - 0.05  # off-policy, so the clip and drift act
    policy_loss("cpgd", logp, old, None, adv, mask, aggregation=aggregation)[0].backward()
    want = grads()
    micro = pack_by_tokens(lengths, 12)
    assert len(micro) >= 3  # mixed lengths: several micro-batches of different sizes
    parts = [batch(rows) for rows in micro]
    weights = token_weights([m for _, m in parts], aggregation)
    for rows, (lp, m), w in zip(micro, parts, weights, strict=True):
        policy_loss("cpgd", lp, lp.detach() - 0.05, None, adv[rows], m, aggregation=aggregation,
                    weights=w)[0].backward()
    for got, expected in zip(grads(), want, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)

    # two ranks, each splitting its half its own way (one micro-batch of 3 vs three of 1): with the step's
    # totals over both ranks, the average of the ranks' gradients (DeepSpeed's all-reduce) is the same
    halves = ([[0, 1, 2]], [[3], [4], [5]])
    rank_parts = [[batch(rows) for rows in micro] for micro in halves]
    every = [m for parts in rank_parts for _, m in parts]
    n_tokens, n_seqs = sum(lengths), len(lengths)  # by hand: every sequence has tokens
    totals = UpdateTotals(tokens=n_tokens, sequences=n_seqs, ranks=2, micro_batches=3)
    assert local_totals(every) == UpdateTotals(tokens=n_tokens, sequences=n_seqs, ranks=1, micro_batches=4)
    summed = [torch.zeros_like(p) for p in head.parameters()]
    for micro, parts in zip(halves, rank_parts, strict=True):
        weights = token_weights([m for _, m in parts], aggregation, totals)
        for rows, (lp, m), w in zip(micro, parts, weights, strict=True):
            policy_loss("cpgd", lp, lp.detach() - 0.05, None, adv[rows], m, aggregation=aggregation,
                        weights=w)[0].backward()
        summed = [acc + g for acc, g in zip(summed, grads(), strict=True)]
    for got, expected in zip(summed, want, strict=True):
        torch.testing.assert_close(got / 2, expected, atol=1e-6, rtol=1e-6)


def test_token_weights_by_hand():
    masks = [torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool), torch.tensor([[1, 1, 1]], dtype=torch.bool)]
    # this rank: 6 tokens of 3 sequences; the step over 2 ranks: 10 tokens of 5 sequences
    totals = UpdateTotals(tokens=10, sequences=5, ranks=2)
    tm = token_weights(masks, "token_mean", totals)
    torch.testing.assert_close(tm[0], torch.tensor([[0.2, 0.2, 0.0], [0.2, 0.0, 0.0]]))
    torch.testing.assert_close(tm[1], torch.tensor([[0.2, 0.2, 0.2]]))
    sm = token_weights(masks, "seq_mean", totals)  # 2 / (|y| x 5)
    torch.testing.assert_close(sm[0], torch.tensor([[0.2, 0.2, 0.0], [0.4, 0.0, 0.0]]))
    torch.testing.assert_close(sm[1], torch.tensor([[2 / 15, 2 / 15, 2 / 15]]))
    # alone (no totals): this rank's own 6 tokens, 3 sequences, one rank
    torch.testing.assert_close(token_weights(masks, "token_mean")[1], torch.full((1, 3), 1 / 6))


def test_mini_batches_must_divide_each_ranks_share():
    from pathlib import Path

    from cosmo.config import ConfigError, load_config

    recipe = Path(__file__).resolve().parents[1] / "configs" / "tiny-cpu.yaml"
    # 8 prompts x 8 samples / 2 ranks = 32 trajectories per rank: 4 divides it, 3 does not
    assert load_config(recipe, ["rl.mini_batches=4", "rl.epochs=2"]).rl.mini_batches == 4
    with pytest.raises(ConfigError, match="rl.mini_batches"):
        load_config(recipe, ["rl.mini_batches=3"])
    with pytest.raises(ConfigError, match="algorithm.clip_schedule"):
        load_config(recipe, ["algorithm.clip_schedule=cosine"])
