"""`smol-vl`: SmolLM2-135M-Instruct's language model inside a Qwen2.5-VL body, built offline.

The text stack is SmolLM2's, weight for weight (Llama and Qwen2 decoder layers compute the same thing once
Qwen2's q/k/v biases are zero, and M-RoPE with three equal position ids is 1-D RoPE), so on text the model
gives SmolLM2's logits. The vision tower and merger are random (the `small` preset's sizes, projecting to
SmolLM2's 576 dims): an untrained VLM with a pretrained language model. docs/models.md, "smol-vl".
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from tokenizers import AddedToken
from transformers import (
    AutoConfig,
    AutoTokenizer,
    GenerationConfig,
    PretrainedConfig,
    PreTrainedTokenizerBase,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
)

from cosmo.models.tiny import count_params, make_config, save_processor
from cosmo.models.tokenizer import CHAT_TEMPLATE, SPECIAL_TOKENS

VISION_PRESET = "small"  # the default preset (docs/models.md): its vision tower, out_hidden_size -> 576
MROPE_SECTION = [8, 12, 12]  # temporal/height/width rotary pairs; sums to head_dim / 2 = 32
# Qwen's vision specials, in Qwen's order; SmolLM2's tokenizer has none of them, so they get ids 49152+.
VISION_SPECIALS: tuple[str, ...] = tuple(
    t for t in SPECIAL_TOKENS if t.startswith(("<|vision_", "<|image_", "<|video_"))
)
END_OF_TURN = "<|im_end|>"
VOCAB_ROWS = frozenset({"model.language_model.embed_tokens.weight", "lm_head.weight"})  # grown for added tokens


def _content_macro() -> str:
    """A Jinja macro that renders a message's content as the tiny model's template does: a string as is,
    a list part by part with one `<|vision_start|><|image_pad|><|vision_end|>` per image. The body is cut
    out of cosmo.models.tokenizer.CHAT_TEMPLATE, so both templates render content with the same code."""
    start = CHAT_TEMPLATE.index("{%- if message['content'] is string -%}")
    end = CHAT_TEMPLATE.index("<|im_end|>", start)
    return "{%- macro cosmo_content(message) -%}" + CHAT_TEMPLATE[start:end] + "{%- endmacro -%}"


def extend_chat_template(template: str) -> str:
    """SmolLM2's template with list content (text and image parts) allowed: the one place it prints
    `message['content']` goes through the tiny template's content rendering. Plain string content renders
    exactly as before, so text prompts keep SmolLM2's token ids."""
    needle = "message['content']"
    if template.count(needle) != 1:
        raise ValueError(f"expected exactly one {needle} in the source chat template, found "
                         f"{template.count(needle)}: cannot extend it for images")
    return _content_macro() + template.replace(needle, "cosmo_content(message)")


def _vision_tokenizer(source: Path) -> tuple[PreTrainedTokenizerBase, dict[str, int]]:
    """SmolLM2's tokenizer + the Qwen vision specials it lacks (appended as special tokens) + the
    extended chat template. Returns the tokenizer and {added token: id}."""
    tokenizer = AutoTokenizer.from_pretrained(source)
    n_source = len(tokenizer)
    missing = [t for t in VISION_SPECIALS if t not in tokenizer.get_vocab()]
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True)
    added = {t: tokenizer.convert_tokens_to_ids(t) for t in missing}
    if sorted(added.values()) != list(range(n_source, n_source + len(missing))):
        raise RuntimeError(f"added vision tokens got ids {added}, expected {n_source}..")
    if tokenizer.chat_template is None:
        raise ValueError(f"{source}: the tokenizer has no chat template")
    tokenizer.chat_template = extend_chat_template(tokenizer.chat_template)
    return tokenizer, added


def make_smol_vl_config(source: PretrainedConfig, tokenizer: PreTrainedTokenizerBase) -> Qwen2_5_VLConfig:
    """Qwen2.5-VL config with SmolLM2's text sizes, RoPE base and eos/pad, and the vision preset's tower."""
    head_dim = source.hidden_size // source.num_attention_heads
    if getattr(source, "head_dim", head_dim) != head_dim:
        raise ValueError(f"source head_dim {source.head_dim} != hidden/heads = {head_dim}: Qwen2 cannot express it")
    if sum(MROPE_SECTION) != head_dim // 2:
        raise ValueError(f"mrope_section {MROPE_SECTION} must sum to head_dim/2 = {head_dim // 2}")
    if getattr(source, "attention_bias", False) or getattr(source, "mlp_bias", False):
        raise ValueError("source has attention/MLP biases; only bias-free Llama checkpoints are mapped")
    rope = dict(source.rope_parameters or {})
    if rope.get("rope_type", "default") != "default":
        raise ValueError(f"source RoPE {rope} is scaled: only plain RoPE maps onto M-RoPE")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (*VISION_SPECIALS, END_OF_TURN)}
    text_config = dict(
        vocab_size=len(tokenizer),
        hidden_size=source.hidden_size,
        num_hidden_layers=source.num_hidden_layers,
        num_attention_heads=source.num_attention_heads,
        num_key_value_heads=source.num_key_value_heads,
        intermediate_size=source.intermediate_size,
        hidden_act=source.hidden_act,
        rms_norm_eps=source.rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": rope["rope_theta"], "mrope_section": MROPE_SECTION},
        max_position_embeddings=source.max_position_embeddings,
        tie_word_embeddings=source.tie_word_embeddings,
        bos_token_id=source.bos_token_id,
        eos_token_id=ids[END_OF_TURN],
        pad_token_id=tokenizer.pad_token_id,
    )
    vision_config = dict(make_config(VISION_PRESET).vision_config.to_dict(), out_hidden_size=source.hidden_size)
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=source.tie_word_embeddings,
    )


