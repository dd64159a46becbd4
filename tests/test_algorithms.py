"""Policy losses and advantages against values worked out by hand (math module only)."""

from __future__ import annotations

import math

import pytest
import torch

from cosmo.algorithms import group_advantages, kl_k3, policy_loss

OLD = [-1.0, -1.0, -1.0]
NEW = [-1.0, -0.5, -1.5]  # log-ratios 0, +0.5, -0.5


def _inputs(new=NEW, old=OLD):
    logp = torch.tensor([new], dtype=torch.float64, requires_grad=True)
    return logp, torch.tensor([old], dtype=torch.float64), torch.ones(1, len(new), dtype=torch.float64)


def _drift(delta, alpha=0.01, c=2.0):
    return alpha * min(math.exp(delta) - 1, c) * delta, alpha * min(math.exp(delta) - 1, c)


def test_cpgd_positive_advantage_value_and_gradient():
    logp, old, mask = _inputs()
    loss, stats = policy_loss("cpgd", logp, old, None, torch.tensor([1.0]), mask)
    cap = math.log(1.2)
    # A > 0: the log-ratio is capped at ln(1.2); token 1 (0.5) is clipped, token 2 (-0.5) is not
    pg = [-0.0, -cap, 0.5]
    drift = [_drift(d)[0] for d in (0.0, 0.5, -0.5)]
    expected = sum(p + d for p, d in zip(pg, drift, strict=True)) / 3
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    loss.backward()
    grad_drift = [_drift(d)[1] for d in (0.0, 0.5, -0.5)]
    expected_grad = [(-1 + grad_drift[0]) / 3, (0 + grad_drift[1]) / 3, (-1 + grad_drift[2]) / 3]
    assert logp.grad[0].tolist() == pytest.approx(expected_grad, abs=1e-12)
    assert stats["clip_frac"] == pytest.approx(1 / 3)


def test_cpgd_negative_advantage_floors_the_log_ratio():
    logp, old, mask = _inputs()
    loss, _ = policy_loss("cpgd", logp, old, None, torch.tensor([-2.0]), mask, drift_coef=0.0)
    floor = math.log(0.8)
    # A = -2: per-token loss -(clamped log-ratio)*A = 2*clamped; token 2 (-0.5 < ln 0.8) is clipped
    assert loss.item() == pytest.approx((0 + 2 * 0.5 + 2 * floor) / 3, abs=1e-12)
    loss.backward()
    assert logp.grad[0].tolist() == pytest.approx([2 / 3, 2 / 3, 0.0], abs=1e-12)


def test_kl_weights_leave_the_sequences_they_zero_free():
    """Two one-token sequences at the old policy (ratio 1, A = 0: no policy-gradient term); reference
    log-probs 0.5 below and 0.5 above. With weights [1, 0] only the first sequence's k3 term counts:
    loss = (e^-0.5 + 0.5 - 1) / 2 tokens, and its gradient (1 - e^-0.5) / 2 reaches the first token only."""
    logp = torch.tensor([[-1.0], [-1.0]], dtype=torch.float64, requires_grad=True)
    old, mask = logp.detach().clone(), torch.ones(2, 1, dtype=torch.float64)
    ref = torch.tensor([[-1.5], [-0.5]], dtype=torch.float64)
    loss, _ = policy_loss("grpo", logp, old, ref, torch.zeros(2), mask, kl_coef=1.0,
                          kl_weights=torch.tensor([1.0, 0.0]))
    assert loss.item() == pytest.approx((math.exp(-0.5) + 0.5 - 1) / 2, abs=1e-12)
    loss.backward()
    assert logp.grad[:, 0].tolist() == pytest.approx([(1 - math.exp(-0.5)) / 2, 0.0], abs=1e-12)


def test_cpgd_takes_the_reference_kl_on_top_of_its_own_terms():
    """At the old policy (ratio 1) with A = 0 CPGD's policy-gradient and drift terms are 0, so the loss is the
    k3 KL alone: reference 0.5 below on the first sequence, weights [1, 0] as algorithm.kl_rows=must_refuse
    gives them, so (e^-0.5 + 0.5 - 1) / 2 tokens; without kl_coef the loss is 0."""
    logp = torch.tensor([[-1.0], [-1.0]], dtype=torch.float64, requires_grad=True)
    old, mask = logp.detach().clone(), torch.ones(2, 1, dtype=torch.float64)
    ref = torch.tensor([[-1.5], [-0.5]], dtype=torch.float64)
    loss, stats = policy_loss("cpgd", logp, old, ref, torch.zeros(2), mask, kl_coef=0.5,
                              kl_weights=torch.tensor([1.0, 0.0]))
    assert loss.item() == pytest.approx(0.5 * (math.exp(-0.5) + 0.5 - 1) / 2, abs=1e-12)
    assert stats["kl"] == pytest.approx((math.exp(-0.5) + 0.5 - 1) / 2, abs=1e-12)
    plain, _ = policy_loss("cpgd", logp, old, ref, torch.zeros(2), mask)
    assert plain.item() == 0.0


