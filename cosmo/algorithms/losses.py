"""Policy losses as pure functions on per-token tensors: CPGD (the paper's choice), GRPO, PPO-clip.

Shapes: `logprobs`, `old_logprobs`, `ref_logprobs`, `mask` are [batch, tokens]; `advantages` is
[batch] (one per sequence) or [batch, tokens]. Each loss returns per-token terms; `policy_loss`
aggregates them over the mask and reports diagnostics.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from cosmo.algorithms.names import AGGREGATIONS, CLIP_SCHEDULES

PPO_DUAL_CLIP = 3.0
"""PPO's dual clip: for negative advantages the per-token loss is capped at -c·A (Ye et al., 2020)."""


def cpgd_terms(logprobs: Tensor, old: Tensor, adv: Tensor, *, clip_eps: float | Tensor, drift_coef: float,
               drift_clip: float, truncated_ratio: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
    """CPGD: a clipped *log-ratio* policy gradient plus a policy-drift penalty, per token.

    With Δ = logπ − logπ_old the surrogate is min(Δ·A, clip(Δ, ln(1−ε), ln(1+ε))·A): for A > 0 the
    log-prob is capped at old + ln(1+ε), for A < 0 floored at old + ln(1−ε); beyond the cap the
    gradient is zero. The drift term α·min(sg(e^Δ) − 1, c)·Δ has gradient α·min(r − 1, c)·∇logπ,
    which pulls the policy back toward the behaviour policy (written with Δ instead of logπ:
    same gradient, and a value that is 0 on-policy). `truncated_ratio` (several updates per batch,
    as the paper prescribes for more than one epoch) multiplies A by clip(sg(π/π_old), 1−ε, 1+ε).
    `clip_eps` is a float or a per-token tensor (`clip_eps_schedule`).
    """
    delta = logprobs - old
    ratio = torch.exp(delta.detach())
    if truncated_ratio:
        adv = adv * torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps)
    up, low = _log1p(clip_eps), _log1p(-clip_eps)
    clamped = torch.where(adv > 0, torch.minimum(logprobs, old + up), torch.maximum(logprobs, old + low))
    pg = -(clamped - old) * adv
    drift = drift_coef * torch.clamp(ratio - 1, max=drift_clip) * delta
    clipped = torch.where(adv > 0, delta > up, delta < low)
    return pg + drift, {"pg": pg, "drift": drift, "clipped": clipped.float(), "ratio": ratio}


def _log1p(x: float | Tensor) -> float | Tensor:
    return math.log1p(x) if isinstance(x, float | int) else torch.log1p(x)


def clip_eps_schedule(mask: Tensor, schedule: str, clip_eps: float, clip_eps_min: float) -> float | Tensor:
    """The clip range per token: `constant` → ε everywhere; `linear` → a tight-to-loose ramp along
    each response, ε_i = ε_min + (ε − ε_min)·i/(n−1) for its i-th token of n (0-based), so the first
    token gets ε_min and the last ε. (A documented linear ramp: the CPGD paper's exact form of its
    tight-to-loose schedule was not available to us.)
    """
    if schedule == "constant":
        return clip_eps
    if schedule != "linear":
        raise ValueError(f"clip schedule must be one of {CLIP_SCHEDULES}, got {schedule!r}")
    m = mask.long()
    index = (m.cumsum(-1) - 1).clamp(min=0).float()
    span = (m.sum(-1, keepdim=True) - 1).clamp(min=1).float()
    return clip_eps_min + (clip_eps - clip_eps_min) * torch.clamp(index / span, max=1.0)


def _ratio_clip_terms(logprobs: Tensor, old: Tensor, adv: Tensor, clip_eps: float | Tensor,
                      dual_clip: float | None) -> tuple[Tensor, dict[str, Tensor]]:
    ratio = torch.exp(logprobs - old)
    surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv)
    if dual_clip is not None:
        surrogate = torch.where(adv < 0, torch.maximum(surrogate, dual_clip * adv), surrogate)
    pg = -surrogate
    clipped = (ratio * adv) > (torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv)
    return pg, {"pg": pg, "clipped": clipped.float(), "ratio": ratio.detach()}


def kl_k3(logprobs: Tensor, ref: Tensor) -> Tensor:
    """Schulman's k3 estimator of KL(π‖π_ref) per token: e^(ref−logπ) − (ref−logπ) − 1 ≥ 0."""
    diff = ref - logprobs
    return torch.exp(diff) - diff - 1


def grpo_terms(logprobs: Tensor, old: Tensor, adv: Tensor, *, clip_eps: float | Tensor) -> tuple[Tensor, dict]:
    """GRPO: PPO's ratio clip on group-normalised advantages (KL added by `policy_loss`)."""
    return _ratio_clip_terms(logprobs, old, adv, clip_eps, dual_clip=None)


def ppo_terms(logprobs: Tensor, old: Tensor, adv: Tensor, *, clip_eps: float | Tensor) -> tuple[Tensor, dict]:
    """Critic-free PPO-clip with dual clip for negative advantages."""
    return _ratio_clip_terms(logprobs, old, adv, clip_eps, dual_clip=PPO_DUAL_CLIP)


