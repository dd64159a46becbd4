"""Response log-probs from hidden states in chunks equal the full-logits computation, gradients included."""

from __future__ import annotations

import pytest
import torch

from cosmo.algorithms.logprobs import chunked_token_logprobs
from cosmo.data import load_images, load_jsonl
from cosmo.models import encode_response_batch, load_model
from learner.forward import response_logprobs


def _full_logits_path(model, batch, labels):
    """The learner's former computation: every position's logits, log-softmax over the vocabulary."""
    logits = model(**batch).logits[:, :-1]
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    logp_all = torch.log_softmax(logits, dim=-1)
    mask = labels[:, 1:] != -100
    chosen = logp_all.gather(-1, labels[:, 1:].clamp(min=0).unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return chosen * mask, entropy * mask


@pytest.fixture(scope="module")
def batch(tiny_model, builtin_data):
    lm = load_model(tiny_model)
    rows = load_jsonl(builtin_data["train"])
    rows = [r for r in rows if r.images][:2] + [r for r in rows if not r.images][:1]
    gen = torch.Generator().manual_seed(0)
    responses = [torch.randint(20, 2000, (n,), generator=gen).tolist() for n in (9, 4, 13)]
    enc = encode_response_batch(lm, [r.prompt for r in rows], [load_images(r) for r in rows], responses,
                                max_length=512)
    labels = enc.pop("labels")
    return lm.model, enc, labels


# fp32: the LM head on [N, H] instead of [B, L, H] rounds differently: log-probs equal to 1e-6 absolute,
# entropies to a few ulp relative (1e-5). Gradients sum many positions (the tied embedding's), and
# their summation order follows torch's thread count: 1.8e-6 was seen on one entry of 262,144 in the
# full suite, so gradients get 5e-6 absolute. fp64 shows the two computations are the same function.
TOLERANCES = {torch.float32: (1e-6, 1e-5), torch.float64: (1e-12, 1e-10)}
GRAD_ATOL = {torch.float32: 5e-6, torch.float64: 1e-12}


@pytest.mark.parametrize(("chunk", "dtype"), [(0, torch.float32), (1, torch.float32), (7, torch.float32),
                                              (5, torch.float64)])
def test_chunked_logprobs_entropy_and_gradient_equal_full_logits(batch, chunk, dtype):
    model, enc, labels = batch
    model = model.to(dtype)
    enc = {k: v.to(dtype) if v.is_floating_point() else v for k, v in enc.items()}
    atol, rtol = TOLERANCES[dtype]
    assert "pixel_values" in enc  # image positions are part of the sequence and must be skipped
    model.zero_grad()
    want_lp, want_ent = _full_logits_path(model, enc, labels)
    weights = torch.linspace(-1, 1, want_lp.numel()).view_as(want_lp)  # any fixed per-token loss weights
    (want_lp * weights).sum().backward()
    want_grad = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    got_lp, got_ent = response_logprobs(model, enc, labels, chunk=chunk)
    (got_lp * weights).sum().backward()
    got_grad = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    mask = labels[:, 1:] != -100
    assert int(mask.sum()) == 9 + 4 + 13
    model.to(torch.float32)
    torch.testing.assert_close(got_lp, want_lp.to(got_lp.dtype), atol=atol, rtol=0)
    torch.testing.assert_close(got_ent, want_ent.to(got_ent.dtype), atol=atol, rtol=rtol)
    assert not got_ent.requires_grad
    assert got_grad.keys() == want_grad.keys() and len(got_grad) > 0
    for name, grad in want_grad.items():
        torch.testing.assert_close(got_grad[name], grad, atol=GRAD_ATOL[dtype], rtol=rtol,
                                   msg=lambda m, name=name: f"{name}: {m}")


def test_chunks_keep_no_logits_for_backward():
    """Under autograd only the inputs of a chunk are saved: no [positions, vocab] tensor survives."""
    hidden = torch.randn(64, 8, requires_grad=True)
    head = torch.nn.Linear(8, 1000, bias=False)
    targets = torch.randint(0, 1000, (64,))
    saved: list[torch.Size] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.shape) or t, lambda t: t):
        logp, _ = chunked_token_logprobs(head, hidden, targets, chunk=16)
    assert logp.shape == (64,)
    assert saved and all(1000 not in shape for shape in saved), saved
    # the same values as one log-softmax over the whole vocabulary
    want = torch.log_softmax(head(hidden), -1).gather(-1, targets[:, None]).squeeze(-1)
    torch.testing.assert_close(logp, want)


def test_logprobs_follow_the_rollout_temperature(batch):
    """The learner scores a response under the distribution vLLM sampled it from: softmax(logits / T)."""
    model, enc, labels = batch
    with torch.no_grad():
        logits = model(**enc).logits[:, :-1].float() / 0.5
        want = torch.log_softmax(logits, -1).gather(-1, labels[:, 1:].clamp(min=0).unsqueeze(-1)).squeeze(-1)
        want = want * (labels[:, 1:] != -100)
        got, _ = response_logprobs(model, enc, labels, chunk=4, temperature=0.5)
        plain, _ = response_logprobs(model, enc, labels, chunk=4)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert not torch.allclose(got, plain)