def test_cpgd_drift_clip_caps_the_pull():
    logp, old, mask = _inputs(new=[1.0], old=[-1.0])  # ratio e^2 - 1 = 6.39 > c = 2
    loss, _ = policy_loss("cpgd", logp, old, None, torch.tensor([0.0]), mask, drift_coef=0.5, drift_clip=2.0)
    assert loss.item() == pytest.approx(0.5 * 2.0 * 2.0)  # alpha * c * delta
    loss.backward()
    assert logp.grad.item() == pytest.approx(0.5 * 2.0)


def test_grpo_ratio_clip_and_k3_kl():
    logp, old, mask = _inputs()
    ref = torch.tensor([[-1.2, -0.5, -1.0]], dtype=torch.float64)
    loss, stats = policy_loss("grpo", logp, old, ref, torch.tensor([1.0]), mask, kl_coef=0.1)
    r = [math.exp(d) for d in (0.0, 0.5, -0.5)]
    surrogate = [min(x, min(max(x, 0.8), 1.2)) for x in r]  # A = 1
    kl = [math.exp(d) - d - 1 for d in (-0.2, 0.0, 0.5)]  # diff = ref - logp
    expected = sum(-s + 0.1 * k for s, k in zip(surrogate, kl, strict=True)) / 3
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    assert stats["kl"] == pytest.approx(sum(kl) / 3, abs=1e-12)
    loss.backward()
    # d(-r)/dlogp = -r where unclipped; token 1 is clipped (r = 1.65 > 1.2): only the KL term remains
    dkl = [-(math.exp(d)) + 1 for d in (-0.2, 0.0, 0.5)]  # d/dlogp of e^(ref-logp)-(ref-logp)-1
    expected_grad = [(-r[0] + 0.1 * dkl[0]) / 3, (0.1 * dkl[1]) / 3, (-r[2] + 0.1 * dkl[2]) / 3]
    assert logp.grad[0].tolist() == pytest.approx(expected_grad, abs=1e-12)


def test_ppo_dual_clip_bounds_negative_advantage_loss_where_grpo_does_not():
    logp, old, mask = _inputs(new=[1.0], old=[-1.0])  # ratio e^2 = 7.39
    grpo, _ = policy_loss("grpo", logp, old, None, torch.tensor([-1.0]), mask)
    ppo, _ = policy_loss("ppo", logp, old, None, torch.tensor([-1.0]), mask)
    assert grpo.item() == pytest.approx(math.exp(2.0))
    assert ppo.item() == pytest.approx(3.0)


def test_mask_excludes_tokens_and_token_vs_sequence_mean():
    logp = torch.tensor([[-1.0, -0.5, -9.0], [-1.0, -1.0, -1.0]], dtype=torch.float64, requires_grad=True)
    old = torch.full((2, 3), -1.0, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.float64)
    adv = torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]], dtype=torch.float64)
    loss, _ = policy_loss("cpgd", logp, old, None, adv, mask, drift_coef=0.0)
    per_token = [0.0, -math.log(1.2), 0.0]  # row 0 tokens 0,1 and row 1 token 0
    assert loss.item() == pytest.approx(sum(per_token) / 3)
    seq, _ = policy_loss("cpgd", logp, old, None, adv, mask, drift_coef=0.0, aggregation="seq_mean")
    assert seq.item() == pytest.approx(((0.0 - math.log(1.2)) / 2 + 0.0) / 2)
    loss.backward()
    assert logp.grad[0, 2].item() == 0.0 and logp.grad[1, 1].item() == 0.0


def test_policy_loss_rejects_bad_input():
    logp, old, mask = _inputs()
    with pytest.raises(ValueError, match="unknown policy loss"):
        policy_loss("reinforce", logp, old, None, torch.tensor([1.0]), mask)
    with pytest.raises(ValueError, match="old_logprobs"):
        policy_loss("cpgd", logp, old[:, :2], None, torch.tensor([1.0]), mask)
    with pytest.raises(ValueError, match="needs ref_logprobs"):
        policy_loss("grpo", logp, old, None, torch.tensor([1.0]), mask, kl_coef=0.1)


def test_k3_is_zero_at_equal_policies_and_positive_elsewhere():
    a = torch.tensor([-1.0, -2.0])
    assert kl_k3(a, a).tolist() == [0.0, 0.0]
    assert (kl_k3(a, a + 0.3) > 0).all()


def test_group_advantages_by_hand():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [2.0, 2.0, 2.0, 2.0]])
    std = math.sqrt((4 * 0.25) / 3)  # unbiased std of {1, 0, 0, 1}
    a = group_advantages(rewards, "std")
    assert a[0].tolist() == pytest.approx([0.5 / std, -0.5 / std, -0.5 / std, 0.5 / std])
    assert a[1].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert group_advantages(rewards, "equal")[0].tolist() == [0.5, -0.5, -0.5, 0.5]
    # one of two groups has zero std: scale min(3, 2 / (2 - 1)) = 2
    assert group_advantages(rewards, "clip_filter_like")[0].tolist() == [1.0, -1.0, -1.0, 1.0]
    with pytest.raises(ValueError):
        group_advantages(rewards, "median")


