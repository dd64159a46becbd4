"""The DeepSpeed learner: 2 ranks as Ray actors learn, stay in sync, and save loadable checkpoints."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import pytest
import torch
from conftest import end_process_group

from cosmo.config import load_config
from cosmo.data import load_images, load_jsonl
from cosmo.models import encode_prompts, generate_ids, load_model
from cosmo.trajectory import LearnerItem
from learner.checkpoint import COMPLETE_MARKER, prune_checkpoints
from learner.engine import OptimSpec, warmup_cosine

ROOT = Path(__file__).resolve().parents[1]


def _cfg(model: Path, data: dict, tmp_path: Path, *overrides: str):
    return load_config(ROOT / "configs" / "tiny-cpu.yaml", [
        f"model.path={model}", f"data.dir={data['train'].parent}", f"logging.runs_dir={tmp_path}",
        "model.build_preset=null", "sft.micro_batch_size=4", "sft.global_batch_size=8", "sft.warmup_steps=0",
        "sft.steps=12", "sft.lr=3e-3", "sft.min_lr_ratio=1.0", "device=cpu", *overrides,
    ])


def test_warmup_cosine_schedule_values():
    spec = OptimSpec(lr=1.0, total_steps=11, warmup_steps=1, min_lr_ratio=0.1, micro_batch_size=1, grad_accum=1)
    f = warmup_cosine(spec)
    assert f(0) == pytest.approx(0.5)  # (0 + 1) / (1 + 1)
    assert f(1) == pytest.approx(1.0)  # cosine starts at the peak
    assert f(6) == pytest.approx(0.1 + 0.9 * 0.5)  # half way: cos(pi/2) = 0
    assert f(11) == pytest.approx(0.1)  # floor at min_lr_ratio


def test_schedule_counts_optimizer_steps_with_several_updates_per_step():
    # 5 RL steps x 2 updates = 10 optimizer steps, warmup 1 RL step = 2 optimizer steps
    spec = OptimSpec(lr=1.0, total_steps=5, warmup_steps=1, min_lr_ratio=0.1, micro_batch_size=1, grad_accum=1,
                     mini_batches=2)
    f = warmup_cosine(spec)
    assert [f(0), f(1)] == pytest.approx([1 / 3, 2 / 3])  # (step + 1) / (2 + 1)
    assert f(2) == pytest.approx(1.0)
    assert f(6) == pytest.approx(0.1 + 0.9 * 0.5)  # (6 - 2) / (10 - 2) = half way
    assert f(10) == pytest.approx(0.1)


def test_prune_keeps_newest_complete(tmp_path):
    for step in (5, 10, 20):
        (tmp_path / f"step_{step}").mkdir()
        (tmp_path / f"step_{step}" / COMPLETE_MARKER).write_text("{}")
    (tmp_path / "step_30").mkdir()  # incomplete: no marker, never counted nor removed here
    removed = prune_checkpoints(tmp_path, keep_last=2)
    assert [p.name for p in removed] == ["step_5"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_10", "step_20", "step_30"]


@pytest.mark.slow
def test_two_rank_sft_loss_falls_ranks_agree_and_checkpoint_loads(ray_cluster, tiny_model, builtin_data, tmp_path,
                                                                   vllm_greedy):
    from learner.group import LearnerGroup

    cfg = _cfg(tiny_model, builtin_data, tmp_path)
    spec = OptimSpec(lr=3e-3, total_steps=12, warmup_steps=0, min_lr_ratio=1.0, micro_batch_size=4, grad_accum=1)
    group = LearnerGroup(cfg)
    try:
        info = group.setup(str(tiny_model), str(builtin_data["train"]), spec)
        assert [i["rank"] for i in info] == [0, 1] and info[0]["params"] == info[1]["params"]
        batch = list(range(8))  # the same 8 rows every step: the loss on them must fall
        losses = [group.sft_step(batch)["loss"] for _ in range(12)]
        digests = group.param_digests()
        out = group.save(str(tmp_path / "ckpt" / "step_12"), {"step": 12}, {"stage": "sft", "step": 12})
    finally:
        group.shutdown()
    assert losses[-1] < 0.7 * losses[0], losses
    # ZeRO-2 data parallel: both ranks hold identical full weights after every step
    assert digests[0] == pytest.approx(digests[1], rel=1e-12)
    assert (Path(out) / COMPLETE_MARKER).is_file() and (Path(out) / "model.safetensors").is_file()
    # the checkpoint loads in transformers and in vLLM, and both decode the same greedy tokens
    reloaded = load_model(out)
    assert reloaded.multimodal
    rows = [r for r in load_jsonl(builtin_data["eval"]) if r.images][:2]
    rows += [r for r in load_jsonl(builtin_data["eval"]) if not r.images][:1]
    prompts, images = [r.prompt for r in rows], [load_images(r) for r in rows]
    hf_ids = generate_ids(reloaded, prompts, images, max_new_tokens=12)
    _, vllm_ids = vllm_greedy(out, prompts, images, max_tokens=12)
    assert vllm_ids == hf_ids


def _save(rank, out_dir: Path, step: int) -> str:
    tmp = rank.prepare_checkpoint(str(out_dir))
    rank.save(tmp)
    return rank.finalize_checkpoint(tmp, str(out_dir), {"step": step}, {"stage": "sft", "step": step})


def _optimizer_tensors(rank) -> dict:
    from learner.train_state import _base_optimizer, _masters

    state = _base_optimizer(rank.engine).state_dict()["state"]
    tensors = {f"{pid}.{k}": v.clone() for pid, st in state.items() for k, v in st.items()}
    tensors.update({f"master.{i}": m.detach().clone() for i, m in enumerate(_masters(rank.engine))})
    return tensors


@pytest.mark.slow
def test_checkpoint_reloads_to_the_same_logits(tiny_model, builtin_data, tmp_path):
    """Single rank in this process: the saved HF checkpoint reproduces the trained module's logits."""
    if "COSMO_LOOPBACK" not in os.environ:
        pytest.fail("torch.distributed tests must run through deploy/loopback.sh (as `make test` does)")

    from learner.actor import LearnerRank
    from learner.checkpoint import verify_checkpoint

    cfg = _cfg(tiny_model, builtin_data, tmp_path, "learner.num_ranks=1")
    spec = OptimSpec(lr=3e-3, total_steps=3, warmup_steps=0, min_lr_ratio=1.0, micro_batch_size=4, grad_accum=2)
    rank = LearnerRank(0, 1, cfg)
    try:
        rank.setup(f"file://{tmp_path}/store", str(tiny_model), str(builtin_data["train"]), spec, threads=2)
        for _ in range(3):
            rank.sft_step(list(range(8)))
        out_dir = tmp_path / "ckpt" / "step_3"
        tmp = rank.prepare_checkpoint(str(out_dir))
        rank.save(tmp)
        out = rank.finalize_checkpoint(tmp, str(out_dir), {"step": 3}, {"stage": "sft", "step": 3})
        rows = [r for r in load_jsonl(builtin_data["eval"]) if r.images][:2]
        reloaded = load_model(out)
        inputs = encode_prompts(reloaded, [r.prompt for r in rows], [load_images(r) for r in rows])
        trained = rank.engine.module.eval()
        with torch.no_grad():
            expected = trained(**inputs).logits
            got = reloaded.model(**inputs).logits
    finally:
        end_process_group()
    assert verify_checkpoint(Path(out)) is None
    assert torch.allclose(expected, got, atol=1e-5), (expected - got).abs().max()
    # and training changed the model: the start checkpoint gives different logits
    start = load_model(tiny_model)
    with torch.no_grad():
        assert not torch.allclose(start.model(**inputs).logits, got, atol=1e-3)


