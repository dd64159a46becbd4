"""A model's shape for memory planning, read without downloading or loading any weights.

From a local checkpoint: config.json for the architecture and the safetensors headers for the exact
parameter counts. From a hub id that is not on disk: a table of the public Qwen2.5-VL checkpoints.
From a recipe whose tiny model is not built yet: the preset's config.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path


class PlanError(ValueError):
    """The plan cannot be made (unknown model, unreadable checkpoint); the message says what to pass."""


@dataclass(frozen=True)
class VisionShape:
    depth: int
    hidden: int
    intermediate: int
    out_hidden: int
    patch: int = 14
    temporal_patch: int = 2
    merge: int = 2  # spatial_merge_size: merge x merge patches become one token


@dataclass(frozen=True)
class ModelShape:
    """What the memory formulas need; `params*` are exact when read from safetensors headers."""

    name: str
    source: str  # where the figures come from, shown in the report
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    params: int  # unique parameters (tied embeddings once)
    vision_params: int
    largest_layer: int  # DeepSpeed's "largest layer": the most parameters one module holds directly
    image_token_values: int = 0  # pixel values the processor makes per image token (0: no vision tower)


# The public config.json of each Qwen2.5-VL-*-Instruct checkpoint on the Hugging Face hub
# (huggingface.co/Qwen/Qwen2.5-VL-{3B,7B,32B,72B}-Instruct/blob/main/config.json; copies quoted in
# e.g. github.com/NVIDIA/TensorRT-LLM tests and vLLM's model docs). Every size shares the vision tower:
# depth 32, hidden 1280, intermediate 3420, 16 heads, patch 14, out_hidden_size = the text hidden size.
# Text: (layers, hidden, heads, kv heads, intermediate, vocab, tied embeddings).
QWEN25_VL = {
    "3b": (36, 2048, 16, 2, 11008, 151936, True),
    "7b": (28, 3584, 28, 4, 18944, 152064, False),
    "32b": (64, 5120, 40, 8, 27648, 152064, False),
    "72b": (80, 8192, 64, 8, 29568, 152064, False),
}
QWEN25_VL_VISION = dict(depth=32, hidden=1280, intermediate=3420)
KNOWN_ID = re.compile(r"qwen2\.5-vl-(3b|7b|32b|72b)", re.IGNORECASE)


def text_params(layers: int, hidden: int, heads: int, kv_heads: int, head_dim: int, intermediate: int, vocab: int,
                tied: bool, qkv_bias: bool = True) -> int:
    """Qwen2-style decoder: q/k/v (with bias), o, SwiGLU MLP (3 matrices), two RMSNorms per layer,
    embeddings, final norm, and an LM head unless tied to the embeddings."""
    q, kv = heads * head_dim, kv_heads * head_dim
    attention = hidden * q + 2 * hidden * kv + q * hidden + ((q + 2 * kv) if qkv_bias else 0)
    per_layer = attention + 3 * hidden * intermediate + 2 * hidden
    return vocab * hidden * (1 if tied else 2) + layers * per_layer + hidden


def vision_params(v: VisionShape, in_channels: int = 3) -> int:
    """Qwen2.5-VL vision tower: Conv3d patch embedding (no bias), blocks (two RMSNorms, fused qkv and
    proj with bias, SwiGLU MLP with bias), and the patch merger (RMSNorm, two linears with bias)."""
    h, i = v.hidden, v.intermediate
    patch_embed = in_channels * v.temporal_patch * v.patch * v.patch * h
    block = 2 * h + (3 * h * h + 3 * h) + (h * h + h) + 2 * (h * i + i) + (i * h + h)
    merged = h * v.merge * v.merge
    merger = h + (merged * merged + merged) + (merged * v.out_hidden + v.out_hidden)
    return patch_embed + v.depth * block + merger


def image_token_values(v: VisionShape, in_channels: int = 3) -> int:
    """Values of `pixel_values` per image token: merge x merge patches, each channels x temporal x patch²."""
    return v.merge**2 * in_channels * v.temporal_patch * v.patch**2


def _from_parts(name: str, source: str, layers: int, hidden: int, heads: int, kv_heads: int, head_dim: int,
                intermediate: int, vocab: int, tied: bool, vision: VisionShape | None) -> ModelShape:
    vis = vision_params(vision) if vision else 0
    merged = vision.hidden * vision.merge**2 if vision else 0
    largest = max(vocab * hidden, hidden * intermediate, merged * merged + merged)
    return ModelShape(name, source, layers, hidden, heads, kv_heads, head_dim, intermediate, vocab,
                      text_params(layers, hidden, heads, kv_heads, head_dim, intermediate, vocab, tied) + vis, vis,
                      largest, image_token_values(vision) if vision else 0)


def known_shape(model_id: str) -> ModelShape | None:
    """The table's shape for a Qwen2.5-VL hub id (any case, with or without -Instruct), else None."""
    match = KNOWN_ID.search(model_id)
    if match is None:
        return None
    layers, hidden, heads, kv, inter, vocab, tied = QWEN25_VL[match.group(1).lower()]
    vision = VisionShape(out_hidden=hidden, **QWEN25_VL_VISION)
    return _from_parts(model_id, "known architecture table", layers, hidden, heads, kv, hidden // heads, inter,
                       vocab, tied, vision)


