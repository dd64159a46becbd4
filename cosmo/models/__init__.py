"""Models: the offline-built tiny Qwen2.5-VL, loading of real checkpoints, chat encoding, generation."""

from cosmo.models.chat import (
    blocked_token_ids,
    chat_prompt,
    encode_prompts,
    encode_response_batch,
    encode_sft_batch,
    end_of_turn_id,
    generate,
    generate_ids,
)
from cosmo.models.gguf import convert_smollm2
from cosmo.models.loading import LoadedModel, load_model, load_preprocessing
from cosmo.models.tiny import PRESETS, build_tiny_model

__all__ = [
    "PRESETS",
    "LoadedModel",
    "blocked_token_ids",
    "build_tiny_model",
    "chat_prompt",
    "convert_smollm2",
    "encode_prompts",
    "encode_response_batch",
    "encode_sft_batch",
    "end_of_turn_id",
    "generate",
    "generate_ids",
    "load_model",
    "load_preprocessing",
]
