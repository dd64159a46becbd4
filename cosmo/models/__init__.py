"""Models: the offline-built tiny Qwen2.5-VL and smol-vl, loading of real checkpoints, chat encoding, generation."""

from cosmo.lazy import lazy_exports

_EXPORTS = {
    "PRESETS": "presets",
    "LoadedModel": "loading",
    "blocked_token_ids": "chat",
    "build_smol_vl": "smol_vl",
    "build_tiny_model": "tiny",
    "chat_prompt": "chat",
    "convert_smollm2": "gguf",
    "encode_prompts": "chat",
    "encode_response_batch": "chat",
    "encode_sft_batch": "chat",
    "end_of_turn_id": "chat",
    "generate": "chat",
    "generate_ids": "chat",
    "load_model": "loading",
    "load_preprocessing": "loading",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
