"""`cosmo plan`: parameter counts, memory formulas (by hand and against DeepSpeed's estimators), verdicts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from cosmo.cli import main
from cosmo.config import load_config
from cosmo.plan import (
    activation_bytes,
    kv_bytes_per_token,
    model_states_bytes,
    plan,
)
from cosmo.plan_shapes import ModelShape, config_shape, known_shape, safetensors_counts, text_params

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# a toy decoder: 2 layers, hidden 8, 2 heads x 4, 1 KV head, FFN 16, vocab 32
TOY = ModelShape("toy", "test", layers=2, hidden=8, heads=2, kv_heads=1, head_dim=4, intermediate=16, vocab=32,
                 params=1480, vision_params=0, largest_layer=256)


def test_text_params_by_hand():
    # per layer: q 8x8 + k 8x4 + v 8x4 + o 8x8 = 192 weights, q/k/v biases 8 + 4 + 4 = 16,
    # MLP 3 x 8 x 16 = 384, two norms 2 x 8 = 16 -> 608; 2 layers 1216; tied embedding 32 x 8 = 256;
    # final norm 8 -> 1480
    assert text_params(2, 8, 2, 1, 4, 16, 32, tied=True) == 1480
    assert text_params(2, 8, 2, 1, 4, 16, 32, tied=False) == 1480 + 256  # + LM head


def test_counts_match_the_instantiated_model():
    """The closed form against transformers' own Qwen2.5-VL (built on the meta device: no memory)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from cosmo.models.tiny import make_config

    config = make_config("medium")
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    shape = config_shape(config.to_dict(), "medium", "test")
    assert shape.params == sum(p.numel() for p in model.parameters())
    assert shape.vision_params == sum(p.numel() for p in model.model.visual.parameters())


def test_known_table_gives_the_published_sizes():
    # the hub pages list 3.75 B and 8.29 B parameters for Qwen2.5-VL-3B/7B-Instruct
    assert known_shape("Qwen/Qwen2.5-VL-3B-Instruct").params == 3_754_622_976
    assert known_shape("qwen2.5-vl-7b").params == 8_292_166_656
    assert known_shape("Qwen/Qwen2-VL-7B") is None


def test_safetensors_header_counts(tmp_path):
    from safetensors.torch import save_file

    save_file({"model.embed_tokens.weight": torch.zeros(32, 8), "visual.blocks.0.attn.qkv.weight": torch.zeros(24, 8),
               "visual.blocks.0.attn.qkv.bias": torch.zeros(24)}, tmp_path / "model.safetensors")
    # total 256 + 192 + 24 = 472; vision 192 + 24 = 216; largest module: embed_tokens (256) > qkv (216)
    assert safetensors_counts(tmp_path) == (472, 216, 256)


def _ds_printed_gpu_gib(capsys, options: str) -> float:
    row = next(line for line in capsys.readouterr().out.splitlines() if line.rstrip().endswith(options))
    return float(re.findall(r"([\d.]+)GB", row)[1])


def test_model_states_equal_deepspeeds_estimators(capsys):
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs_all_cold
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs_all_cold

    params, largest, ranks = 7_615_616_512, 544_997_376, 4
    ours2 = model_states_bytes(params, 0, largest, ranks, stage=2, mixed=True)
    assert ours2 == 2 * params + 18 * params // ranks  # by hand: bf16 weights whole, the other 18 B sharded
    estimate_zero2_model_states_mem_needs_all_cold(total_params=params, num_gpus_per_node=ranks)
    assert round(ours2 / 2**30, 2) == _ds_printed_gpu_gib(capsys, "offload_optimizer=none")
    ours3 = model_states_bytes(params, 0, largest, ranks, stage=3, mixed=True)
    assert ours3 == 18 * params // ranks + 4 * largest  # everything sharded, plus one gathered layer
    estimate_zero3_model_states_mem_needs_all_cold(total_params=params, largest_layer_params=largest,
                                                   num_gpus_per_node=ranks)
    assert round(ours3 / 2**30, 2) == _ds_printed_gpu_gib(capsys, "offload_optimizer=none, zero_init=1")


def test_model_states_other_stages_by_hand():
    p, frozen = 1000, 100
    assert model_states_bytes(p, frozen, 10, 4, stage=1, mixed=True) == 4 * p + 16 * p // 4 + 2 * frozen  # 8200
    assert model_states_bytes(p, frozen, 10, 4, stage=0, mixed=True) == 20 * p + 2 * frozen
    assert model_states_bytes(p, frozen, 10, 4, stage=2, mixed=False) == 4 * p + 12 * p // 4 + 4 * frozen
    assert model_states_bytes(p, frozen, 10, 4, stage=3, mixed=False) == 16 * p // 4 + 4 * 10 + 4 * frozen // 4


