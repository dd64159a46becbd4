"""The RL stage end to end on the tiny VLM: 2 vLLM rollout actors, a reward pool, a 2-rank learner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ray

from cosmo.config import load_config
from cosmo.data import load_jsonl, write_jsonl
from cosmo.driver.tracking import RunTracker

ROOT = Path(__file__).resolve().parents[1]
LOGPROB_TOLERANCE = 1e-4  # mean |vLLM - learner| per token, fp32 on CPU (measured ~1e-7)


# tests whose subject is not the topology: one learner rank, one engine, one reward worker start faster
ONE_OF_EACH = ("learner.num_ranks=1", "rollout.num_actors=1", "reward.num_workers=1")


def _instruction_rows(builtin_data: dict, out: Path) -> tuple[list, Path]:
    """The built-in train split's 8 instruction rows (checkable constraints; none must be refused), and the
    file `out` they were written to."""
    rows = [r for r in load_jsonl(builtin_data["train"]) if r.task == "instruction"]
    assert len(rows) == 8
    return rows, write_jsonl(rows, out)


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


# One run, three faults on three calls (each the subject of its own run before; one run starts the engines once):
# (method, its call number) -> (actor, signal). update_weights call 1 loads the weights of update 1 (after step 1);
# submit call k samples step k's rows.
FAULTS = {("update_weights", 1): (0, "SIGSTOP"), ("submit", 2): (1, "SIGKILL"), ("submit", 3): (0, "SIGSTOP")}


@pytest.mark.slow
def test_rollout_actors_that_die_or_hang_are_restarted_and_no_sample_is_lost_or_repeated(
        ray_cluster, tiny_model, builtin_data, tmp_path, monkeypatch, clean_ledger):
    import contextlib
    import os
    import signal
    import time
    from collections import Counter

    from actors.group import RolloutGroup

    calls: Counter = Counter()
    hits: list[dict] = []

    def with_faults(method):
        original = getattr(RolloutGroup, method)

        def call(self, *args, **kwargs):
            calls[method] += 1
            if (method, calls[method]) in FAULTS:
                actor, fault = FAULTS[(method, calls[method])]
                pid = ray.get(self.actors[actor].info.remote())["pid"]
                os.kill(pid, getattr(signal, fault))
                hits.append({"pid": pid, "at": time.time(), "fault": fault, "actor": actor})
            return original(self, *args, **kwargs)

        return call

    for method in ("submit", "update_weights"):
        monkeypatch.setattr(RolloutGroup, method, with_faults(method))
    timeout = 15
    cfg = _cfg(tiny_model, builtin_data, tmp_path, "fault", f"rollout.timeout_s={timeout}")
    try:
        records = _run(cfg, tiny_model, builtin_data)
    finally:
        for hit in hits:  # never leave a frozen process behind, whatever happened
            with contextlib.suppress(ProcessLookupError):
                os.kill(hit["pid"], signal.SIGKILL)
    steps = [r for r in records if r["stage"] == "rl"]
    events = [r for r in records if r["stage"] == "event"]
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert len(hits) == 3 and [e["step"] for e in events] == [1, 2, 3]
    # (actor, hung?, rows redone, policy version the restarted engine must hold)
    expected = [(0, True, None, 1), (1, False, 2, 1), (0, True, 2, 2)]
    for event, hit, (actor, hung, retried, version) in zip(events, hits, expected, strict=True):
        assert f"rollout actor {actor} restarted" in event["event"] and event["version"] == version, event
        assert event.get("rows_retried") == retried and ("hung" in event["why"]) == hung, event
        # fault -> actor back with the current weights: a hang is noticed rollout.timeout_s after the call
        took = event["time"] - hit["at"]
        print(f"{hit['fault']} of actor {actor}: recovered {took:.1f} s after the fault "
              f"(restart {event['recovery_s']} s)")
        assert (timeout if hung else 0) <= took < (timeout if hung else 0) + 120
    assert all(r["sync/digest_match"] == 1.0 for r in steps)  # the restarted engines got the current weights
    # the ledger: the same trajectories' rows as the clean run, step by step, each prompt once
    clean_records, clean = clean_ledger
    ledger = _ledger(tmp_path / "fault")
    assert [(r["stage"], r["step"]) for r in ledger] == [("rl", 1), ("rl", 2), ("rl", 3)]
    assert [Counter(r["sample_ids"]) for r in ledger] == [Counter(r["sample_ids"]) for r in clean]
    ids = [i for r in ledger for i in r["sample_ids"]]
    assert len(ids) == 3 * 16 and all(n == 4 for n in Counter(ids).values())  # 12 prompts x 4 samples, once
    assert all(not r["excluded"] and not r["skipped"] for r in ledger)
    # requests are seeded by (seed, version, row): the redone shares sample the very same responses
    keys = ("reward/mean", "response/length_mean", "train/loss")
    clean_steps = [r for r in clean_records if r["stage"] == "rl"]
    assert [[r[k] for k in keys] for r in steps] == [[r[k] for k in keys] for r in clean_steps]


def test_a_restart_killed_by_rays_memory_monitor_ends_the_run_with_one_line_that_says_what_to_do(monkeypatch):
    from actors.group import RolloutError, RolloutGroup

    class Actor:  # info.remote() hands back a ref; the ray.get below is Ray's memory monitor killing the worker
        class info:  # noqa: N801 - mirrors a Ray actor method handle
            @staticmethod
            def remote():
                return "ref"

    def killed(ref, timeout):
        raise ray.exceptions.OutOfMemoryError("2 worker(s) were killed due to the node running low on memory. "
                                              "Memory on the node was 22.39GB used / 23.54GB limit\nTop users: ...")

    group = object.__new__(RolloutGroup)  # only the restart wait is under test, no engine is started
    group.actors, group.info, group.restart_timeout_s = [Actor()], [None], 60.0
    monkeypatch.setattr(ray, "get", killed)
    with pytest.raises(RolloutError) as caught:
        group._wait_restarted(0, "loading policy version 24")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("rollout actor 0 was killed by Ray's memory monitor while "
                                                        "restarting after failing while loading policy version 24")
    assert "22.39GB used / 23.54GB limit" in message and "checkpoint.every_steps" in message


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
@pytest.mark.parametrize("kl_rows", ["all", "must_refuse"])
def test_kl_penalty_against_the_frozen_start_model(ray_cluster, tiny_model, builtin_data, tmp_path, kl_rows):
    """The 8 instruction rows, none of which must be refused, at a high lr. all: the first update starts
    from the reference itself (KL 0), afterwards the policy has moved away; must_refuse: every sequence's KL
    weight is 0, so the KL stays exactly 0 as the policy moves."""
    rows, train_file = _instruction_rows(builtin_data, tmp_path / "instruction-only.jsonl")
    assert not any(r.should_refuse for r in rows)
    cfg = _cfg(tiny_model, builtin_data, tmp_path, "kl", "algorithm.name=grpo", "algorithm.kl_coef=0.1",
               f"algorithm.kl_rows={kl_rows}", "rl.lr=1e-2", *ONE_OF_EACH)
    steps = [r for r in _run(cfg, tiny_model, builtin_data, train_file) if r["stage"] == "rl"]
    assert steps[0]["train/kl"] == pytest.approx(0.0, abs=1e-6)
    if kl_rows == "all":
        assert steps[2]["train/kl"] > 1e-4
    else:
        assert [r["train/kl"] for r in steps] == [0.0] * 3


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
    # one verifiable task: checkable constraints + answer format; every step samples all 8 rows
    _, train_file = _instruction_rows(builtin_data, tmp_path / "instruction-only.jsonl")
    cfg = _cfg(sft_model, builtin_data, tmp_path, "rise", "rl.steps=12", "rl.prompts_per_step=8",
               "algorithm.group_size=8", "rl.micro_batch_size=8", "rl.lr=5e-4", "rollout.max_new_tokens=24",
               *ONE_OF_EACH)
    steps = [r for r in _run(cfg, sft_model, builtin_data, train_file) if r["stage"] == "rl"]
    rewards = [r["reward/mean"] for r in steps]
    first, last = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert last >= first + REWARD_RISE, rewards


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "crashes"), [("sync", (2,)), ("async", (2, 3))], ids=["sync", "async"])
def test_rl_resumed_after_a_crash_ends_bit_identical_to_an_uninterrupted_run(ray_cluster, sft_model, builtin_data,
                                                                            tmp_path, monkeypatch, mode, crashes):
    """sync: the built-in rows, a crash after step 2 (mid-epoch). async: 8 rows at 4 prompts a step, so a
    crash after step 2 ends epoch 0 exactly (step 3's batch, the first of epoch 1, was already sampled when
    it crashed), and the resumed launch crashes again after step 3 (mid-epoch); each launch resumes the last."""
    import cosmo.driver.stage as loop
    from cosmo.driver.resume import find_resume_point

    rows, train_file = _instruction_rows(builtin_data, tmp_path / "eight-rows.jsonl") if mode == "async" else ([], None)
    common = ("rl.steps=4", "checkpoint.every_steps=1", "checkpoint.keep_last=2", "rl.lr=5e-4", f"rl.mode={mode}",
              "algorithm.refusal_balance=true", "algorithm.refusal_balance_window=5",
              "algorithm.sft_coef=0.5", "algorithm.sft_rows=all", "algorithm.sft_batch=2")  # + the anchor's draws
    clean = _run(_cfg(sft_model, builtin_data, tmp_path, "clean", *common), sft_model, builtin_data, train_file)

    real_save = loop.save_if_due
    point = None
    for crash in crashes:
        def crash_after(cfg, learner, checkpoints, stage, step, total, state, crash=crash):
            path = real_save(cfg, learner, checkpoints, stage, step, total, state)
            if step == crash:
                raise RuntimeError(f"injected crash after the step-{crash} checkpoint")
            return path

        monkeypatch.setattr(loop, "save_if_due", crash_after)
        with pytest.raises(RuntimeError, match="injected crash"):
            _run(_cfg(sft_model, builtin_data, tmp_path, "crashed", *common, *(("resume=auto",) if point else ())),
                 sft_model, builtin_data, train_file, resume=point)
        cfg = _cfg(sft_model, builtin_data, tmp_path, "crashed", *common, "resume=auto")
        point = find_resume_point(cfg, tmp_path / "crashed")
        assert point is not None and (point.stage, point.step) == ("rl", crash)
    monkeypatch.setattr(loop, "save_if_due", real_save)
    resumed = _run(cfg, sft_model, builtin_data, train_file, resume=point)

    # the same steps, each once, with the same data, samples, losses and updates
    keys = ("reward/mean", "response/length_mean", "train/loss", "train/sft_loss", "train/grad_norm", "policy/version",
            "epoch")
    clean_steps = [r for r in clean if r["stage"] == "rl"]
    resumed_steps = [r for r in resumed if r["stage"] == "rl"]
    assert [r["step"] for r in resumed_steps] == [1, 2, 3, 4]
    assert [[r[k] for k in keys] for r in resumed_steps] == [[r[k] for k in keys] for r in clean_steps]
    # the learner-vs-vLLM log-prob gap is a diagnostic (~1e-7 on-policy): with the same weights in every
    # engine (digests match), vLLM's CPU kernels were not bitwise reproducible on a loaded machine
    # (1.109e-07 against 1.132e-07 at step 3); the losses and updates are compared exactly above
    assert all(r["sync/digest_match"] == 1.0 for r in resumed_steps + clean_steps)
    gaps = [[r["train/logprob_gap"] for r in steps] for steps in (resumed_steps, clean_steps)]
    assert gaps[0] == pytest.approx(gaps[1], abs=1e-8)
    # the ledger: each step's rows once, the same as the uninterrupted run (the records the crashed
    # attempts wrote after their checkpoints were rewound)
    clean_ledger, resumed_ledger = _ledger(tmp_path / "clean"), _ledger(tmp_path / "crashed")
    assert [r["step"] for r in resumed_ledger] == [1, 2, 3, 4]
    assert [r["sample_ids"] for r in resumed_ledger] == [r["sample_ids"] for r in clean_ledger]
    if mode == "async":  # steps 1-2 are epoch 0, steps 3-4 epoch 1: each row 4 times in each
        names = {r.id for r in rows}
        for epoch in (resumed_ledger[:2], resumed_ledger[2:]):
            ids = [i for r in epoch for i in r["sample_ids"]]
            assert set(ids) == names and all(ids.count(i) == 4 for i in names)
    # the refusal balance's window (5 batches: every step's pushes) was restored, not restarted
    ledgers = [json.loads((tmp_path / run / "checkpoints" / "rl" / "step_4" / "driver_state.json").read_text())
               ["refusal_ledger"] for run in ("clean", "crashed")]
    assert len(ledgers[1]) == 4 and ledgers[0] == ledgers[1], ledgers
    if mode == "sync":  # the built-in rows refuse and answer (async's eight instruction rows never refuse)
        assert any(r or a for batch in ledgers[0] for _, r, a in batch), "no push to balance: the check is empty"
    # final weights and every rank's optimizer state, schedule and RNG: byte for byte
    a, b = tmp_path / "clean" / "checkpoints" / "rl" / "step_4", tmp_path / "crashed" / "checkpoints" / "rl" / "step_4"
    compared = 0
    for name in ("model.safetensors", "train_state/rank_0.safetensors", "train_state/rank_1.safetensors",
                 "train_state/rank_0.json", "train_state/rank_1.json"):
        assert _sha(a / name) == _sha(b / name), name
        compared += (b / name).stat().st_size
    print(f"{mode}, crashes after steps {crashes}: {compared} bytes equal, "
          f"{sum(len(r['sample_ids']) for r in resumed_ledger)} ledger ids")
