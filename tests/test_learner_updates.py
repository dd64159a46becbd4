"""rl_step on one in-process learner rank: several updates per batch, token-budget micro-batches,
activation checkpointing. lr = 0 keeps the weights, so one rank compares several settings."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import torch
from conftest import end_process_group

from cosmo.config import load_config
from learner.engine import OptimSpec

ROOT = Path(__file__).resolve().parents[1]


def _items(n: int) -> list[dict]:
    gen = torch.Generator().manual_seed(1)
    lengths = [3, 17, 6, 25, 4, 11, 30, 8][:n]  # mixed lengths: packing by tokens matters
    return [{"sample_index": i, "response_ids": torch.randint(20, 2000, (k,), generator=gen).tolist(),
             "logprobs": [-7.0] * k, "advantage": (-1.0) ** i * (1 + i / 10), "exclude": False}
            for i, k in enumerate(lengths)]


@pytest.fixture
def rank(tiny_model, builtin_data, tmp_path):
    if "COSMO_LOOPBACK" not in os.environ:
        pytest.fail("torch.distributed tests must run through deploy/loopback.sh (as `make test` does)")

    from learner.actor import LearnerRank

    cfg = load_config(ROOT / "configs" / "tiny-cpu.yaml", [
        f"model.path={tiny_model}", f"data.dir={builtin_data['train'].parent}", f"logging.runs_dir={tmp_path}",
        "model.build_preset=null", "device=cpu", "learner.num_ranks=1", "learner.gradient_checkpointing=true",
        "rl.prompts_per_step=1", "algorithm.group_size=8", "rl.micro_batch_size=4", "rl.mini_batches=2",
        "rl.epochs=2", "learner.grad_clip=0",
    ])
    spec = OptimSpec(lr=0.0, total_steps=1, warmup_steps=0, min_lr_ratio=1.0, micro_batch_size=4, grad_accum=2,
                     updates_per_step=4)
    r = LearnerRank(0, 1, cfg)
    try:
        r.setup(f"file://{tmp_path}/store", str(tiny_model), str(builtin_data["train"]), spec, threads=2)
        yield r
    finally:
        end_process_group()


@pytest.mark.slow
def test_rl_step_updates_budget_and_checkpointing(rank, monkeypatch):
    import learner.actor as actor

    items = _items(8)
    calls: list[dict] = []
    real = actor.policy_loss

    def spy(name, logprobs, old, ref, adv, mask, **kw):
        loss, stats = real(name, logprobs, old, ref, adv, mask, **kw)
        calls.append({"old": old.detach().clone(), "mask": mask.clone(), "truncated_ratio": kw["truncated_ratio"]})
        return loss, stats

    monkeypatch.setattr(actor, "policy_loss", spy)
    before = rank._learner_logprobs(items)

    # 2 mini-batches x 2 epochs = 4 optimizer steps, each over one micro-batch (8 / 2 = 4 = micro_batch_size)
    steps0 = rank.engine.global_steps
    out = rank.rl_step(items)
    assert out["optimizer_steps"] == 4 and rank.engine.global_steps - steps0 == 4
    assert len(calls) == 4  # one micro-batch (4 sequences) per mini-batch update
    # old log-probs: the learner's own before the first update, the same in every update
    for call, idx in zip(calls, ([0, 1, 2, 3], [4, 5, 6, 7]) * 2, strict=True):
        for row, i in enumerate(idx):
            assert torch.equal(call["old"][row][call["mask"][row]], before[i])
        assert call["truncated_ratio"]
    assert set(out) >= {"loss", "pg", "drift", "clip_frac", "entropy", "logprob_gap", "tokens", "grad_norm"}
    assert out["tokens"] == sum(len(it["response_ids"]) for it in items)

    # activation checkpointing is on (config) and recomputes each decoder layer in backward
    module = rank.engine.module
    assert module.is_gradient_checkpointing
    layers = module.model.language_model.layers
    runs = []
    for layer in layers:  # (module hooks do not fire during the recompute; the forward method is called)
        monkeypatch.setattr(layer.mlp, "forward", lambda x, f=layer.mlp.forward: runs.append(1) or f(x))
    rank.cfg.rl.mini_batches, rank.cfg.rl.epochs = 1, 1
    # one micro-batch of all 8 sequences: the reference gradient
    rank.spec = dataclasses.replace(rank.spec, micro_batch_size=8, grad_accum=1, updates_per_step=1)
    reference = rank.rl_step(items)
    assert len(runs) == 2 * len(layers)  # forward + recompute in backward
    module.gradient_checkpointing_disable()
    plain = rank.rl_step(items)
    assert plain["loss"] == pytest.approx(reference["loss"], rel=1e-6)
    assert plain["grad_norm"] == pytest.approx(reference["grad_norm"], rel=1e-5)

    # token budget: several micro-batches of mixed lengths, the same gradient as one big batch
    rank.cfg.learner.max_tokens_per_micro_batch = 200
    packed = rank.rl_step(items)
    assert len(calls) - 6 > 1  # the budget split the 8 sequences into several micro-batches
    # DeepSpeed did not divide by its fixed accumulation count: the same gradient norm
    assert packed["grad_norm"] == pytest.approx(reference["grad_norm"], rel=1e-5)
