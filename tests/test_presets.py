"""The large-vocabulary and ~20M-parameter presets: sizes, and tiny-vocab loads and runs in HF."""

from __future__ import annotations

import torch
from safetensors.torch import load_file
from transformers import Qwen2_5_VLForConditionalGeneration

from cosmo.models import build_tiny_model, encode_prompts, load_model
from cosmo.models.tiny import count_params, make_config

CORPUS = ["the cat sat on the mat", "a dog ran in the park", "one two three four five six"] * 20


def test_tiny_vocab_has_qwen_embedding_rows_and_runs(tmp_path):
    out = build_tiny_model(tmp_path / "tv", preset="tiny-vocab", seed=0, corpus=CORPUS)
    tensors = load_file(out / "model.safetensors")
    assert tensors["model.embed_tokens.weight"].shape == (151_936, 128)
    with torch.device("meta"):
        tiny = count_params(Qwen2_5_VLForConditionalGeneration(make_config("tiny")))["total"]
    grown = sum(t.numel() for t in tensors.values()) - tiny
    assert grown == (151_936 - 2048) * 128  # only the (tied) embedding grew
    lm = load_model(out)
    assert len(lm.tokenizer) <= 2048  # the tokenizer stays small
    with torch.no_grad():
        assert lm.model(**encode_prompts(lm, ["hello"], [[]])).logits.shape[-1] == 151_936


def test_large20m_has_about_20m_parameters():
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(make_config("large20m"))
    assert 19e6 <= count_params(model)["total"] <= 21e6  # 19.73M: text 13.77M, vision 5.95M