@pytest.mark.slow
def test_two_rank_learner_resumes_bit_exactly(ray_cluster, tiny_model, builtin_data, tmp_path):
    """3 steps, checkpoint, 2 more steps == restore the checkpoint into new ranks, take the same 2
    steps: equal weights, AdamW moments, fp32 master partitions, schedule and losses."""
    from learner.checkpoint import TRAIN_STATE
    from learner.group import LearnerGroup

    cfg = _cfg(tiny_model, builtin_data, tmp_path)
    spec = OptimSpec(lr=3e-3, total_steps=6, warmup_steps=2, min_lr_ratio=0.1, micro_batch_size=4, grad_accum=1)
    batches = [list(range(8 * i, 8 * i + 8)) for i in range(5)]
    group = LearnerGroup(cfg)
    try:
        group.setup(str(tiny_model), str(builtin_data["train"]), spec)
        for batch in batches[:3]:
            group.sft_step(batch)
        out = group.save(str(tmp_path / "ckpt" / "step_3"), {"step": 3}, {"stage": "sft", "step": 3})
        tail = [group.sft_step(batch) for batch in batches[3:]]
        digests = group.state_digests()
    finally:
        group.shutdown()
    resumed = LearnerGroup(cfg)
    try:
        resumed.setup(out, str(builtin_data["train"]), spec, train_state=str(Path(out) / TRAIN_STATE))
        again = [resumed.sft_step(batch) for batch in batches[3:]]
        resumed_digests = resumed.state_digests()
    finally:
        resumed.shutdown()
    assert [(s["loss"], s["lr"]) for s in again] == [(s["loss"], s["lr"]) for s in tail]
    assert digests[0]["weights"] == digests[1]["weights"]  # data parallel: same weights on both ranks
    assert resumed_digests == digests  # each rank: weights, optimizer state, counters, bit for bit


