"""Build a small random-init Qwen2.5-VL checkpoint offline (no hub access needed).

The checkpoint is a normal HF directory, so the same code path (transformers, vLLM, the learner) serves it
and the real Qwen2.5-VL-3B/7B. Presets and their measured speed are in docs/models.md.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    GenerationConfig,
    PreTrainedTokenizerBase,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
)
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

from cosmo.models.presets import PRESETS
from cosmo.models.tokenizer import SPECIAL_TOKENS, build_tokenizer

VOCAB_SIZE = 2048
IMAGE_SIZE = 112  # 112x112 px -> (112/14)^2 = 64 patches -> 16 tokens after the 2x2 merge
MIN_PIXELS = 28 * 28 * 4
MAX_PIXELS = 28 * 28 * 64


def _token_id(name: str) -> int:
    return SPECIAL_TOKENS.index(name)


def make_config(preset: str) -> Qwen2_5_VLConfig:
    """Qwen2.5-VL config for a preset (vocab 2048 unless the preset sets one, tied embeddings, special-token
    ids 0-13)."""
    spec = _preset(preset)
    text = dict(spec["text"])
    mrope = text.pop("mrope_section")
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    if sum(mrope) != head_dim // 2:
        raise ValueError(f"preset {preset!r}: mrope_section {mrope} must sum to head_dim/2 = {head_dim // 2}")
    text_config = dict(
        text,
        vocab_size=spec.get("vocab_size", VOCAB_SIZE),
        rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": mrope},
        tie_word_embeddings=True,
        max_position_embeddings=4096,
        bos_token_id=None,
        eos_token_id=_token_id("<|im_end|>"),
        pad_token_id=_token_id("<|endoftext|>"),
    )
    vision_config = dict(
        spec["vision"],
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=IMAGE_SIZE,
        out_hidden_size=text["hidden_size"],
    )
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=_token_id("<|image_pad|>"),
        video_token_id=_token_id("<|video_pad|>"),
        vision_start_token_id=_token_id("<|vision_start|>"),
        vision_end_token_id=_token_id("<|vision_end|>"),
        tie_word_embeddings=True,
    )


def _preset(preset: str) -> dict[str, Any]:
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of: {', '.join(sorted(PRESETS))}")
    return copy.deepcopy(PRESETS[preset])


def make_image_processor() -> Qwen2VLImageProcessor:
    """Image processor that maps a 112x112 image to 16 tokens (min 4, max 64 tokens per image)."""
    return Qwen2VLImageProcessor(
        min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, patch_size=14, merge_size=2, temporal_patch_size=2
    )


def count_params(model: torch.nn.Module) -> dict[str, int]:
    """Unique parameters (tied embeddings counted once), split vision / text."""
    total = sum(p.numel() for p in model.parameters())
    vision = sum(p.numel() for p in model.model.visual.parameters())
    return {"total": total, "vision": vision, "text": total - vision}


def build_tiny_model(
    out_dir: str | Path, *, preset: str = "tiny", seed: int = 0, corpus: Sequence[str]
) -> Path:
    """Write a random-init Qwen2.5-VL checkpoint + trained BPE tokenizer + processor to `out_dir`.

    Deterministic: the same (preset, seed, corpus) gives byte-identical weights and tokenizer files, so a
    run can be reproduced from its config alone. Returns the checkpoint directory.
    """
    config = make_config(preset)
    if isinstance(corpus, str):
        raise TypeError("corpus must be a sequence of strings, not a single string")
    corpus = list(corpus)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = build_tokenizer(corpus, VOCAB_SIZE)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32)
    model.generation_config = GenerationConfig(
        eos_token_id=_token_id("<|im_end|>"),
        pad_token_id=_token_id("<|endoftext|>"),
        do_sample=False,
    )
    model.save_pretrained(out, safe_serialization=True)
    save_processor(out, tokenizer)

    params = count_params(model)
    meta = {
        "preset": preset,
        "seed": seed,
        "params": params,
        "vocab_size": config.text_config.vocab_size,
        "tokenizer_size": VOCAB_SIZE,
        "image_size": IMAGE_SIZE,
        "image_tokens": (IMAGE_SIZE // 28) ** 2,
        "corpus_docs": len(corpus),
        "corpus_sha256": hashlib.sha256("\x00".join(corpus).encode()).hexdigest(),
    }
    (out / "cosmo_model.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return out


def save_processor(out: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    """The processor every COSMO Qwen2.5-VL checkpoint carries: `tokenizer` (with its chat template) and the
    project's image and video processors, saved into `out` (also the image processor on its own)."""
    image_processor = make_image_processor()
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS),
        chat_template=tokenizer.chat_template,
    )
    processor.save_pretrained(out)
    _write_preprocessor_config(out, image_processor)


def _write_preprocessor_config(out: Path, image_processor: Qwen2VLImageProcessor) -> None:
    """Save the image processor on its own too: transformers 5 nests it in processor_config.json, and
    older readers (vLLM's, older transformers) look for preprocessor_config.json with min/max_pixels."""
    image_processor.save_pretrained(out)
    path = out / "preprocessor_config.json"
    cfg = json.loads(path.read_text())
    cfg.update(
        image_processor_type=type(image_processor).__name__,
        processor_class="Qwen2_5_VLProcessor",
        min_pixels=MIN_PIXELS,
        max_pixels=MAX_PIXELS,
    )
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
