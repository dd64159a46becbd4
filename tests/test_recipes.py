"""The shipped recipes run CPGD in its regime (several optimizer steps per rollout batch, the paper's clip and
drift), where CPGD and GRPO part ways; the default CPU recipe keeps one update per batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cosmo.algorithms import policy_loss
from cosmo.cli import main
from cosmo.config import load_config, stage_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CPGD_RECIPES = ["qwen2.5-vl-3b.yaml", "qwen2.5-vl-7b.yaml", "paper-stages.yaml", "smollm2.yaml"]


def _rl_stages(recipe: str) -> list:
    cfg = load_config(CONFIGS / recipe)
    return [c for kind, c in (stage_config(cfg, name) for name in cfg.train.stages) if kind == "rl"]


@pytest.mark.parametrize("recipe", CPGD_RECIPES)
def test_recipe_takes_several_cpgd_updates_per_rollout_batch(recipe, capsys):
    assert main(["config", str(CONFIGS / recipe)]) == 0, capsys.readouterr().err
    stages = _rl_stages(recipe)
    assert stages
    for cfg in stages:
        rl, a = cfg.rl, cfg.algorithm
        assert rl.mini_batches * rl.epochs > 1
        assert (a.name, a.clip_eps, a.drift_coef, a.drift_clip, a.clip_schedule) == ("cpgd", 0.2, 0.01, 2.0, "constant")
        # each rank's share splits into the mini-batches, and each mini-batch into whole micro-batches
        share = rl.prompts_per_step * a.group_size // cfg.learner.num_ranks
        assert share % rl.mini_batches == 0 and (share // rl.mini_batches) % rl.micro_batch_size == 0


def test_default_cpu_recipe_keeps_one_update_per_batch():
    (cfg,) = _rl_stages("tiny-cpu.yaml")
    assert cfg.rl.mini_batches * cfg.rl.epochs == 1  # on-policy at the update: CPGD = GRPO = plain PG there


def test_the_smollm2_recipe_is_the_paper_shape_on_the_world_data():
    cfg = load_config(CONFIGS / "smollm2.yaml")
    assert (cfg.model.convert, cfg.data.profile, cfg.data.distill) == ("smollm2", "world", True)
    assert cfg.data.eval_per_task >= 200
    names = cfg.train.stages
    assert names[0] == "sft" and [stage_config(cfg, n)[0] for n in names[1:]] == ["rl", "rl"]
    general, mixed = (stage_config(cfg, n)[1].data.task_weights for n in names[1:])
    capability = {"reasoning", "knowledge", "instruction"}
    assert {t for t, w in general.items() if w > 0} == capability  # stage 1: capability only
    assert {t for t, w in mixed.items() if w > 0} == capability | {"safety", "over_refusal"}
    assert mixed["safety"] == mixed["over_refusal"]  # harmful and look-alike requests in equal numbers
    assert cfg.eval.stages == ["sft", names[-1]]  # start, SFT and RL: the three columns of the claim


def _token_grads(name: str, delta: list[list[float]], adv: list[float], cfg) -> torch.Tensor:
    """d loss / d logπ per token, for log-probs that moved `delta` away from the batch's old ones."""
    a = cfg.algorithm
    old = torch.tensor([[-1.0, -2.0, -0.5], [-1.5, -0.7, -2.5]], dtype=torch.float64)
    logprobs = (old + torch.tensor(delta, dtype=torch.float64)).requires_grad_(True)
    loss, _ = policy_loss(name, logprobs, old, None, torch.tensor(adv, dtype=torch.float64), torch.ones_like(old),
                          clip_eps=a.clip_eps, drift_coef=a.drift_coef, drift_clip=a.drift_clip,
                          aggregation=a.aggregation,
                          truncated_ratio=cfg.rl.mini_batches * cfg.rl.epochs > 1)  # as learner/actor.py passes it
    loss.backward()
    return logprobs.grad


def test_cpgd_differs_from_grpo_after_the_first_update_on_the_7b_recipe():
    cfg = load_config(CONFIGS / "qwen2.5-vl-7b.yaml")
    assert cfg.algorithm.aggregation == "token_mean" and cfg.algorithm.clip_schedule == "constant"
    adv = [1.0, -1.0]
    # first mini-batch: the old log-probs are this policy's, ratio 1: both give -A / 6 per token (6 tokens)
    on_policy = [[0.0] * 3] * 2
    expected = torch.tensor([[-1 / 6] * 3, [1 / 6] * 3], dtype=torch.float64)
    for name in ("cpgd", "grpo"):
        torch.testing.assert_close(_token_grads(name, on_policy, adv, cfg), expected)
    # a later mini-batch: the policy moved by Δ = logπ − logπ_old. With r = e^Δ, ε = 0.2, α = 0.01, c = 2:
    # GRPO: -A·r unless the ratio is clipped on the side A pushes (A > 0, r > 1.2; A < 0, r < 0.8), then 0.
    # CPGD: -A·clip(r, 0.8, 1.2) (truncated ratio, several updates) unless Δ is past ln(1.2) (A > 0) or ln(0.8)
    # (A < 0), then 0; plus the drift α·min(r − 1, c) on every token.
    moved = [[0.1, 0.3, -0.4], [-0.1, -0.4, 0.3]]
    grpo = [[-1.105171, 0.0, -0.670320],  # r = 1.105171; 1.349859 clipped; 0.670320 not clipped for A > 0
            [0.904837, 0.0, 1.349859]]  # r = 0.904837; 0.670320 clipped for A < 0; 1.349859 not
    cpgd = [[-1.105171 + 0.001052, 0.003499, -0.8 - 0.003297],  # drift 0.01 x (r − 1) each
            [0.904837 - 0.000952, -0.003297, 1.2 + 0.003499]]
    got_grpo, got_cpgd = _token_grads("grpo", moved, adv, cfg), _token_grads("cpgd", moved, adv, cfg)
    torch.testing.assert_close(got_grpo, torch.tensor(grpo, dtype=torch.float64) / 6, atol=1e-6, rtol=0)
    torch.testing.assert_close(got_cpgd, torch.tensor(cpgd, dtype=torch.float64) / 6, atol=1e-6, rtol=0)
    # the largest gaps: a ratio beyond the clip on the side A does not push (-A·r against -A·clip(r))
    assert float((got_cpgd - got_grpo).abs().max()) > 0.14 / 6