def test_verify_checkpoint_detects_missing_and_corrupt_files(tmp_path):
    from learner.checkpoint import finalize_checkpoint, latest_checkpoint, verify_checkpoint

    for step in (1, 2, 3):
        tmp = tmp_path / f".tmp-step_{step}"
        (tmp / "train_state").mkdir(parents=True)
        (tmp / "model.safetensors").write_bytes(bytes(range(256)) * step)
        (tmp / "train_state" / "rank_0.json").write_text("{}")
        finalize_checkpoint(tmp, tmp_path / f"step_{step}", {"step": step})
    (tmp_path / ".tmp-step_4").mkdir()  # a save that never finished
    assert all(verify_checkpoint(tmp_path / f"step_{s}") is None for s in (1, 2, 3))
    # step 3: one flipped byte; step 2: a file gone -> resume falls back to step 1
    data = bytearray((tmp_path / "step_3" / "model.safetensors").read_bytes())
    data[10] ^= 1
    (tmp_path / "step_3" / "model.safetensors").write_bytes(bytes(data))
    (tmp_path / "step_2" / "train_state" / "rank_0.json").unlink()
    assert verify_checkpoint(tmp_path / "step_3") == "model.safetensors does not match its checksum"
    assert verify_checkpoint(tmp_path / "step_2") == "train_state/rank_0.json is missing"
    assert latest_checkpoint(tmp_path) == tmp_path / "step_1"
    (tmp_path / "step_1" / COMPLETE_MARKER).unlink()
    assert verify_checkpoint(tmp_path / "step_1").startswith("no cosmo_checkpoint.json")
    assert latest_checkpoint(tmp_path) is None