def config_shape(config: dict, name: str, source: str) -> ModelShape:
    """Shape from an HF config dict: transformers 5 nests the decoder in `text_config`, older Qwen2.5-VL
    files keep it at the top level; a text-only model has no `vision_config`."""
    text = {**config, **config.get("text_config", {})}
    try:
        hidden, heads = text["hidden_size"], text["num_attention_heads"]
        vis = config.get("vision_config")
        vision = None
        if vis:
            vision = VisionShape(depth=vis["depth"], hidden=vis["hidden_size"], intermediate=vis["intermediate_size"],
                                 out_hidden=vis.get("out_hidden_size", hidden), patch=vis.get("patch_size", 14),
                                 temporal_patch=vis.get("temporal_patch_size", 2),
                                 merge=vis.get("spatial_merge_size", 2))
        tied = bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False)))
        return _from_parts(name, source, text["num_hidden_layers"], hidden, heads,
                           text.get("num_key_value_heads") or heads, text.get("head_dim") or hidden // heads,
                           text["intermediate_size"], text["vocab_size"], tied, vision)
    except KeyError as exc:
        raise PlanError(f"{source}: config has no {exc.args[0]!r}: not a decoder model this plan knows") from None


def safetensors_counts(directory: Path) -> tuple[int, int, int] | None:
    """(all parameters, vision-tower parameters, largest module's parameters) from the headers of the
    directory's *.safetensors files (8-byte length + JSON: shapes only, no tensor is read); None if none."""
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return None
    per_module: dict[str, int] = {}
    total = vision = 0
    for path in files:
        header = _read_json(path, header=True)
        for tensor, info in header.items():
            if tensor == "__metadata__":
                continue
            n = 1
            for dim in info["shape"]:
                n *= dim
            total += n
            if tensor.startswith(("visual.", "model.visual.")):
                vision += n
            module = tensor.rsplit(".", 1)[0]
            per_module[module] = per_module.get(module, 0) + n
    return total, vision, max(per_module.values())


def _read_json(path: Path, header: bool = False) -> dict:
    """A JSON file, or a safetensors file's JSON header (after its 8-byte little-endian length)."""
    try:
        with open(path, "rb") as f:
            data = f.read(struct.unpack("<Q", f.read(8))[0]) if header else f.read()
        value = json.loads(data)
    except (OSError, ValueError, struct.error) as exc:
        raise PlanError(f"{path}: cannot read its {'safetensors header' if header else 'JSON'} ({exc})") from None
    if not isinstance(value, dict):
        raise PlanError(f"{path}: expected a JSON object")
    return value


def model_shape(path: str, build_preset: str | None = None) -> ModelShape:
    """The shape of `model.path`: a local checkpoint, a recipe's not-yet-built tiny preset, or a known hub id."""
    local = Path(path)
    if (local / "config.json").is_file():
        config = _read_json(local / "config.json")
        shape = config_shape(config, path, f"{local / 'config.json'}")
        counts = safetensors_counts(local)
        if counts is None:
            return shape
        params, vision, largest = counts
        return ModelShape(**{**shape.__dict__, "source": f"{shape.source} + safetensors headers", "params": params,
                             "vision_params": vision, "largest_layer": largest})
    if build_preset is not None:
        from cosmo.models.tiny import make_config  # noqa: PLC0415 - transformers; only for unbuilt presets

        return config_shape(make_config(build_preset).to_dict(), path, f"preset {build_preset!r} (not built yet)")
    shape = known_shape(path)
    if shape is None:
        raise PlanError(f"model.path {path!r} is not a local checkpoint (no config.json there) nor a known "
                        f"architecture (Qwen2.5-VL-3B/7B/32B/72B); pass model.path=<local checkpoint directory>")
    return shape
