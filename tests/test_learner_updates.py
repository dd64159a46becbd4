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
from cosmo.data import load_jsonl
from cosmo.trajectory import LearnerItem
from learner.engine import OptimSpec

ROOT = Path(__file__).resolve().parents[1]


def _items(n: int) -> list[dict]:
    gen = torch.Generator().manual_seed(1)
    lengths = [3, 17, 6, 25, 4, 11, 30, 8][:n]  # mixed lengths: packing by tokens matters
    return [LearnerItem(i, torch.randint(20, 2000, (k,), generator=gen).tolist(), [-7.0] * k,
                        (-1.0) ** i * (1 + i / 10))
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
                     mini_batches=2, epochs=2)
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
    assert out["tokens"] == sum(len(it.response_ids) for it in items)

    # activation checkpointing is on (config) and recomputes each decoder layer in backward
    module = rank.engine.module
    assert module.is_gradient_checkpointing
    layers = module.model.language_model.layers
    runs = []
    for layer in layers:  # (module hooks do not fire during the recompute; the forward method is called)
        monkeypatch.setattr(layer.mlp, "forward", lambda x, f=layer.mlp.forward: runs.append(1) or f(x))
    # one micro-batch of all 8 sequences: the reference gradient
    rank.spec = dataclasses.replace(rank.spec, micro_batch_size=8, grad_accum=1, mini_batches=1, epochs=1)
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


