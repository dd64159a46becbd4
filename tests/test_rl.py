"""The RL stage end to end on the tiny VLM: 2 vLLM rollout actors, a reward pool, a 2-rank learner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ray

from cosmo.config import load_config
from cosmo.data import load_jsonl
from cosmo.driver.tracking import RunTracker

ROOT = Path(__file__).resolve().parents[1]
LOGPROB_TOLERANCE = 1e-4  # mean |vLLM - learner| per token, fp32 on CPU (measured ~1e-7)


def _cfg(model: Path, data: dict, tmp_path: Path, name: str, *overrides: str):
    return load_config(ROOT / "configs" / "tiny-cpu.yaml", [
        f"model.path={model}", "model.build_preset=null", f"data.dir={data['train'].parent}",
        f"logging.runs_dir={tmp_path}", f"logging.run_name={name}", "logging.wandb_mode=disabled",
        "rl.steps=3", "rl.prompts_per_step=4", "algorithm.group_size=4", "rl.micro_batch_size=4",
        "rollout.max_new_tokens=16", "rollout.num_actors=2", "reward.num_workers=2", "device=cpu", *overrides,
    ])


def _run(cfg, model, builtin_data, train_file: Path | None = None, resume=None) -> list[dict]:
    from cosmo.driver.rl import run_rl

    tracker = RunTracker(cfg, resume=resume)
    try:
        path = run_rl(cfg, tracker, str(model), str(train_file or builtin_data["train"]), resume=resume)
    finally:
        tracker.close()
    assert Path(path, "model.safetensors").is_file()
    return [json.loads(line) for line in (tracker.dir / "metrics.jsonl").read_text().splitlines()]


def _listening() -> list[tuple[str, int, str]]:
    """Every listening TCP/UDP socket on the machine: (address, port, process name)."""
    import socket

    import psutil

    out = []
    for c in psutil.net_connections(kind="inet"):
        if c.status == psutil.CONN_LISTEN or (c.type == socket.SOCK_DGRAM and not c.raddr):
            try:
                name = psutil.Process(c.pid).name() if c.pid else "?"
            except psutil.Error:
                name = "?"
            out.append((c.laddr.ip, c.laddr.port, name))
    return out


def _loopback(ip: str) -> bool:
    import ipaddress

    addr = ipaddress.ip_address(ip)
    return addr.is_loopback or (addr.version == 6 and addr.ipv4_mapped is not None and addr.ipv4_mapped.is_loopback)


@pytest.mark.slow
def test_rl_steps_sync_weights_match_logprobs_and_advance_versions(ray_cluster, tiny_model, builtin_data, tmp_path,
                                                                   monkeypatch):
    from actors.group import RolloutGroup

    original, seen = RolloutGroup.submit, []

    def submit_and_list_sockets(self, indices, n):
        if not seen:  # the first rollout: Ray, the learner's process group, engines and reward workers are up
            seen.extend(_listening())
        return original(self, indices, n)

    monkeypatch.setattr(RolloutGroup, "submit", submit_and_list_sockets)
    records = _run(_cfg(tiny_model, builtin_data, tmp_path, "rl"), tiny_model, builtin_data)
    # every listener the run started (Ray, torch.distributed's store and gloo, the actors) is on loopback
    assert len(seen) >= 10, seen
    assert [s for s in seen if not _loopback(s[0])] == []
    print(f"{len(seen)} listening sockets, all on loopback: {sorted({s[2] for s in seen})}")
    steps = [r for r in records if r["stage"] == "rl"]
    assert [r["step"] for r in steps] == [1, 2, 3]
    # every engine loaded exactly the learner's bytes after each broadcast
    assert all(r["sync/digest_match"] == 1.0 for r in steps)
    # the learner recomputes the rollout engine's log-probs of the sampled tokens
    assert all(r["train/logprob_gap"] < LOGPROB_TOLERANCE for r in steps), [r["train/logprob_gap"] for r in steps]
    # trajectories of step k were sampled by the weights of update k-1
    assert [r["policy/version"] for r in steps] == [0, 1, 2]
    assert all(r["rollout/trajectories"] == 16 and r["reward/failed"] == 0 for r in steps)
    assert all(r["train/tokens"] > 0 and r["time/sync"] > 0 for r in steps)
    # the last step logs one sample trajectory per prompt group, with its prompt, response and rewards
    samples = [json.loads(line) for line in (tmp_path / "rl" / "samples.jsonl").read_text().splitlines()]
    assert [s["step"] for s in samples] == [3] * 4
    rows = {r.id: r for r in load_jsonl(builtin_data["train"])}
    assert all(s["prompt"] in {r.prompt for r in rows.values()} and set(s["rewards"]) >= {"format"} for s in samples)


def _ledger(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def clean_ledger(ray_cluster, tiny_model, builtin_data, tmp_path_factory) -> tuple[list[dict], list[dict]]:
    """A fault-free run of the fault tests' configuration: its metrics and its ledger."""
    out = tmp_path_factory.mktemp("clean")
    records = _run(_cfg(tiny_model, builtin_data, out, "clean"), tiny_model, builtin_data)
    return records, _ledger(out / "clean")


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "during"), [("SIGKILL", "generate"), ("SIGSTOP", "generate"),
                                               ("SIGSTOP", "update_weights")])