def test_importance_weights_are_ratios_truncated_at_the_cap():
    from cosmo.algorithms import importance_weights

    proximal = torch.tensor([[-1.0, -0.5, 0.2, -3.0]], dtype=torch.float64)
    behaviour = torch.tensor([[-1.0, -1.0, -1.0, -1.0]], dtype=torch.float64)
    weights, truncated = importance_weights(proximal, behaviour, cap=1.5)
    # exp(0) = 1; exp(0.5) = 1.6487 -> 1.5; exp(1.2) = 3.32 -> 1.5; exp(-2) = 0.1353
    assert weights[0].tolist() == pytest.approx([1.0, 1.5, 1.5, math.exp(-2.0)], abs=1e-12)
    assert truncated[0].tolist() == [False, True, True, False]
    assert not weights.requires_grad


def test_async_correction_scales_each_token_gradient_by_its_weight():
    # on the learner's own pre-update policy (old = logprobs) CPGD's gradient per token is -A·w/T
    logp = torch.tensor([[-1.0, -0.5]], dtype=torch.float64, requires_grad=True)
    from cosmo.algorithms import importance_weights

    weights, _ = importance_weights(logp, torch.tensor([[-1.2, -0.5]], dtype=torch.float64), cap=2.0)
    adv = torch.tensor([2.0], dtype=torch.float64)[:, None] * weights
    loss, _ = policy_loss("cpgd", logp, logp.detach(), None, adv, torch.ones(1, 2), drift_coef=0.0)
    loss.backward()
    assert logp.grad[0].tolist() == pytest.approx([-2.0 * math.exp(0.2) / 2, -2.0 * 1.0 / 2], abs=1e-12)


def _grad(name, delta, adv=1.0, **kw):
    """d loss / d logπ for one token with log-ratio `delta` (token mean of one token = the token)."""
    logp = torch.tensor([[-1.0 + delta]], dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[-1.0]], dtype=torch.float64)
    loss, stats = policy_loss(name, logp, old, None, torch.tensor([adv]), torch.ones(1, 1), **kw)
    loss.backward()
    return float(logp.grad), stats


def test_cpgd_equals_grpo_on_policy_and_differs_after_an_update():
    # first update (Δ = 0, r = 1): both gradients are −A = −1, CPGD's drift is 0
    cpgd0, stats0 = _grad("cpgd", 0.0, truncated_ratio=True)
    grpo0, _ = _grad("grpo", 0.0)
    assert cpgd0 == pytest.approx(-1.0) and grpo0 == pytest.approx(-1.0) and stats0["drift"] == 0.0
    # after an update r = 1.1 (inside the clip 0.2): GRPO −A·r = −1.1; CPGD with the truncated
    # ratio −A·clip(r, 0.8, 1.2) + α·min(r − 1, c) = −1.1 + 0.01·0.1 = −1.099
    delta = math.log(1.1)
    cpgd1, stats1 = _grad("cpgd", delta, truncated_ratio=True)
    grpo1, _ = _grad("grpo", delta)
    assert grpo1 == pytest.approx(-1.1)
    assert cpgd1 == pytest.approx(-1.099)
    assert stats1["drift"] == pytest.approx(0.01 * 0.1 * delta)  # α·min(r − 1, c)·Δ, non-zero
    # without the truncated ratio (one update): −A + α(r − 1) = −0.999
    assert _grad("cpgd", delta)[0] == pytest.approx(-0.999)


def test_linear_clip_schedule_by_hand():
    from cosmo.algorithms.losses import clip_eps_schedule

    mask = torch.tensor([[0, 1, 1, 1, 0], [0, 0, 0, 1, 0]], dtype=torch.bool)
    eps = clip_eps_schedule(mask, "linear", 0.2, 0.1)
    # row 0: 3 response tokens -> 0.1, 0.1 + 0.1·1/2, 0.2; row 1: a single token gets ε_min
    assert eps[0][mask[0]].tolist() == pytest.approx([0.1, 0.15, 0.2])
    assert eps[1][mask[1]].tolist() == pytest.approx([0.1])
    assert clip_eps_schedule(mask, "constant", 0.2, 0.1) == 0.2
    # a first token with r = 1.15, A > 0: inside the constant clip (gradient −1) but beyond ε_1 = 0.1
    logp = torch.tensor([[-1.0 + math.log(1.15), -1.0]], dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[-1.0, -1.0]], dtype=torch.float64)
    two = torch.ones(1, 2, dtype=torch.bool)
    for schedule, want in (("constant", -1.0), ("linear", 0.0)):
        logp.grad = None
        loss, _ = policy_loss("cpgd", logp, old, None, torch.tensor([1.0]), two, drift_coef=0.0,
                              clip_eps=clip_eps_schedule(two, schedule, 0.2, 0.1), aggregation="seq_mean")
        loss.backward()
        assert float(logp.grad[0, 0]) * 2 == pytest.approx(want)  # seq mean of 2 tokens: ×2 for the token's own