def map_text_weights(source: dict[str, torch.Tensor], config: Qwen2_5_VLConfig) -> dict[str, torch.Tensor]:
    """SmolLM2 (Llama) safetensors -> Qwen2.5-VL state_dict names: `model.*` -> `model.language_model.*`,
    q/k/v biases zero, embedding (and an untied lm_head) grown by the mean of the source rows."""
    text = config.text_config
    out: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        if key == "lm_head.weight" and text.tie_word_embeddings:
            continue  # saved by some exporters although tied: the embedding is the head
        if key.startswith("model."):
            out["model.language_model." + key.removeprefix("model.")] = value.to(torch.float32)
        elif key == "lm_head.weight":
            out[key] = value.to(torch.float32)
        else:
            raise ValueError(f"unexpected source weight {key!r}")
    for name in sorted(VOCAB_ROWS & out.keys()):
        rows = out[name]
        extra = text.vocab_size - rows.shape[0]
        # fp64 mean: the same bits whatever the thread count, so the file is byte-identical across machines
        mean = rows.double().mean(dim=0, keepdim=True).to(torch.float32)
        out[name] = torch.cat([rows, mean.expand(extra, -1)]).contiguous()
    head_dim = text.hidden_size // text.num_attention_heads
    sizes = {"q": text.num_attention_heads * head_dim, "k": text.num_key_value_heads * head_dim,
             "v": text.num_key_value_heads * head_dim}
    for layer in range(text.num_hidden_layers):
        for proj, size in sizes.items():
            out[f"model.language_model.layers.{layer}.self_attn.{proj}_proj.bias"] = torch.zeros(size)
    return out


def build_smol_vl(out_dir: str | Path, *, source: str | Path, seed: int = 0) -> Path:
    """Write the smol-vl checkpoint (Qwen2_5_VLForConditionalGeneration, fp32 safetensors) + its processor.

    `source` is a converted SmolLM2 (`cosmo model convert-smollm2`). Deterministic: the same source and
    seed give a byte-identical model.safetensors. Returns `out_dir`.
    """
    src = Path(source).expanduser()
    if not (src / "config.json").is_file() or not (src / "model.safetensors").is_file():
        raise FileNotFoundError(f"{src} holds no converted SmolLM2 (config.json + model.safetensors): run "
                                f"`cosmo model convert-smollm2 --out {src}` first")
    source_config = AutoConfig.from_pretrained(src)
    if source_config.model_type != "llama":
        raise ValueError(f"{src}: expected a Llama checkpoint (SmolLM2), got model_type {source_config.model_type!r}")
    tokenizer, added = _vision_tokenizer(src)
    config = make_smol_vl_config(source_config, tokenizer)
    weights = map_text_weights(load_file(src / "model.safetensors"), config)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    random_left = [k for k in missing if not k.startswith("model.visual.") and k != "lm_head.weight"]
    if unexpected or random_left:
        raise RuntimeError(f"weight mapping incomplete: unexpected {unexpected}, unmapped text weights {random_left}")
    if config.tie_word_embeddings:
        model.tie_weights()
        assert model.lm_head.weight.data_ptr() == model.model.language_model.embed_tokens.weight.data_ptr()
    model.generation_config = GenerationConfig(
        bos_token_id=source_config.bos_token_id,
        eos_token_id=config.text_config.eos_token_id,
        pad_token_id=config.text_config.pad_token_id,
        do_sample=False,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    save_processor(out, tokenizer)
    meta = {
        "kind": "smol-vl",
        "source": str(src),
        "seed": seed,
        "vision_preset": VISION_PRESET,
        "mrope_section": MROPE_SECTION,
        "params": count_params(model),
        "vocab_size": config.text_config.vocab_size,
        "source_vocab_size": source_config.vocab_size,
        "added_tokens": added,
        "new_embedding_rows": "mean of the source embedding rows",
    }
    (out / "cosmo_model.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return out
