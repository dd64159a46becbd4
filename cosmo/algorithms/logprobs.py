"""Per-token log-probs and entropy of chosen tokens from hidden states, a chunk of positions at a time.

The full logits of a batch are [batch, length, vocab]: with Qwen's 151,936-token vocabulary and
2k-token responses that is ~1.2 GB fp32 per sequence, kept again by autograd for backward. Here
only the response positions get logits, `chunk` of them at a time, and under autograd each chunk
is recomputed in backward (torch.utils.checkpoint), so at most one chunk's logits live at once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint


def _chunk_terms(head: Callable[[Tensor], Tensor], hidden: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """log p(target) and entropy for one chunk; bf16 logits are upcast to fp32 (fp64 stays fp64)."""
    logits = head(hidden)
    logp_all = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    chosen = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():  # entropy is a diagnostic: no gradient
        entropy = -logp_all.exp().mul_(logp_all).sum(-1)  # in place: one [chunk, vocab] buffer fewer
    return chosen, entropy


def chunked_token_logprobs(
    head: Callable[[Tensor], Tensor], hidden: Tensor, targets: Tensor, *, chunk: int
) -> tuple[Tensor, Tensor]:
    """Log-probs of `targets` [N] and the entropy [N] of the next-token distribution at `hidden` [N, H].

    `head` maps hidden states to logits (the model's lm_head). The entropy is detached. When
    autograd is on, each chunk runs under non-reentrant checkpointing: backward recomputes the
    chunk's logits instead of keeping them. `chunk` 0: every position in one pass, no recomputation
    (faster where the response's logits are small, e.g. a 2,048-token vocabulary).
    """
    if hidden.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise ValueError(f"hidden must be [N, H] and targets [N]; got {tuple(hidden.shape)}, {tuple(targets.shape)}")
    if chunk < 0:
        raise ValueError(f"chunk must be >= 0 positions (0: all at once), got {chunk}")
    if chunk == 0:
        return _chunk_terms(head, hidden, targets)
    grad = torch.is_grad_enabled() and hidden.requires_grad
    logps, entropies = [], []
    for start in range(0, hidden.shape[0], chunk):
        h, t = hidden[start : start + chunk], targets[start : start + chunk]
        if grad:
            lp, ent = checkpoint(_chunk_terms, head, h, t, use_reentrant=False)
        else:
            lp, ent = _chunk_terms(head, h, t)
        logps.append(lp)
        entropies.append(ent)
    if not logps:
        empty = hidden.new_zeros(0, dtype=torch.float32)
        return empty, empty
    return torch.cat(logps), torch.cat(entropies)