def test_rollout_actor_that_dies_or_hangs_is_restarted_and_no_sample_is_lost_or_repeated(
        ray_cluster, tiny_model, builtin_data, tmp_path, monkeypatch, clean_ledger, fault, during):
    import contextlib
    import os
    import signal
    import time
    from collections import Counter

    from actors.group import RolloutGroup

    # generate: actor 0's process dies or freezes just before it samples its share of step 2;
    # update_weights: it freezes just before it loads the weights of update 1 (after step 1)
    method = "submit" if during == "generate" else "update_weights"
    original = getattr(RolloutGroup, method)
    calls = {"n": 0}
    hit: dict = {}

    def with_a_fault(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == (2 if during == "generate" else 1):
            hit["pid"] = ray.get(self.actors[0].info.remote())["pid"]
            os.kill(hit["pid"], getattr(signal, fault))
            hit["at"] = time.time()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RolloutGroup, method, with_a_fault)
    timeout = 15
    cfg = _cfg(tiny_model, builtin_data, tmp_path, "fault", f"rollout.timeout_s={timeout}")
    try:
        records = _run(cfg, tiny_model, builtin_data)
    finally:
        if fault == "SIGSTOP":  # never leave a frozen process behind, whatever happened
            with contextlib.suppress(ProcessLookupError, KeyError):
                os.kill(hit["pid"], signal.SIGKILL)
    steps = [r for r in records if r["stage"] == "rl"]
    events = [r for r in records if r["stage"] == "event"]
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert [e["step"] for e in events] == [2 if during == "generate" else 1]
    assert "rollout actor 0 restarted" in events[0]["event"] and events[0]["version"] == 1
    assert events[0].get("rows_retried") == (2 if during == "generate" else None)
    assert ("hung" in events[0]["why"]) == (fault == "SIGSTOP")
    # fault -> actor back with the current weights: a hang is noticed rollout.timeout_s after the call
    took = events[0]["time"] - hit["at"]
    print(f"{fault} during {during}: recovered {took:.1f} s after the fault (restart {events[0]['recovery_s']} s)")
    assert (timeout if fault == "SIGSTOP" else 0) <= took < (timeout if fault == "SIGSTOP" else 0) + 120
    assert all(r["sync/digest_match"] == 1.0 for r in steps)  # the restarted engine got the current weights
    # the ledger: the same trajectories' rows as the clean run, step by step, each prompt once
    clean_records, clean = clean_ledger
    ledger = _ledger(tmp_path / "fault")
    assert [(r["stage"], r["step"]) for r in ledger] == [("rl", 1), ("rl", 2), ("rl", 3)]
    assert [Counter(r["sample_ids"]) for r in ledger] == [Counter(r["sample_ids"]) for r in clean]
    ids = [i for r in ledger for i in r["sample_ids"]]
    assert len(ids) == 3 * 16 and all(n == 4 for n in Counter(ids).values())  # 12 prompts x 4 samples, once
    assert all(not r["excluded"] and not r["skipped"] for r in ledger)
    # requests are seeded by (seed, version, row): the redone share samples the very same responses
    keys = ("reward/mean", "response/length_mean", "train/loss")
    clean_steps = [r for r in clean_records if r["stage"] == "rl"]
    assert [[r[k] for k in keys] for r in steps] == [[r[k] for k in keys] for r in clean_steps]