def importance_weights(proximal: Tensor, behaviour: Tensor, cap: float) -> tuple[Tensor, Tensor]:
    """Truncated per-token importance weights min(π_prox/π_behaviour, cap) for off-policy batches.

    In async mode the rollout engine (behaviour policy) is one update behind the learner. The loss
    then clips around the learner's own pre-update policy π_prox (passed as `old_logprobs`) and
    multiplies the advantages by these weights, which correct for sampling from the older policy;
    the cap bounds the variance. Returns (weights, truncated mask), both detached.
    """
    ratio = torch.exp(proximal.detach() - behaviour.detach())
    return torch.clamp(ratio, max=cap), ratio > cap


LOSSES: dict[str, Callable[..., tuple[Tensor, dict]]] = {"cpgd": cpgd_terms, "grpo": grpo_terms, "ppo": ppo_terms}


def aggregate(terms: Tensor, mask: Tensor, how: str) -> Tensor:
    """token_mean: mean over every unmasked token of the batch; seq_mean: mean of per-sequence token means."""
    mask = mask.to(terms.dtype)
    if how == "token_mean":
        return (terms * mask).sum() / mask.sum().clamp(min=1)
    if how == "seq_mean":
        per_seq = (terms * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return per_seq[mask.sum(-1) > 0].mean() if bool((mask.sum(-1) > 0).any()) else per_seq.sum() * 0
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {how!r}")


def policy_loss(
    name: str,
    logprobs: Tensor,
    old_logprobs: Tensor,
    ref_logprobs: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_eps: float | Tensor = 0.2,
    drift_coef: float = 0.01,
    drift_clip: float = 2.0,
    kl_coef: float = 0.0,
    aggregation: str = "token_mean",
    weights: Tensor | None = None,
    truncated_ratio: bool = False,
    kl_weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The one entry point: `name` in cpgd, grpo, ppo; returns (scalar loss, float diagnostics).

    Defaults are the CPGD paper's (ε = 0.2, α = 0.01, c = 2.0, no reference KL). `drift_*` and
    `truncated_ratio` apply to cpgd; `kl_coef` (k3 against `ref_logprobs`) to every loss: CPGD's drift
    term holds each update near the policy that sampled, the reference KL holds the run near its start.
    `weights` (per token, from `microbatch.token_weights`) replace `aggregation`: the loss is then
    Σ terms·mask·weights, one micro-batch's share of the whole update's aggregate; the reported
    `loss` stays this micro-batch's own aggregate. `kl_weights` ([batch]) scale each sequence's KL term
    (`algorithm.kl_rows`: 0 on the rows the KL leaves free).
    """
    if name not in LOSSES:
        raise ValueError(f"unknown policy loss {name!r}; choose one of {sorted(LOSSES)}")
    if logprobs.dim() != 2:
        raise ValueError(f"logprobs must be [batch, tokens], got shape {tuple(logprobs.shape)}")
    for label, t in (("old_logprobs", old_logprobs), ("mask", mask), ("ref_logprobs", ref_logprobs)):
        if t is not None and t.shape != logprobs.shape:
            raise ValueError(f"{label} has shape {tuple(t.shape)}, expected {tuple(logprobs.shape)}")
    if advantages.dim() == 1:
        if advantages.shape[0] != logprobs.shape[0]:
            raise ValueError(f"advantages has {advantages.shape[0]} rows, logprobs {logprobs.shape[0]}")
        advantages = advantages[:, None].expand_as(logprobs)
    elif advantages.shape != logprobs.shape:
        raise ValueError(f"advantages must be [batch] or [batch, tokens], got {tuple(advantages.shape)}")
    old = old_logprobs.detach()
    adv = advantages.detach().to(logprobs.dtype)
    if name == "cpgd":
        terms, parts = cpgd_terms(logprobs, old, adv, clip_eps=clip_eps, drift_coef=drift_coef, drift_clip=drift_clip,
                                  truncated_ratio=truncated_ratio)
    else:
        terms, parts = LOSSES[name](logprobs, old, adv, clip_eps=clip_eps)
    if kl_coef > 0:
        if ref_logprobs is None:
            raise ValueError(f"kl_coef={kl_coef} needs ref_logprobs")
        kl = kl_k3(logprobs, ref_logprobs.detach())
        if kl_weights is not None:
            kl = kl * kl_weights.detach().to(kl.dtype)[:, None]
        terms = terms + kl_coef * kl
        parts["kl"] = kl
    loss = aggregate(terms, mask, aggregation)
    with torch.no_grad():
        stats = {key: float(aggregate(value.detach(), mask, "token_mean")) for key, value in parts.items()}
        stats["approx_kl_old"] = float(aggregate(kl_k3(logprobs.detach(), old), mask, "token_mean"))
        stats["loss"] = float(loss.detach())
    if weights is not None:
        loss = (terms * mask.to(terms.dtype) * weights.detach()).sum()
    stats["clip_frac"] = stats.pop("clipped")
    stats["ratio_mean"] = stats.pop("ratio")
    return loss, stats