def test_activations_and_kv_by_hand():
    # per layer and token: 6 x 8 + 2 x 1 x 4 + 4 x 16 = 120 elements; 10 tokens, 2 layers, 2 bytes -> 4800
    assert activation_bytes(TOY, 10, checkpointing=False, dtype_bytes=2) == 4800
    # checkpointing: layer inputs 2 x 8 = 16, plus one layer recomputed 120 -> 136 x 10 x 2 = 2720
    assert activation_bytes(TOY, 10, checkpointing=True, dtype_bytes=2) == 2720
    # K and V x 2 layers x 1 KV head x 4 x 2 bytes = 32; tensor parallel 2 replicates the single KV head
    assert kv_bytes_per_token(TOY, 1, 2) == 32
    assert kv_bytes_per_token(TOY, 2, 2) == 32


def test_7b_recipe_figures_by_hand():
    cfg = load_config(CONFIGS / "qwen2.5-vl-7b.yaml")
    report, fits = plan(cfg, 80)
    # trainable = 8,292,166,656 - 676,550,144 (frozen vision) = 7,615,616,512; ZeRO-3 over 4 ranks:
    # 18 x P / 4 = 34,270,274,304 + 4 x largest layer (embedding 152,064 x 3,584 = 544,997,376) = 2,179,989,504
    # + frozen bf16 sharded 2 x 676,550,144 / 4 = 338,275,072 -> 36,788,538,880 B = 34.26 GiB
    assert re.search(r"model states \(ZeRO-3\) +34\.26 ", report)
    # rl: 4 x 2048 = 8192 tokens x 28 layers x (6 x 3584 + 2 x 4 x 128 + 4 x 18944 = 98,304) x 2 B = 42.00 GiB
    assert re.search(r"activations \(rl\) +42\.00 ", report)
    # weights 8,292,166,656 x 2 B = 15.45 GiB; KV per token 2 x 28 x 4 x 128 x 2 = 57,344 B = 56.0 KiB
    assert re.search(r"weights +15\.45  8\.29 B x 2 B", report) and "x 56.0 KiB" in report
    # log-probs from hidden states in chunks of learner.logprob_chunk_tokens=128 positions:
    # 128 x 152,064 x 16 B = 311,427,072 B = 0.29 GiB (full logits would be 8192 x that: 18.56 GiB)
    assert re.search(r"logits \(rl\) +0\.29 ", report)
    # 34.26 + 42.00 + 0.29 + 1.00 = 77.55 GiB of 80
    assert re.search(r"total +77\.55 +of 80\.00 GiB", report) and fits


def test_cli_exit_codes(capsys):
    recipe = str(CONFIGS / "qwen2.5-vl-7b.yaml")
    assert main(["plan", recipe]) == 0  # 77.55 of 80 GiB (test_7b_recipe_figures_by_hand)
    assert main(["plan", recipe, "--gpu-memory-gib", "76"]) == 1
    # one sequence per micro-batch: rl 2048 tokens -> 10.5 GiB activations; sft (2 x 2048) now decides
    assert main(["plan", recipe, "rl.micro_batch_size=1"]) == 0
    assert main(["plan", recipe, "rl.micro_batch_size=1", "--gpu-memory-gib", "40"]) == 1
    out = capsys.readouterr().out
    assert "verdict: fits" in out and "of 40.00 GiB" in out
    assert main(["plan", str(CONFIGS / "qwen2.5-vl-3b.yaml")]) == 0


def test_engine_without_room_for_weights_is_refused(capsys):
    # 0.2 x 80 GiB = 16 GiB < 15.45 GiB weights + 2 GiB allowance: no KV cache at all
    assert main(["plan", str(CONFIGS / "qwen2.5-vl-7b.yaml"), "rl.micro_batch_size=1",
                 "rollout.gpu_memory_utilization=0.2"]) == 1
    out = capsys.readouterr().out
    assert "change rollout.gpu_memory_utilization, rollout.tensor_parallel_size" in out


@pytest.mark.parametrize("path", ["someone/unknown-model", "Qwen/Qwen2-VL-7B"])
def test_unknown_hub_id_is_one_line_error(capsys, path):
    assert main(["plan", str(CONFIGS / "qwen2.5-vl-7b.yaml"), f"model.path={path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"cosmo: plan: model.path '{path}' is not a local checkpoint")
    assert "model.path=" in err[-1]


def test_local_checkpoint_counts_come_from_its_files(tmp_path):
    """A built tiny model: the shape from its config.json, the exact counts from its safetensors."""
    from cosmo.data import corpus_texts
    from cosmo.models import build_tiny_model

    path = build_tiny_model(tmp_path / "m", preset="tiny", corpus=corpus_texts()[:50])
    cfg = load_config(CONFIGS / "tiny-cpu.yaml", [f"model.path={path}", "model.build_preset=null"])
    report, fits = plan(cfg, 80)
    params = json.loads((path / "cosmo_model.json").read_text())["params"]
    assert fits and f"{params['total'] / 1e6:.2f} M params ({params['vision'] / 1e6:.2f} M vision)" in report
    assert "safetensors headers" in report


def test_unreadable_checkpoint_is_one_line_error(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{not json")
    assert main(["plan", str(CONFIGS / "tiny-cpu.yaml"), f"model.path={tmp_path}"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        f"cosmo: plan: {tmp_path / 'config.json'}: cannot")
