"""One loading path for every model COSMO trains: the tiny built VLM, real Qwen2.5-VL / Qwen2-VL, and
text-only causal LMs (e.g. the converted SmolLM2). Callers branch on `LoadedModel.multimodal` only."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoProcessor,
    AutoTokenizer,
    PreTrainedTokenizerBase,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLForConditionalGeneration,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

VLM_CLASSES: dict[str, type[transformers.PreTrainedModel]] = {
    "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration,
    "qwen2_vl": Qwen2VLForConditionalGeneration,
}


@dataclass
class LoadedModel:
    """A model with the matching preprocessing. `processor` is the Qwen processor for VLMs and the
    tokenizer itself for text-only models, so `processor(text=...)` works for both."""

    model: transformers.PreTrainedModel | None  # None from load_preprocessing: weights live elsewhere
    processor: Any
    tokenizer: PreTrainedTokenizerBase
    multimodal: bool
    path: str


def _hub_allowed() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in {"1", "true", "yes", "on"}


def read_model_type(path: str | Path) -> str:
    """`model_type` of a local checkpoint dir or (when online) a hub id, with errors that say what is wrong."""
    p = Path(path).expanduser()
    if p.is_dir():
        cfg = p / "config.json"
        if not cfg.is_file():
            raise FileNotFoundError(f"{p} is a directory but has no config.json: expected an HF checkpoint dir")
        model_type = json.loads(cfg.read_text()).get("model_type")
        if not model_type:
            raise ValueError(f"{cfg} has no 'model_type'")
        return model_type
    if p.exists():
        raise NotADirectoryError(f"{p} is a file: expected an HF checkpoint directory with config.json")
    looks_like_hub_id = str(path).count("/") == 1 and not str(path).startswith((".", "/", "~"))
    if not looks_like_hub_id:
        raise FileNotFoundError(f"model path {p} does not exist (expected an HF checkpoint directory)")
    if not _hub_allowed():
        raise FileNotFoundError(
            f"{path!r} is not a local directory and HF_HUB_OFFLINE is set, so it is not fetched from the hub: "
            "pass a local checkpoint directory (e.g. a snapshot dir) or unset HF_HUB_OFFLINE"
        )
    return AutoConfig.from_pretrained(str(path)).model_type


def load_model(
    path: str | Path, *, dtype: torch.dtype = torch.float32, attn_implementation: str = "sdpa"
) -> LoadedModel:
    """Load a checkpoint for training or HF generation, dispatching on `config.model_type`.

    fp32 is the default because bf16 matmuls are ~17x slower on CPUs without AVX512-BF16. Only safetensors
    weights are accepted (no pickle).
    """
    prep = load_preprocessing(path)
    kwargs = dict(dtype=dtype, attn_implementation=attn_implementation, use_safetensors=True)
    if prep.multimodal:
        model = VLM_CLASSES[read_model_type(path)].from_pretrained(prep.path, **kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(prep.path, **kwargs)
    model.eval()
    prep.model = model
    return prep


def load_preprocessing(path: str | Path) -> LoadedModel:
    """Tokenizer and processor without the weights (`model=None`): for rollout actors, whose weights
    live in the inference engine, and for anything that only needs to build prompts."""
    model_type = read_model_type(path)
    src = str(Path(path).expanduser()) if Path(path).expanduser().is_dir() else str(path)
    if model_type in VLM_CLASSES:
        processor = AutoProcessor.from_pretrained(src)
        tokenizer = processor.tokenizer
        multimodal = True
    elif model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        tokenizer = AutoTokenizer.from_pretrained(src)
        processor = tokenizer
        multimodal = False
    else:
        raise ValueError(
            f"{src}: unsupported model_type {model_type!r}; expected one of {sorted(VLM_CLASSES)} "
            "or a text-only causal LM type known to transformers"
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model=None, processor=processor, tokenizer=tokenizer, multimodal=multimodal, path=src)
