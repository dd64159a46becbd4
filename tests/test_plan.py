"""`cosmo plan`: parameter counts, memory formulas (by hand, against DeepSpeed's estimators and against what the
installed transformers' Qwen2.5-VL saves for its backward), verdicts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from cosmo.cli import main
from cosmo.config import load_config
from cosmo.plan import (
    LOGIT_SAVED_BYTES,
    MicroBatch,
    activation_bytes,
    kv_bytes_per_token,
    layer_activation_bytes,
    micro_batch,
    model_states_bytes,
    plan,
    zero_bucket_bytes,
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
    # DeepSpeed's 5e8-element gradient bucket: 16-bit under mixed precision, fp32 for ZeRO-1 and fp32 training
    assert [zero_bucket_bytes(stage, mixed=True) for stage in range(4)] == [0, 2 * 10**9, 10**9, 10**9]
    assert zero_bucket_bytes(2, mixed=False) == 2 * 10**9


def test_micro_batches_and_held_rows_of_the_7b_recipe():
    cfg = load_config(CONFIGS / "qwen2.5-vl-7b.yaml")
    # SFT: 1 sequence of 2,048 (no padding), the step's 64 / 4 ranks = 16 rows held; RL: 64 x 8 / 4 ranks /
    # 4 mini-batches = 32 rows held
    assert micro_batch(cfg, "sft", cfg) == MicroBatch(2048, 2048, False, 16)
    assert micro_batch(cfg, "rl", cfg) == MicroBatch(2048, 2048, False, 32)
    four = load_config(CONFIGS / "qwen2.5-vl-7b.yaml", ["rl.micro_batch_size=4", "rl.mini_batches=1"])
    assert micro_batch(four, "rl", four) == MicroBatch(4 * 2048, 2048, True, 128)
    # a token budget packs rows of different lengths (padded); one longer row goes alone (up to max_length)
    budget = load_config(CONFIGS / "qwen2.5-vl-7b.yaml", ["learner.max_tokens_per_micro_batch=6000"])
    assert micro_batch(budget, "rl", budget) == MicroBatch(6000, 2048, True, 32)
    small = load_config(CONFIGS / "qwen2.5-vl-7b.yaml", ["learner.max_tokens_per_micro_batch=1000"])
    assert micro_batch(small, "rl", small) == MicroBatch(2048, 2048, True, 32)


def test_activations_and_kv_by_hand():
    b = 2  # bf16
    # per layer and token, unpadded: two norms 2 x (4 x 8 fp32 input + 4 rsqrt + 2 x 2 x 8 cast and output) = 136;
    # q and output 2 x 2 x (2 heads x 4) = 32, K and V 2 x 2 x (1 x 4) = 16, fp32 logsumexp 4 x 2 = 8;
    # MLP 4 x 2 x 16 = 128 -> 320. Padded to width 10: K and V of every head 2 x 2 x 8 = 32, mask bias 2 x 10 = 20
    # -> 356
    assert layer_activation_bytes(TOY, 10, padded=False, dtype_bytes=b) == 320
    assert layer_activation_bytes(TOY, 10, padded=True, dtype_bytes=b) == 356
    # outside the layers: final norm 4 x 8 + 4 + 2 x 2 x 8 = 68, cos and sin 2 x 2 x 4 = 16, int64 ids 8 -> 92
    assert activation_bytes(TOY, MicroBatch(10, 10, False, 1), False, b) == 10 * (2 * 320 + 92)  # 7320
    assert activation_bytes(TOY, MicroBatch(20, 10, True, 2), False, b) == 20 * (2 * 356 + 92)  # 16080
    # checkpointing: each layer's input 2 x 8 B, plus one layer recomputed
    assert activation_bytes(TOY, MicroBatch(10, 10, False, 1), True, b) == 10 * (2 * 16 + 320 + 92)  # 4440
    # K and V x 2 layers x 1 KV head x 4 x 2 bytes = 32; tensor parallel 2 replicates the single KV head
    assert kv_bytes_per_token(TOY, 1, 2) == 32
    assert kv_bytes_per_token(TOY, 2, 2) == 32


def _tiny_qwen(dtype: torch.dtype, checkpointing: bool = False):
    """transformers' own Qwen2.5-VL at the `tiny` preset (2 layers, hidden 128, 4 heads / 2 KV heads x 32,
    FFN 256, vocab 2048), random weights, sdpa attention as the GPU recipes use, in training mode."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from cosmo.models.tiny import make_config

    config = make_config("tiny")
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config).to(dtype).train()
    if checkpointing:  # as learner.gradient_checkpointing does
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, config_shape(config.to_dict(), "tiny", "test")