@pytest.mark.slow
def test_async_mode_overlaps_with_a_lag_of_one_and_the_same_updates(ray_cluster, sft_model, builtin_data, tmp_path):
    # from the SFT'd model, groups differ in reward: the updates really move the policy
    cfg = _cfg(sft_model, builtin_data, tmp_path, "async", "rl.mode=async", "rl.lr=5e-4")
    records = _run(cfg, sft_model, builtin_data)
    steps = [r for r in records if r["stage"] == "rl"]
    assert [r["step"] for r in steps] == [1, 2, 3]  # as many updates as the synchronous loop
    # step 1 is sampled before any update; step k+1 was sampled while update k ran, by weights k-1
    assert [r["policy/version"] for r in steps] == [0, 0, 1]
    assert [r["policy/version_lag"] for r in steps] == [0, 1, 1]
    assert all(r["sync/digest_match"] == 1.0 and r["rollout/trajectories"] == 16 for r in steps)
    # on-policy at step 1: the importance weights are 1 up to fp32 noise; later they correct a real lag
    assert steps[0]["train/is_weight"] == pytest.approx(1.0, abs=1e-3)
    assert steps[0]["train/logprob_gap"] < LOGPROB_TOLERANCE
    assert steps[2]["train/logprob_gap"] > LOGPROB_TOLERANCE  # sampled by weights one update old
    assert all(0 < r["train/is_weight"] <= 2.0 for r in steps)
    assert steps[2]["train/is_weight"] != pytest.approx(1.0, abs=1e-6)


@pytest.mark.slow
def test_kl_penalty_against_the_frozen_start_model(ray_cluster, tiny_model, builtin_data, tmp_path):
    cfg = _cfg(tiny_model, builtin_data, tmp_path, "kl", "algorithm.name=grpo", "algorithm.kl_coef=0.1",
               "rl.lr=1e-2")
    steps = [r for r in _run(cfg, tiny_model, builtin_data) if r["stage"] == "rl"]
    # the first update starts from the reference itself: KL 0; afterwards the policy has moved away
    assert steps[0]["train/kl"] == pytest.approx(0.0, abs=1e-6)
    assert steps[2]["train/kl"] > 1e-4


@pytest.fixture(scope="module")
def sft_model(ray_cluster, tiny_model, builtin_data, tmp_path_factory) -> str:
    """The tiny model after 150 SFT steps: it follows the answer template some of the time, so
    sampled groups differ in reward and RL has a signal."""
    from cosmo.driver.sft import run_sft

    out = tmp_path_factory.mktemp("sft")
    cfg = _cfg(tiny_model, builtin_data, out, "sft", "sft.steps=150", "sft.global_batch_size=16",
               "sft.micro_batch_size=8", "sft.warmup_steps=5")
    tracker = RunTracker(cfg)
    try:
        return run_sft(cfg, tracker, str(tiny_model), str(builtin_data["train"]))
    finally:
        tracker.close()


REWARD_RISE = 0.08  # measured: 0.49 -> 0.65 (first 3 vs last 3 of 12 steps)


@pytest.mark.slow
def test_mean_reward_rises_on_instruction_following(ray_cluster, sft_model, builtin_data, tmp_path):
    from cosmo.data import load_jsonl, write_jsonl

    # one verifiable task: checkable constraints + answer format; every step samples all 8 rows
    rows = [r for r in load_jsonl(builtin_data["train"]) if r.task == "instruction"]
    assert len(rows) == 8
    train_file = write_jsonl(rows, builtin_data["train"].parent / "instruction-only.jsonl")
    cfg = _cfg(sft_model, builtin_data, tmp_path, "rise", "rl.steps=12", "rl.prompts_per_step=8",
               "algorithm.group_size=8", "rl.micro_batch_size=8", "rl.lr=5e-4", "rollout.max_new_tokens=24")
    steps = [r for r in _run(cfg, sft_model, builtin_data, train_file) if r["stage"] == "rl"]
    rewards = [r["reward/mean"] for r in steps]
    first, last = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert last >= first + REWARD_RISE, rewards


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "where"), [("sync", "mid-epoch"), ("async", "mid-epoch"),
                                             ("async", "epoch-boundary")])