@pytest.mark.slow
def test_the_gradient_does_not_depend_on_micro_batches_token_budget_or_ranks(ray_cluster, tiny_model, builtin_data,
                                                                              tmp_path):
    """One batch of 16 trajectories (lr 0: the weights stay): every split gives the same gradient norm, and
    2 ranks whose token budgets pack their halves into different numbers of micro-batches finish."""
    if "COSMO_LOOPBACK" not in os.environ:
        pytest.fail("torch.distributed tests must run through deploy/loopback.sh (as `make test` does)")
    from learner.actor import LearnerRank
    from learner.group import LearnerGroup

    gen = torch.Generator().manual_seed(2)
    rows = load_jsonl(builtin_data["train"])
    with_image = [i for i, r in enumerate(rows) if r.images][:8]
    text_only = [i for i, r in enumerate(rows) if not r.images][:8]
    # the first rank's half: long responses to image rows; the second's: short ones to text rows. A token
    # budget packs them unevenly, and the passes the second rank pads with hold no image while the first
    # rank's do (the vision tower must still run in the same order on both)
    lengths = [31, 24, 40, 28, 35, 22, 38, 26] + [3, 5, 2, 4, 6, 3, 5, 2]
    items = [LearnerItem(row, torch.randint(20, 2000, (k,), generator=gen).tolist(), [-7.0] * k,
                         (-1.0) ** i * (1 + i / 10))
             for i, (row, k) in enumerate(zip(with_image + text_only, lengths, strict=True))]

    def cfg(ranks: int, budget: int = 0):
        return load_config(ROOT / "configs" / "tiny-cpu.yaml", [
            f"model.path={tiny_model}", f"data.dir={builtin_data['train'].parent}", f"logging.runs_dir={tmp_path}",
            "model.build_preset=null", "device=cpu", f"learner.num_ranks={ranks}", "rl.prompts_per_step=2",
            "algorithm.group_size=8", "rl.micro_batch_size=8", "learner.grad_clip=0",
            f"learner.max_tokens_per_micro_batch={budget}",
        ])

    def prompts(rank: LearnerRank, chosen: list[dict]) -> list[int]:
        """Each row's prompt length alone (images expanded), from the model's own processor."""
        from cosmo.data import load_images
        from cosmo.models.chat import chat_prompt

        out = []
        for it in chosen:
            row = rows[it.sample_index]
            text = chat_prompt(rank.lm, row.prompt, len(row.images))
            if row.images:
                enc = rank.lm.processor(text=[text], images=load_images(row), add_special_tokens=False)
                out.append(len(enc["input_ids"][0]))
            else:
                out.append(len(rank.lm.tokenizer(text, add_special_tokens=False)["input_ids"]))
        return out

    def spec(mb: int, accum: int) -> OptimSpec:
        return OptimSpec(lr=0.0, total_steps=1, warmup_steps=0, min_lr_ratio=1.0, micro_batch_size=mb,
                         grad_accum=accum)

    one = LearnerRank(0, 1, cfg(1))
    norms = {}
    try:
        one.setup(f"file://{tmp_path}/store", str(tiny_model), str(builtin_data["train"]), spec(8, 2), threads=2)
        for mb in (1, 2, 16):
            one.spec = spec(mb, 16 // mb)
            out = one.rl_step(items)
            assert out["micro_batches"] == 16 // mb and out["padded_micro_batches"] == 0
            norms[f"1 rank, {mb} per micro-batch"] = out["grad_norm"]
        # a budget that holds the short half's 8 rows in one micro-batch but not the long half's
        short = max(int(one._encode([it])[0]["input_ids"].shape[1]) for it in items[8:])
        budget = 8 * short
        one.cfg.learner.max_tokens_per_micro_batch = budget
        norms["1 rank, token budget"] = one.rl_step(items)["grad_norm"]

        # responses longer than data.max_length leaves beside their prompt are counted, kept cut or dropped
        full = [int(one._encode([it])[0]["input_ids"].shape[1]) for it in items]  # nothing cut at 160
        assert full == [len(it.response_ids) + p for it, p in zip(items, prompts(one, items), strict=True)]
        one.cfg.data.max_length = limit = 60
        cut = [n > limit for n in full]
        assert 0 < sum(cut) < len(items)
        kept = one.rl_step(items)
        assert kept["truncated_rows"] == sum(cut)
        assert kept["tokens"] == sum(min(len(it.response_ids), limit - (n - len(it.response_ids)))
                                     for it, n in zip(items, full, strict=True))
        one.cfg.rl.truncated = "drop"
        dropped = one.rl_step(items)
        assert dropped["truncated_rows"] == sum(cut)
        assert dropped["tokens"] == sum(len(it.response_ids) for it, c in zip(items, cut, strict=True) if not c)
    finally:
        end_process_group()

    group = LearnerGroup(cfg(2, budget))
    try:
        group.setup(str(tiny_model), str(builtin_data["train"]), spec(8, 1))
        per_rank = group._all("an RL step", "rl_step", [(items[:8],), (items[8:],)])
    finally:
        group.shutdown()
    long_half, short_half = per_rank
    # each rank ran as many passes as the busiest one; the short half padded to the long half's count
    assert long_half["micro_batches"] == short_half["micro_batches"] > 1
    assert long_half["padded_micro_batches"] == 0
    assert short_half["padded_micro_batches"] == long_half["micro_batches"] - 1
    norms["2 ranks, token budget"] = long_half["grad_norm"]
    reference = norms["1 rank, 16 per micro-batch"]
    assert reference > 0
    for name, norm in norms.items():
        assert norm == pytest.approx(reference, rel=1e-6), (name, norms)


@pytest.mark.slow
def test_the_supervised_anchor_adds_sft_coef_times_the_sft_loss_gradient(rank, tiny_model, builtin_data):
    """algorithm.sft_coef: with every advantage 0 (GRPO: no policy gradient) an RL update's gradient is
    sft_coef x the gradient of the SFT loss on the anchor rows, computed here on a separate copy of the model."""
    from cosmo.models import encode_sft_batch, load_model
    from learner.actor import supervised_rows

    rows = load_jsonl(builtin_data["train"])
    anchors = supervised_rows(rows, "must_refuse", str(builtin_data["train"]))
    assert anchors and all(r.should_refuse and r.response for r in anchors)
    assert len(anchors) == sum(1 for r in rows if r.should_refuse and r.response is not None)
    # every anchor is drawn (sft_batch = their number), so the draw's order does not matter
    anchors = [r for r in anchors if not r.images][:6]
    rank.sft_rows = anchors
    a = rank.cfg.algorithm
    a.name, a.sft_coef, a.sft_batch = "grpo", 0.5, len(anchors)
    rank.spec = dataclasses.replace(rank.spec, micro_batch_size=8, grad_accum=1, mini_batches=1, epochs=1)
    items = [dataclasses.replace(it, advantage=0.0) for it in _items(8)]
    out = rank.rl_step(items)

    lm = load_model(str(tiny_model), dtype=torch.float32)
    lm.model.train()
    batch = encode_sft_batch(lm, [r.prompt for r in anchors], [[] for _ in anchors], [r.response for r in anchors],
                             max_length=rank.cfg.data.max_length)
    loss = lm.model(**batch).loss
    (0.5 * loss).backward()
    expected = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in lm.model.parameters() if p.grad is not None))
    assert out["sft_loss"] == pytest.approx(float(loss.detach()), rel=1e-5)
    assert out["grad_norm"] == pytest.approx(float(expected), rel=1e-4)
    # without the anchor the same batch has no gradient at all
    rank.sft_rows = []
    assert rank.rl_step(items)["grad_norm"] == pytest.approx(0.0, abs=1e-12)


def test_the_supervised_anchor_rows_are_the_sft_rows_asked_for(builtin_data):
    from learner.actor import supervised_rows

    rows = load_jsonl(builtin_data["train"])
    every = supervised_rows(rows, "all", "train.jsonl")
    assert [r.id for r in every] == [r.id for r in rows if r.response is not None]
    without = [dataclasses.replace(r, response=None) if r.should_refuse else r for r in rows]
    with pytest.raises(ValueError, match=r"train\.jsonl has no must_refuse row with a 'response'"):
        supervised_rows(without, "must_refuse", "train.jsonl")