def _saved_bytes(model, padded: bool, labels: bool = False, rows: int = 2, width: int = 64) -> tuple[int, int]:
    """(every byte autograd saves in one forward, the bytes first saved inside the last decoder layer): unique
    storages counted once, parameters left out. Padded: the second row's second half is padding."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    inside, total, last = [False], [0], [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params | seen:
            seen.add(storage.data_ptr())
            total[0] += storage.nbytes()
            last[0] += storage.nbytes() if inside[0] else 0
        return t

    layer = model.model.language_model.layers[-1]
    hooks = [layer.register_forward_pre_hook(lambda *_: inside.__setitem__(0, True)),
             layer.register_forward_hook(lambda *_: inside.__setitem__(0, False))]
    ids = torch.randint(20, 2000, (rows, width))
    mask = torch.ones(rows, width, dtype=torch.long)
    if padded:
        mask[1, width // 2:] = 0
    kwargs = {"labels": ids} if labels else {"logits_to_keep": torch.zeros(0, dtype=torch.long)}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(input_ids=ids, attention_mask=mask, **kwargs)
    for hook in hooks:
        hook.remove()
    del out  # held until here, so no saved storage was freed and its address reused during the count
    return total[0], last[0]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
def test_layer_bytes_match_what_transformers_saves(dtype, padded):
    """The plan's per-layer bytes against a saved-tensor count of the installed Qwen2.5-VL decoder layer (its
    norms' fp32 copies, sdpa's K and V expanded to every head and its additive mask when the batch is padded)."""
    model, shape = _tiny_qwen(dtype)
    b = torch.finfo(dtype).bits // 8
    _, measured = _saved_bytes(model, padded)
    formula = 2 * 64 * layer_activation_bytes(shape, 64, padded, b)
    assert abs(formula - measured) <= 0.05 * measured, (formula, measured)


@pytest.mark.parametrize("checkpointing", [False, True], ids=["all-layers", "checkpointing"])
def test_whole_forward_matches_what_transformers_saves(checkpointing):
    """Every layer and what lies outside them; with checkpointing the forward keeps each layer's input only (the
    plan's one recomputed layer comes back in the backward, so it is left out here)."""
    model, shape = _tiny_qwen(torch.bfloat16, checkpointing)
    mb = MicroBatch(2 * 64, 64, True, 2)
    total, _ = _saved_bytes(model, padded=True, labels=True)
    recomputed = mb.tokens * layer_activation_bytes(shape, 64, True, 2) if checkpointing else 0
    # with labels the loss keeps the fp32 log-softmax of every position (and its int64 targets, 8 B each)
    formula = (activation_bytes(shape, mb, checkpointing, 2) - recomputed
               + mb.tokens * (shape.vocab * LOGIT_SAVED_BYTES + 8))
    assert abs(formula - total) <= 0.05 * total, (formula, total)


