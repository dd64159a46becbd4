"""Prompt encoding for SFT and generation, identical for the tiny VLM, real Qwen VLMs and text-only LMs.

A user message is one user turn: one vision block per image, then the prompt text; no system prompt is
added by us (the model's own template may add one). Prompt and response are tokenised separately and
concatenated, so SFT sees exactly the prompt ids that generation later conditions on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from transformers import GenerationConfig, PreTrainedTokenizerBase

from cosmo.models.loading import LoadedModel
from cosmo.models.tokenizer import SPECIAL_TOKENS

IGNORE_INDEX = -100

# Qwen's vision / grounding specials: a sampled <|image_pad|> makes the next forward fail ("Image features
# and image tokens do not match"), and none of these belong in a text answer.
VISION_TOKENS: tuple[str, ...] = tuple(
    t for t in SPECIAL_TOKENS if t not in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
)


def blocked_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids of the vision special tokens present in `tokenizer`; they must never be sampled."""
    vocab = tokenizer.get_vocab()
    return sorted({vocab[t] for t in VISION_TOKENS if t in vocab})


def end_of_turn_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """`<|im_end|>` (Qwen, SmolLM2 ChatML) or, failing that, the tokenizer's eos."""
    im_end = tokenizer.get_vocab().get("<|im_end|>")
    if im_end is not None:
        return im_end
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has neither <|im_end|> nor an eos token: cannot mark the end of a turn")
    return tokenizer.eos_token_id


def stop_token_ids(lm: LoadedModel) -> list[int]:
    """End of turn plus whatever eos ids the checkpoint's generation config declares."""
    ids = [end_of_turn_id(lm.tokenizer)]
    eos = getattr(lm.model.generation_config, "eos_token_id", None)
    for i in [eos] if isinstance(eos, int) else (eos or []):
        if i not in ids:
            ids.append(i)
    return ids


def chat_prompt(lm: LoadedModel, prompt: str, n_images: int = 0) -> str:
    """The chat-formatted, *unexpanded* prompt (one `<|image_pad|>` per image) ending in the assistant
    header. This is the string to hand vLLM together with `multi_modal_data`."""
    if n_images and not lm.multimodal:
        raise ValueError(f"{lm.path} is a text-only model but the prompt has {n_images} image(s)")
    if lm.multimodal:
        content: Any = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": prompt}]
        owner = lm.processor if getattr(lm.processor, "chat_template", None) else lm.tokenizer
    else:
        content, owner = prompt, lm.tokenizer
    messages = [{"role": "user", "content": content}]
    return owner.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _check_lengths(**seqs: Sequence) -> int:
    lengths = {name: len(s) for name, s in seqs.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"batch fields differ in length: {lengths}")
    return next(iter(lengths.values()))


def _encode_prompt(lm: LoadedModel, prompt: str, images: Sequence[Image.Image] | None) -> dict[str, Any]:
    """One row: expanded prompt ids, their modality types (0 text, 1 image) and the vision tensors."""
    images = list(images or [])
    text = chat_prompt(lm, prompt, len(images))
    if not images:
        ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
        return {"input_ids": list(ids), "mm_token_type_ids": [0] * len(ids)}
    enc = lm.processor(
        text=[text], images=images, return_tensors="pt", add_special_tokens=False, padding=False
    )
    ids = enc["input_ids"][0].tolist()
    if "mm_token_type_ids" in enc:
        mm = enc["mm_token_type_ids"][0].tolist()
    else:  # older processors: derive it from the image placeholder id
        mm = [int(t == lm.processor.image_token_id) for t in ids]
    return {"input_ids": ids, "mm_token_type_ids": mm, "pixel_values": enc["pixel_values"],
            "image_grid_thw": enc["image_grid_thw"]}


def _collate(rows: list[dict[str, Any]], pad_id: int, left: bool) -> dict[str, torch.Tensor]:
    width = max(len(r["input_ids"]) for r in rows)
    has_images = any("pixel_values" in r for r in rows)
    keys = ["input_ids", "attention_mask"] + (["labels"] if "labels" in rows[0] else [])
    keys += ["mm_token_type_ids"] if has_images else []
    fill = {"input_ids": pad_id, "attention_mask": 0, "labels": IGNORE_INDEX, "mm_token_type_ids": 0}
    out: dict[str, list[list[int]]] = {k: [] for k in keys}
    for r in rows:
        r = dict(r, attention_mask=[1] * len(r["input_ids"]))
        n_pad = width - len(r["input_ids"])
        for k in keys:
            pad = [fill[k]] * n_pad
            out[k].append(pad + r[k] if left else r[k] + pad)
    batch = {k: torch.tensor(v, dtype=torch.long) for k, v in out.items()}
    if has_images:
        batch["pixel_values"] = torch.cat([r["pixel_values"] for r in rows if "pixel_values" in r])
        batch["image_grid_thw"] = torch.cat([r["image_grid_thw"] for r in rows if "image_grid_thw" in r])
    return batch