@pytest.mark.slow
def test_non_finite_update_is_skipped_and_repeated_ones_stop_the_run(ray_cluster, tiny_model, builtin_data, tmp_path):
    from learner.group import LearnerGroup, NonFiniteError

    cfg = _cfg(tiny_model, builtin_data, tmp_path, "learner.max_skipped_steps=2")
    spec = OptimSpec(lr=1e-2, total_steps=10, warmup_steps=0, min_lr_ratio=0.1, micro_batch_size=4, grad_accum=1)

    def items(advantage: float) -> list[LearnerItem]:
        return [LearnerItem(i, [40 + i, 41, 42, 43], [-7.0] * 4, advantage * (1 if i % 2 else -1)) for i in range(8)]

    group = LearnerGroup(cfg)
    try:
        group.setup(str(tiny_model), str(builtin_data["train"]), spec)
        before = group.state_digests()
        nan_step = group.rl_step(items(float("nan")))
        after_nan = group.state_digests()
        good = group.rl_step(items(1.0))  # a finite step resets the count and moves the weights
        after_good = group.state_digests()
        group.rl_step(items(float("nan")))
        with pytest.raises(NonFiniteError, match="2 consecutive updates"):
            group.rl_step(items(float("inf")))
    finally:
        group.shutdown()
    assert nan_step["skipped"] == 1.0 and good["skipped"] == 0.0
    # the skipped step changed nothing: weights, AdamW moments, master partitions, learning rate
    for b, a in zip(before, after_nan, strict=True):
        assert (a["weights"], a["optimizer"], a["masters"], a["lr"]) == (b["weights"], b["optimizer"], b["masters"],
                                                                         b["lr"])
    assert after_good[0]["weights"] != before[0]["weights"] and after_good[0]["lr"] != before[0]["lr"]


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["SIGKILL", "SIGSTOP"])
def test_dead_or_hung_learner_rank_ends_the_run_in_bounded_time_naming_it(ray_cluster, tiny_model, builtin_data,
                                                                        tmp_path, fault):
    import signal
    import time

    from learner.group import LearnerError, LearnerGroup

    timeout = 10
    cfg = _cfg(tiny_model, builtin_data, tmp_path, f"learner.timeout_s={timeout}")
    spec = OptimSpec(lr=1e-3, total_steps=10, warmup_steps=0, min_lr_ratio=0.1, micro_batch_size=4, grad_accum=1)
    group = LearnerGroup(cfg)
    pid = group.processes[1]["pid"]
    try:
        group.setup(str(tiny_model), str(builtin_data["train"]), spec)
        group.sft_step(list(range(8)))  # healthy first
        os.kill(pid, getattr(signal, fault))  # rank 1 dies or freezes; rank 0 is left in the all-reduce
        started = time.monotonic()
        with pytest.raises(LearnerError) as caught:
            group.sft_step(list(range(8, 16)))
        took = time.monotonic() - started
    finally:
        group.shutdown()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    message = str(caught.value)
    print(f"{fault}: run ended after {took:.1f} s: {message[:300]}")
    # the ranks met through a file (no TCP store listening); shutting down removes it
    assert group.store_file is not None and not group.store_file.exists()
    if fault == "SIGSTOP":  # only the deadline can tell: it names the frozen rank apart from its blocked peer
        assert timeout <= took < timeout + 30
        assert f"within learner.timeout_s={timeout} s during an SFT step" in message
        assert f"rank 1: pid {pid} on 127.0.0.1 (stopped)" in message
    else:  # a death is seen at once, by Ray (rank 1 died) or by gloo on its peer (rank 0 failed)
        assert took < timeout
        assert re.match(r"learner rank (1 died|0 failed) during an SFT step", message), message


@pytest.mark.slow
def test_a_stale_torch_extension_lock_does_not_wedge_the_learner_start(tmp_path):
    """A rank killed while holding torch's JIT-build lock leaves `lock` behind; later learners on the
    node must still start (torch itself would wait on that file forever)."""
    import subprocess
    import sys

    lock = tmp_path / "py311_cpu" / "deepspeed_shm_comm" / "lock"
    lock.parent.mkdir(parents=True)
    lock.touch()
    script = ("from learner.engine import init_process_group; import torch.distributed as d; "
              f"init_process_group(0, 1, 'file://{tmp_path}/store', 'gloo'); print('joined', d.get_world_size())")
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env,
                          cwd=ROOT)
    assert proc.returncode == 0 and "joined 1" in proc.stdout, proc.stderr[-2000:]
    assert lock.exists()  # untouched: nothing tried to take it
