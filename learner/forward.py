"""The policy's (or reference's) per-token log-probs and entropy of the response tokens only.

The model runs up to its last hidden state; the LM head is applied to the response positions in
chunks (`cosmo.algorithms.logprobs`). Prompt and image positions never get logits.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch
from torch import Tensor

from cosmo.algorithms.logprobs import chunked_token_logprobs

NO_LOGITS = torch.zeros(0, dtype=torch.long)
"""`logits_to_keep` that selects no position: the model's own LM head computes nothing."""


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The HF model inside a DeepSpeed engine (or the model itself)."""
    return getattr(module, "module", module)


@contextlib.contextmanager
def _capture_hidden(model: torch.nn.Module) -> Iterator[list[Tensor]]:
    """Record the base model's last hidden state (after the final norm) during one forward."""
    base = getattr(model, "model", None)
    if not isinstance(base, torch.nn.Module) or not isinstance(getattr(model, "lm_head", None), torch.nn.Module):
        raise TypeError(f"{type(model).__name__} has no `.model` and `.lm_head`: cannot compute chunked log-probs")
    seen: list[Tensor] = []
    handle = base.register_forward_hook(lambda _m, _i, out: seen.append(out[0]))
    try:
        yield seen
    finally:
        handle.remove()


def _tempered(head: torch.nn.Module, temperature: float, hidden: Tensor) -> Tensor:
    return head(hidden) / temperature


def response_logprobs(module: torch.nn.Module, batch: dict, labels: Tensor, *, chunk: int,
                      temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    """Log-probs of the label tokens and the entropy at their positions, both [rows, length − 1], under
    the distribution the rollout samples from: the logits divided by `temperature` (rollout.temperature).

    `module`: the policy's DeepSpeed engine or a plain HF model (the reference); called as a whole,
    so DeepSpeed's hooks (ZeRO-3 gathering) run as in a normal forward, but with no position's
    logits. `labels`: the batch's labels ([rows, length], -100 off the response); position t
    scores token t+1. Positions off the response hold 0. Gradients flow into the log-probs when
    autograd is on; the entropy is detached.
    """
    model = _unwrap(module)
    with _capture_hidden(model) as seen:
        module(**batch, logits_to_keep=NO_LOGITS.to(labels.device))
    hidden = seen[-1][:, :-1]
    mask = labels[:, 1:] != -100
    targets = labels[:, 1:][mask]
    head = model.lm_head if temperature == 1.0 else functools.partial(_tempered, model.lm_head, temperature)
    logp, entropy = chunked_token_logprobs(head, hidden[mask], targets, chunk=chunk)
    zeros = torch.zeros(mask.shape, dtype=logp.dtype, device=logp.device)
    return zeros.masked_scatter(mask, logp), zeros.masked_scatter(mask, entropy)