def encode_sft_batch(
    lm: LoadedModel,
    prompts: Sequence[str],
    images: Sequence[Sequence[Image.Image]],
    responses: Sequence[str],
    *,
    max_length: int,
) -> dict[str, torch.Tensor]:
    """Right-padded SFT batch; `labels` supervise only the response and its closing end-of-turn token.

    Too-long rows lose the end of the response, never prompt or image tokens (cutting inside an image
    would desynchronise pixel_values and placeholders). A row whose prompt leaves no room for even one
    response token raises ValueError naming the row.
    """
    _check_lengths(prompts=prompts, images=images, responses=responses)
    end_id = end_of_turn_id(lm.tokenizer)
    response_ids = [list(lm.tokenizer(r, add_special_tokens=False)["input_ids"]) + [end_id] for r in responses]
    return encode_response_batch(lm, prompts, images, response_ids, max_length=max_length)


def encode_response_batch(
    lm: LoadedModel,
    prompts: Sequence[str],
    images: Sequence[Sequence[Image.Image]],
    response_ids: Sequence[Sequence[int]],
    *,
    max_length: int,
) -> dict[str, torch.Tensor]:
    """Right-padded prompt + given response tokens (e.g. sampled by vLLM); `labels` hold the response ids.

    The prompt is encoded exactly as `encode_prompts` does, which is also what vLLM expands an
    unexpanded prompt into, so log-probs recomputed on this batch line up with the rollout's.
    """
    _check_lengths(prompts=prompts, images=images, response_ids=response_ids)
    rows = []
    for i, (prompt, imgs, resp) in enumerate(zip(prompts, images, response_ids, strict=True)):
        row = _encode_prompt(lm, prompt, imgs)
        n_prompt = len(row["input_ids"])
        if n_prompt >= max_length:
            raise ValueError(
                f"row {i}: prompt is {n_prompt} tokens (images expanded) but max_length={max_length} "
                "leaves no room for the response; raise max_length or shorten the prompt"
            )
        resp = list(resp)[: max_length - n_prompt]
        row["input_ids"] = row["input_ids"] + resp
        row["labels"] = [IGNORE_INDEX] * n_prompt + resp
        row["mm_token_type_ids"] = row["mm_token_type_ids"] + [0] * len(resp)
        rows.append(row)
    return _collate(rows, lm.tokenizer.pad_token_id, left=False)


def encode_prompts(
    lm: LoadedModel, prompts: Sequence[str], images: Sequence[Sequence[Image.Image]]
) -> dict[str, torch.Tensor]:
    """Left-padded generation inputs (expanded image placeholders, ends with the assistant header)."""
    _check_lengths(prompts=prompts, images=images)
    rows = [_encode_prompt(lm, p, imgs) for p, imgs in zip(prompts, images, strict=True)]
    return _collate(rows, lm.tokenizer.pad_token_id, left=True)


def _generation_config(lm: LoadedModel, max_new_tokens: int, temperature: float) -> GenerationConfig:
    """Explicit settings so checkpoint defaults (e.g. Qwen's repetition_penalty/top_p) do not leak in:
    plain greedy or plain temperature sampling, as the RL rollout engine does."""
    sample = temperature > 0
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=sample,
        temperature=temperature if sample else 1.0,
        top_k=0 if sample else 50,  # 0 disables top-k; 50 is the (unused) greedy default, avoids a warning
        top_p=1.0,
        repetition_penalty=1.0,
        eos_token_id=stop_token_ids(lm),
        pad_token_id=lm.tokenizer.pad_token_id,
        suppress_tokens=blocked_token_ids(lm.tokenizer) or None,
    )


@torch.no_grad()
def generate_ids(
    lm: LoadedModel,
    prompts: Sequence[str],
    images: Sequence[Sequence[Image.Image]],
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    batch_size: int = 32,
    seed: int | None = None,
) -> list[list[int]]:
    """Completion token ids per prompt, up to and including the stop token (if one was produced)."""
    n = _check_lengths(prompts=prompts, images=images)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    config = _generation_config(lm, max_new_tokens, temperature)
    stops = set(stop_token_ids(lm))
    model = lm.model
    devices = [model.device] if model.device.type == "cuda" else []
    out: list[list[int]] = []
    with torch.random.fork_rng(devices=devices, enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        for start in range(0, n, batch_size):
            batch = encode_prompts(lm, prompts[start : start + batch_size], images[start : start + batch_size])
            batch = {k: v.to(model.device) for k, v in batch.items()}
            if "pixel_values" in batch:
                batch["pixel_values"] = batch["pixel_values"].to(model.dtype)
            seqs = model.generate(**batch, generation_config=config)
            for row in seqs[:, batch["input_ids"].shape[1] :].tolist():
                cut = next((j + 1 for j, t in enumerate(row) if t in stops), len(row))
                out.append(row[:cut])
    return out


@torch.no_grad()
def generate(
    lm: LoadedModel,
    prompts: Sequence[str],
    images: Sequence[Sequence[Image.Image]],
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    batch_size: int = 32,
    seed: int | None = None,
) -> list[str]:
    """Decoded completions (special tokens removed); vision tokens are suppressed, stops at end of turn.
    Greedy when temperature == 0. `seed` makes sampling reproducible without touching the global RNG."""
    ids = generate_ids(
        lm, prompts, images, max_new_tokens=max_new_tokens, temperature=temperature,
        batch_size=batch_size, seed=seed,
    )
    return lm.tokenizer.batch_decode(ids, skip_special_tokens=True)
