"""The policy's (or reference's) per-token log-probs and entropy of the response tokens only.

The model runs up to its last hidden state; the LM head is applied to the response positions in
chunks (`cosmo.algorithms.logprobs`). Prompt and image positions never get logits.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import torch
from PIL import Image
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


def vision_tower(model: torch.nn.Module) -> torch.nn.Module | None:
    """The VLM's vision encoder (`visual`), wherever this transformers version nests it."""
    for holder in (model, getattr(model, "model", None)):
        if holder is not None and isinstance(getattr(holder, "visual", None), torch.nn.Module):
            return holder.visual
    return None


def blank_image_inputs(processor: Any, device: torch.device) -> dict[str, Tensor]:
    """A small black image as the processor prepares it: the vision tower's inputs for `vision_in_every_pass`."""
    out = processor.image_processor(images=[Image.new("RGB", (28, 28))], return_tensors="pt")
    return {"pixel_values": out["pixel_values"].to(device), "image_grid_thw": out["image_grid_thw"].to(device)}


@contextlib.contextmanager
def vision_in_every_pass(module: torch.nn.Module, batch: dict, blank: dict[str, Tensor] | None) -> Iterator[None]:
    """In a forward whose micro-batch holds no image, run the vision tower on `blank` (a small blank
    image's `pixel_values` and `image_grid_thw`) and add its features, times 0, to the token embeddings.

    Ranks must make the same collective calls in the same order: ZeRO-2 reduces each gradient in the
    order backward produces it, ZeRO-3 gathers each module's parameters as it runs. A text-only
    micro-batch on one rank beside an image on another would otherwise reduce different tensors in one
    bucket (a wrong gradient, measured in tests/test_learner_updates.py) or wait on different gathers (a
    hang). The loss is unchanged, and in backward the tower's gradients come after the decoder's, as
    with a real image. `module`: a DeepSpeed engine or an HF model; `blank` None: nothing to do.
    """
    model = _unwrap(module)
    vision = vision_tower(model)
    if blank is None or vision is None or "pixel_values" in batch:
        yield
        return

    def add_blank(_module: torch.nn.Module, _inputs: tuple, embeds: Tensor) -> Tensor:
        pixels = blank["pixel_values"].to(next(vision.parameters()).dtype)
        features = vision(pixels, grid_thw=blank["image_grid_thw"]).pooler_output
        return embeds + 0.0 * features.sum().to(embeds.dtype)

    handle = model.get_input_embeddings().register_forward_hook(add_blank)
    try:
        yield
    finally:
        handle.remove()


def _tempered(head: torch.nn.Module, temperature: float, hidden: Tensor) -> Tensor:
    return head(hidden) / temperature


def response_logprobs(module: torch.nn.Module, batch: dict, labels: Tensor, *, chunk: int,
                      temperature: float = 1.0, blank: dict[str, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """Log-probs of the label tokens and the entropy at their positions, both [rows, length − 1], under
    the distribution the rollout samples from: the logits divided by `temperature` (rollout.temperature).

    `module`: the policy's DeepSpeed engine or a plain HF model (the reference); called as a whole,
    so DeepSpeed's hooks (ZeRO-3 gathering) run as in a normal forward, but with no position's
    logits. `labels`: the batch's labels ([rows, length], -100 off the response); position t
    scores token t+1. Positions off the response hold 0. Gradients flow into the log-probs when
    autograd is on; the entropy is detached. `blank`: see `vision_in_every_pass`.
    """
    model = _unwrap(module)
    with _capture_hidden(model) as seen, vision_in_every_pass(module, batch, blank):
        module(**batch, logits_to_keep=NO_LOGITS.to(labels.device))
    hidden = seen[-1][:, :-1]
    mask = labels[:, 1:] != -100
    targets = labels[:, 1:][mask]
    head = model.lm_head if temperature == 1.0 else functools.partial(_tempered, model.lm_head, temperature)
    logp, entropy = chunked_token_logprobs(head, hidden[mask], targets, chunk=chunk)
    zeros = torch.zeros(mask.shape, dtype=logp.dtype, device=logp.device)
    return zeros.masked_scatter(mask, logp), zeros.masked_scatter(mask, entropy)