def test_rl_resumed_after_a_crash_ends_bit_identical_to_an_uninterrupted_run(ray_cluster, sft_model, builtin_data,
                                                                            tmp_path, monkeypatch, mode, where):
    import cosmo.driver.stage as loop
    from cosmo.data import write_jsonl
    from cosmo.driver.resume import find_resume_point

    train_file = None
    if where == "epoch-boundary":  # 8 rows, 4 prompts a step: the crash after step 2 ends epoch 0 exactly;
        # in async mode step 3's batch, the first of epoch 1, was already sampled when it crashed
        rows = [r for r in load_jsonl(builtin_data["train"]) if r.task == "instruction"]
        train_file = write_jsonl(rows, tmp_path / "eight-rows.jsonl")
    common = ("rl.steps=4", "checkpoint.every_steps=2", "checkpoint.keep_last=3", "rl.lr=5e-4", f"rl.mode={mode}")
    clean = _run(_cfg(sft_model, builtin_data, tmp_path, "clean", *common), sft_model, builtin_data, train_file)

    real_save = loop.save_if_due

    def crash_after_step_2(cfg, learner, checkpoints, stage, step, total, state):
        path = real_save(cfg, learner, checkpoints, stage, step, total, state)
        if step == 2:
            raise RuntimeError("injected crash after the step-2 checkpoint")
        return path

    monkeypatch.setattr(loop, "save_if_due", crash_after_step_2)
    with pytest.raises(RuntimeError, match="injected crash"):
        _run(_cfg(sft_model, builtin_data, tmp_path, "crashed", *common), sft_model, builtin_data, train_file)
    monkeypatch.setattr(loop, "save_if_due", real_save)
    cfg = _cfg(sft_model, builtin_data, tmp_path, "crashed", *common, "resume=auto")
    point = find_resume_point(cfg, tmp_path / "crashed")
    assert point is not None and (point.stage, point.step) == ("rl", 2)
    resumed = _run(cfg, sft_model, builtin_data, train_file, resume=point)

    # the same steps, each once, with the same data, samples, losses and updates
    keys = ("reward/mean", "response/length_mean", "train/loss", "train/grad_norm", "train/logprob_gap",
            "policy/version", "epoch")
    clean_steps = [r for r in clean if r["stage"] == "rl"]
    resumed_steps = [r for r in resumed if r["stage"] == "rl"]
    assert [r["step"] for r in resumed_steps] == [1, 2, 3, 4]
    assert [[r[k] for k in keys] for r in resumed_steps] == [[r[k] for k in keys] for r in clean_steps]
    # the ledger: each step's rows once, the same as the uninterrupted run (the records the crashed
    # attempt wrote after its checkpoint were rewound)
    clean_ledger, resumed_ledger = _ledger(tmp_path / "clean"), _ledger(tmp_path / "crashed")
    assert [r["step"] for r in resumed_ledger] == [1, 2, 3, 4]
    assert [r["sample_ids"] for r in resumed_ledger] == [r["sample_ids"] for r in clean_ledger]
    if where == "epoch-boundary":  # steps 1-2 are epoch 0, steps 3-4 epoch 1: each row 4 times in each
        names = {r.id for r in rows}
        for epoch in (resumed_ledger[:2], resumed_ledger[2:]):
            ids = [i for r in epoch for i in r["sample_ids"]]
            assert set(ids) == names and all(ids.count(i) == 4 for i in names)
    # final weights and every rank's optimizer state, schedule and RNG: byte for byte
    a, b = tmp_path / "clean" / "checkpoints" / "rl" / "step_4", tmp_path / "crashed" / "checkpoints" / "rl" / "step_4"
    compared = 0
    for name in ("model.safetensors", "train_state/rank_0.safetensors", "train_state/rank_1.safetensors",
                 "train_state/rank_0.json", "train_state/rank_1.json"):
        assert _sha(a / name) == _sha(b / name), name
        compared += (b / name).stat().st_size
    print(f"{mode} {where}: {compared} bytes equal, {sum(len(r['sample_ids']) for r in resumed_ledger)} ledger ids")
