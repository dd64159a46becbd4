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
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
)
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

from cosmo.models.tokenizer import SPECIAL_TOKENS, build_tokenizer

VOCAB_SIZE = 2048
QWEN_VOCAB_SIZE = 151_936  # Qwen2.5-VL's embedding rows (its tokenizer has ~151.6k tokens)
IMAGE_SIZE = 112  # 112x112 px -> (112/14)^2 = 64 patches -> 16 tokens after the 2x2 merge
MIN_PIXELS = 28 * 28 * 4
MAX_PIXELS = 28 * 28 * 64

# text: hidden/layers/heads/kv-heads/FFN, mrope_section must sum to head_dim / 2.
# vision: depth/hidden/heads/FFN; its output is projected to the text hidden size by the merger.
PRESETS: dict[str, dict] = {
    # Test model (cpu-stack.md): ~0.82M params, fastest to build/run; not meant to learn anything.
    "tiny": {
        "text": dict(
            hidden_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=256,
            mrope_section=[4, 6, 6],
        ),
        "vision": dict(depth=2, hidden_size=64, num_heads=2, intermediate_size=128, fullatt_block_indexes=[1]),
        "params_range": (0.75e6, 0.90e6),
    },
    # learnability.md "xs": ~1.07M params; learns the built-in tasks in minutes on 2 CPU cores.
    "small": {
        "text": dict(
            hidden_size=96,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            intermediate_size=384,
            mrope_section=[6, 9, 9],
        ),
        "vision": dict(depth=2, hidden_size=96, num_heads=2, intermediate_size=384, fullatt_block_indexes=[1]),
        "params_range": (1.0e6, 1.15e6),
    },
    # learnability.md "s": ~4.1M params, ~2.7x slower per sample; for longer budgets or a GPU.
    "medium": {
        "text": dict(
            hidden_size=192,
            num_hidden_layers=4,
            num_attention_heads=3,
            num_key_value_heads=1,
            intermediate_size=768,
            mrope_section=[8, 12, 12],
        ),
        "vision": dict(
            depth=4, hidden_size=128, num_heads=2, intermediate_size=512, fullatt_block_indexes=[1, 3]
        ),
        "params_range": (3.9e6, 4.3e6),
    },
    # ~20M params for the scaling bench (bench/scaling.py): a text stack 6 x 384 wide, a 4-block vision tower.
    "large20m": {
        "text": dict(
            hidden_size=384,
            num_hidden_layers=6,
            num_attention_heads=6,
            num_key_value_heads=2,
            intermediate_size=1536,
            mrope_section=[8, 12, 12],
        ),
        "vision": dict(
            depth=4, hidden_size=256, num_heads=4, intermediate_size=1024, fullatt_block_indexes=[1, 3]
        ),
        "params_range": (18e6, 22e6),
    },
}
# "tiny" with Qwen2.5-VL's real vocabulary size: the embedding / LM head have 151,936 rows (the
# tokenizer keeps its 2048 tokens; the other rows are never produced by it). For learner memory
# benches: the [tokens, vocab] logits dominate as in the real model. Not meant for sampling.
PRESETS["tiny-vocab"] = {**copy.deepcopy(PRESETS["tiny"]), "vocab_size": QWEN_VOCAB_SIZE,
                         "params_range": (19.5e6, 20.5e6)}


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
    image_processor = make_image_processor()
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS),
        chat_template=tokenizer.chat_template,
    )

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32)
    model.generation_config = GenerationConfig(
        eos_token_id=_token_id("<|im_end|>"),
        pad_token_id=_token_id("<|endoftext|>"),
        do_sample=False,
    )
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    _write_preprocessor_config(out, image_processor)

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