def test_7b_recipe_figures_by_hand():
    cfg = load_config(CONFIGS / "qwen2.5-vl-7b.yaml")
    report, fits = plan(cfg, 80)
    # trainable = 8,292,166,656 - 676,550,144 (frozen vision) = 7,615,616,512; ZeRO-3 over 4 ranks:
    # 18 x P / 4 = 34,270,274,304 + 4 x largest layer (embedding 152,064 x 3,584 = 544,997,376) = 2,179,989,504
    # + frozen bf16 sharded 2 x 676,550,144 / 4 = 338,275,072 -> 36,788,538,880 B = 34.26 GiB
    assert re.search(r"model states \(ZeRO-3\) +34\.26 ", report)
    # DeepSpeed's reduce bucket: 5e8 bf16 elements = 1e9 B = 0.93 GiB
    assert re.search(r"ZeRO gradient bucket +0\.93 ", report)
    # sft (1 sequence, unpadded): per layer 2 x (4h + 4 + 4h) = 57,352 + 4 x 3,584 (q, out) + 4 x 4 x 128 (k, v)
    # + 4 x 28 (logsumexp) = 16,496 + 8 x 18,944 = 151,552 -> 225,400 B; outside the layers 4h + 4 + 4h + 4 x 128
    # + 8 = 29,196; 2,048 x (28 x 225,400 + 29,196) = 12,985,131,008 B = 12.09 GiB
    assert re.search(r"activations \(sft\) +12\.09 ", report)
    # full logits in SFT: 2,048 x 152,064 x 12 B = 3,737,124,864 = 3.48 GiB
    assert re.search(r"logits \(sft\) +3\.48 ", report)
    # weights 8,292,166,656 x 2 B = 15.45 GiB; KV per token 2 x 28 x 4 x 128 x 2 = 57,344 B = 56.0 KiB
    assert re.search(r"weights +15\.45  8\.29 B x 2 B", report) and "x 56.0 KiB" in report
    # inputs: the step's 64 / 4 = 16 rows encoded at once, 2,048 x (4 int64 + 4 x 4 x 1,176 fp32 pixel values per
    # image token) = 18,848 B per position: 617,611,264 B = 0.58 GiB
    assert re.search(r"inputs held \(sft\) +0\.58 ", report)
    # allowance 2^30; sum 56,202,147,840, + 5 % margin 2,810,107,392 = 59,012,255,232 B = 54.96 GiB of
    # 0.995 x 80 = 79.60 (69 %)
    assert re.search(r"margin +2\.62 ", report)
    assert re.search(r"total +54\.96 +of 79\.60 GiB \(69 %\)", report) and "verdict: fits\n" in report and fits


def test_cli_exit_codes(capsys):
    recipe = str(CONFIGS / "qwen2.5-vl-7b.yaml")
    assert main(["plan", recipe]) == 0  # 54.96 of 79.60 GiB (test_7b_recipe_figures_by_hand)
    # 58 GiB: 57.71 usable, 54.96 is 95 % of it: fits, with a warning naming what to change
    assert main(["plan", recipe, "--gpu-memory-gib", "58"]) == 0
    out = capsys.readouterr().out
    assert "verdict: fits, tightly" in out and "WARNING: above 90 % of the budget" in out
    assert main(["plan", recipe, "--gpu-memory-gib", "54"]) == 1  # 53.73 usable
    # the recipe before it moved to CPGD's regime: 4 sequences of 2,048 per micro-batch (padded: 51.87 GiB of
    # activations) and one update per batch (all 128 rows' inputs held): 97.53 GiB, where the former formula said 77.55
    old = ["sft.micro_batch_size=2", "rl.micro_batch_size=4", "rl.mini_batches=1"]
    assert main(["plan", recipe, *old]) == 1
    assert "change learner.num_ranks (more ranks shard more), learner.gradient_checkpointing=true" in \
        capsys.readouterr().out
    assert main(["plan", recipe, *old, "learner.gradient_checkpointing=true"]) == 0
    assert main(["plan", str(CONFIGS / "qwen2.5-vl-3b.yaml")]) == 0


@pytest.mark.parametrize("recipe", ["qwen2.5-vl-3b.yaml", "qwen2.5-vl-7b.yaml"])
def test_gpu_recipes_fit_with_room(recipe):
    report, fits = plan(load_config(CONFIGS / recipe), 80)
    learner = report.split("rollout engine")[0]
    percent = int(re.search(r"total .* \((\d+) %\)", learner).group(1))
    assert fits and "verdict: fits\n" in learner and percent < 90


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
