"""smol-vl (cosmo.models.smol_vl): SmolLM2-135M-Instruct inside a Qwen2.5-VL body. On text it must be SmolLM2
(same prompt ids, same logits), on images it must run as a Qwen2.5-VL, and its build must be reproducible.
`make test` converts SmolLM2 first and names it in COSMO_SMOLLM2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from cosmo.files import sha256_file

SMOLLM2 = os.environ.get("COSMO_SMOLLM2")

pytestmark = pytest.mark.skipif(SMOLLM2 is None, reason="needs SmolLM2 converted from PyPI: `make test` does it and "
                                                        "sets COSMO_SMOLLM2 (or: cosmo model convert-smollm2 --out "
                                                        "DIR; COSMO_SMOLLM2=DIR)")

# Plain chat prompts written for this test (no benchmark rows); one with a system message of its own.
PROMPTS = [
    "What is the capital of France?",
    "Write one sentence about a cat sleeping in the sun.",
    "List three colours of the rainbow.",
    "How many legs does a spider have? Answer with a number.",
    "Explain in a few words why the sky looks blue.",
]
SYSTEM = "You answer in one short sentence."


@pytest.fixture(scope="module")
def source() -> Path:
    path = Path(SMOLLM2)
    if not (path / "config.json").is_file():
        pytest.fail(f"COSMO_SMOLLM2={path} holds no converted model (cosmo model convert-smollm2 --out {path})")
    return path


@pytest.fixture(scope="module")
def built(source, tmp_path_factory) -> Path:
    from cosmo.models.smol_vl import build_smol_vl

    return build_smol_vl(tmp_path_factory.mktemp("smol-vl") / "a", source=source, seed=0)


def _messages(prompt: str, system: bool, parts: bool) -> list[dict]:
    content = [{"type": "text", "text": prompt}] if parts else prompt
    head = [{"role": "system", "content": SYSTEM}] if system else []
    return [*head, {"role": "user", "content": content}]


@torch.no_grad()
def test_text_prompts_give_smollm2_ids_and_logits(built, source):
    from cosmo.models import chat_prompt, load_model

    smol, vl = load_model(source), load_model(built)
    assert not smol.multimodal and vl.multimodal
    assert type(vl.model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    n_vocab = smol.model.config.vocab_size  # 49152; the added vision tokens come after
    assert vl.model.config.text_config.vocab_size == len(vl.tokenizer) > n_vocab
    assert vl.tokenizer.convert_tokens_to_ids("<|im_end|>") == vl.model.config.text_config.eos_token_id
    rows = []
    for i, prompt in enumerate(PROMPTS):
        # each model renders with its own template: cosmo's path (list content for the VLM) and a system turn
        system = i % 2 == 0
        pairs = [(chat_prompt(smol, prompt), chat_prompt(vl, prompt)), (
            smol.tokenizer.apply_chat_template(_messages(prompt, system, False), tokenize=False,
                                               add_generation_prompt=True),
            vl.processor.apply_chat_template(_messages(prompt, system, True), tokenize=False,
                                             add_generation_prompt=True),
        )]
        for smol_text, vl_text in pairs:
            assert smol_text == vl_text
            ids = smol.tokenizer(smol_text, add_special_tokens=False)["input_ids"]
            assert vl.tokenizer(vl_text, add_special_tokens=False)["input_ids"] == ids
        rows.append(ids)  # the last rendering of each prompt: with a system turn for every other one
    # one right-padded batch per model: real tokens keep positions 0..n-1 in both, pads come after them
    width = max(len(r) for r in rows)
    ids_t = torch.tensor([r + [smol.tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    want = smol.model(input_ids=ids_t, attention_mask=mask).logits
    got = vl.model(input_ids=ids_t, attention_mask=mask).logits[..., :n_vocab]
    # M-RoPE with three equal position rows (text) is SmolLM2's 1-D RoPE, bit for bit
    positions = torch.arange(width)[None]
    rope = vl.model.model.language_model.rotary_emb(got, positions[None].expand(3, -1, -1))
    for a, b in zip(rope, smol.model.model.rotary_emb(got, positions), strict=True):
        assert torch.equal(a, b)
    real = mask.bool()
    worst = (got[real] - want[real]).abs().max().item()
    print(f"smol-vl vs SmolLM2 fp32 logits, {len(PROMPTS)} prompts / {int(mask.sum())} tokens: "
          f"max abs diff {worst:.3g}")
    assert worst < 1e-4


@torch.no_grad()
def test_build_is_deterministic_and_runs_an_image(built, source, tmp_path):
    from PIL import Image

    from cosmo.models import chat_prompt, load_model
    from cosmo.models.smol_vl import build_smol_vl

    again = build_smol_vl(tmp_path / "b", source=source, seed=0)
    assert sha256_file(again / "model.safetensors") == sha256_file(built / "model.safetensors")

    lm = load_model(built)
    image = Image.new("RGB", (56, 56), "white")
    text = chat_prompt(lm, "What colour is this square?", n_images=1)
    assert "<|vision_start|><|image_pad|><|vision_end|>What colour" in text
    enc = lm.processor(text=[text], images=[image], return_tensors="pt")
    merge = lm.processor.image_processor.merge_size
    n_image_tokens = int((enc["input_ids"] == lm.model.config.image_token_id).sum())
    assert n_image_tokens == int(enc["image_grid_thw"].prod()) // merge**2 > 0
    logits = lm.model(**enc).logits
    assert logits.shape == (1, enc["input_ids"].shape[1], len(lm.tokenizer))
    assert torch.isfinite(logits).all()


@pytest.mark.slow
def test_vllm_qwen25vl_engine_answers_text_as_smollm2_and_reads_an_image_prompt(built, source, vllm_greedy):
    """The engine the rollout actors use: SmolLM2 through vLLM's Llama path and smol-vl through its Qwen2.5-VL
    path give the same prompt ids and the same greedy answers on text; an image prompt expands to the image's
    tokens and is answered."""
    from PIL import Image

    none: list[list] = [[] for _ in PROMPTS]
    smol_prompt, smol_out = vllm_greedy(source, PROMPTS, none, max_tokens=24)
    vl_prompt, vl_out = vllm_greedy(built, PROMPTS, none, max_tokens=24)
    assert vl_prompt == smol_prompt
    assert vl_out == smol_out
    assert all(len(ids) > 0 for ids in vl_out)

    image = Image.new("RGB", (56, 56), "white")
    (ids,), (answer,) = vllm_greedy(built, ["What colour is this square?"], [[image]], max_tokens=8)
    from cosmo.models import chat_prompt, load_model

    lm = load_model(built)
    enc = lm.processor(text=[chat_prompt(lm, "What colour is this square?", n_images=1)], images=[image],
                       return_tensors="pt")
    assert ids == enc["input_ids"][0].tolist()  # vLLM expands the image as the HF processor does
    assert ids.count(lm.model.config.image_token_id) > 0
    assert len(answer) > 0 and lm.model.config.image_token_id not in answer
