"""The driver: data order, and a whole `cosmo train` run writing its run directory."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from cosmo.data.sampling import EpochSampler

ROOT = Path(__file__).resolve().parents[1]


def test_sampler_visits_every_row_once_per_epoch_and_is_seeded():
    sampler = EpochSampler(10, seed=1)
    drawn = [sampler.next_batch(4) for _ in range(5)]  # 20 indices = exactly 2 epochs
    flat = [i for b in drawn for i in b]
    assert Counter(flat[:10]) == Counter(range(10)) and Counter(flat[10:]) == Counter(range(10))
    assert flat[:10] != flat[10:]  # a new order each epoch
    assert sampler.epoch == 1
    again = EpochSampler(10, seed=1)
    assert [again.next_batch(4) for _ in range(5)] == drawn
    assert [EpochSampler(10, seed=2).next_batch(4) for _ in range(5)] != drawn


def test_sampler_rejects_empty_data():
    with pytest.raises(ValueError, match="no rows"):
        EpochSampler(0, seed=0)


@pytest.mark.slow
def test_sigterm_ends_cosmo_train_within_seconds_and_a_stale_ray_address_file_is_ignored(tiny_model, builtin_data,
                                                                                          tmp_path):
    """`ray start --head` that crashed leaves /tmp/ray/ray_current_cluster naming a dead head: a run with
    cluster.address null starts its own cluster regardless. SIGTERM at start-up and during a step ends
    the process within seconds, through the `finally` blocks (actors stopped, Ray shut down)."""
    if "COSMO_LOOPBACK" not in os.environ:
        pytest.fail("this test starts Ray: run it through deploy/loopback.sh (as `make test` does)")
    address_file = Path("/tmp/ray/ray_current_cluster")
    saved = address_file.read_text() if address_file.is_file() else None
    address_file.parent.mkdir(parents=True, exist_ok=True)
    address_file.write_text("127.0.0.1:1")  # nothing listens on port 1
    cmd = [sys.executable, "-m", "cosmo", "train", str(ROOT / "configs" / "tiny-cpu.yaml"),
           f"model.path={tiny_model}", "model.build_preset=null", f"data.dir={builtin_data['train'].parent}",
           "data.rl_per_task=0",
           f"logging.runs_dir={tmp_path}", "logging.wandb_mode=disabled", "eval.enabled=false", "train.stages=[sft]",
           "sft.steps=100000", "sft.global_batch_size=8", "sft.micro_batch_size=4", "logging.log_every=1"]
    try:
        for name, wait_for in (("start-up", "Ray ready"), ("step", "[sft] step 2/")):
            proc = subprocess.Popen([*cmd, f"logging.run_name={name}"], stderr=subprocess.PIPE, text=True,
                                    cwd=tmp_path, start_new_session=True)
            lines = []
            for line in proc.stderr:  # type: ignore[union-attr]
                lines.append(line)
                if wait_for in line:
                    break
            assert wait_for in "".join(lines), "".join(lines)[-3000:]
            proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            try:
                rest = proc.communicate(timeout=60)[1]
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            print(f"SIGTERM during {name}: exit {proc.returncode} after {time.monotonic() - started:.1f} s")
            assert proc.returncode == 130 and "cosmo: interrupted" in rest, rest[-3000:]
    finally:
        if saved is None:
            address_file.unlink(missing_ok=True)
        else:
            address_file.write_text(saved)


@pytest.mark.slow
def test_cosmo_train_end_to_end_writes_the_run_directory(tiny_model, builtin_data, tmp_path):
    if "COSMO_LOOPBACK" not in os.environ:
        pytest.fail("this test starts Ray: run it through deploy/loopback.sh (as `make test` does)")
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "cosmo", "train", str(ROOT / "configs" / "tiny-cpu.yaml"),
           f"model.path={tiny_model}", "model.build_preset=null", f"data.dir={builtin_data['train'].parent}",
           "data.rl_per_task=0",
           f"logging.runs_dir={runs}", "logging.run_name=e2e", "logging.log_every=2",
           "sft.steps=4", "sft.warmup_steps=1", "sft.global_batch_size=8", "sft.micro_batch_size=4",
           "train.stages=[sft,rl]", "rl.steps=4", "rl.prompts_per_step=2", "algorithm.group_size=4",
           "rl.micro_batch_size=4", "rollout.max_new_tokens=8",
           "checkpoint.every_steps=2", "checkpoint.keep_last=1", "eval.every_steps=2",
           "eval.max_rows_per_task=2", "eval.max_new_tokens=8",
           "eval.engine=hf"]  # ~6 evaluations: transformers starts in seconds (vLLM's: test_submit, test_eval)
    canary = "canary-7f3c9a-do-not-log"  # a secret in the environment must not reach any output
    env = {**os.environ, "WANDB_API_KEY": canary, "HF_TOKEN": canary}
    import psutil

    run = runs / "e2e"
    # launch 1 is killed like a lost pod (SIGKILL to the driver and every process it started) as soon
    # as the RL checkpoint of step 2 is complete, while the periodic evaluation of it runs
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             cwd=tmp_path, env=env, start_new_session=True)
    marker = run / "checkpoints" / "rl" / "step_2" / "cosmo_checkpoint.json"
    deadline = time.monotonic() + 600
    while not marker.is_file() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.is_file(), first.communicate()[0][-4000:] if first.poll() is not None else "no RL checkpoint"
    tree = psutil.Process(first.pid).children(recursive=True)
    os.killpg(first.pid, signal.SIGKILL)
    for child in tree:  # Ray may start some of its processes in sessions of their own
        with contextlib.suppress(psutil.Error):
            child.kill()
    killed_output = first.communicate()[0]
    assert first.returncode == -signal.SIGKILL and canary not in killed_output
    # the same command again (a RayJob retry; resume=auto is the default) continues from rl/step_2 and ends
    # as a clean run ends
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"resuming from {run / 'checkpoints' / 'rl' / 'step_2'} (rl step 2)" in proc.stderr
    assert [line for line in proc.stderr.splitlines() if "[sft] step" in line] == []
    assert "[rl] step 2/4" not in proc.stderr and "[rl] step 4/4" in proc.stderr  # progress every 2 steps
    assert canary not in proc.stdout + proc.stderr
    leaked = [p for p in run.rglob("*") if p.is_file() and canary.encode() in p.read_bytes()]
    assert not leaked, f"the secret was written to {leaked}"
    assert "sft:\n  steps: 4" in (run / "config.yaml").read_text()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    sft = [r for r in records if r["stage"] == "sft"]
    assert [r["step"] for r in sft] == [1, 2, 3, 4]
    assert all(r["loss"] > 0 and r["tokens"] > 0 for r in sft)
    assert [r["step"] for r in records if r["stage"] == "rl"] == [1, 2, 3, 4]
    # eval.every_steps=2: the RL checkpoint of step 2 is evaluated too, on the same series as the final one
    assert [r["step"] for r in records if r["stage"] == "eval/rl"] == [2, 4]
    assert {r["stage"] for r in records} >= {"eval/start", "eval/sft", "eval/rl"}
    # keep_last=1: step_2 was pruned once step_4 was complete
    assert sorted(p.name for p in (run / "checkpoints" / "sft").iterdir()) == ["step_4"]
    assert sorted(p.name for p in (run / "checkpoints" / "rl").iterdir()) == ["step_4"]
    for label in ("start", "sft", "rl_step_2", "rl"):
        report = json.loads((run / "eval" / f"{label}.json").read_text())
        assert report["rows"] == 12  # 2 rows x 6 tasks
        assert sum(c["rows"] for c in report["per_task"].values()) == 12
    assert "over_refusal_rate" in (run / "eval" / "summary.txt").read_text()
    assert list((run / "wandb").glob("offline-run-*")), "wandb offline files are missing"
    # RL steps restart at 1 after SFT: each stage has its own wandb step axis, so none is dropped
    assert "monotonically increasing" not in proc.stderr
    assert "[sft] step 4/4" in killed_output and "[rl] step 4/4" in proc.stderr and "ETA" in proc.stderr
    # the ledger: each SFT and RL step's rows logged once across both launches (RL steps 3-4 only by the second)
    ledger = [json.loads(line) for line in (run / "ledger.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["step"]) for r in ledger] == [("sft", s) for s in range(1, 5)] + [
        ("rl", s) for s in range(1, 5)]
    assert all(len(r["sample_ids"]) == 8 for r in ledger)  # SFT batch 8; RL 2 prompts x 4 samples
    assert "final model: " + str(run / "checkpoints" / "rl" / "step_4") in proc.stderr
    # relaunching the finished run with the same command (a second `make train`) does no step twice and
    # leaves every checkpoint, record and report byte for byte; the final model is evaluated again beside
    # its report, with the same output on every row
    kept = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.rglob("*")) if p.is_file()
            and p.relative_to(run).parts[0] in ("checkpoints", "eval", "metrics.jsonl", "ledger.jsonl")}
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-4000:]
    assert f"this run is finished (rl step 4, {run / 'checkpoints' / 'rl' / 'step_4'})" in again.stderr
    assert "reusing" in again.stderr and "[rl] step" not in again.stderr and "[sft] step" not in again.stderr
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in kept} == kept
    repeat = json.loads((run / "eval" / "repeats" / "rl-1.json").read_text())
    final = json.loads((run / "eval" / "rl.json").read_text())
    assert repeat["outputs"] == final["outputs"] and repeat["counts"] == final["counts"]
    assert "[eval] rl again: every one of the 12 rows as in eval/rl.json (same output, same counts)" in again.stderr
    assert "final model: " + str(run / "checkpoints" / "rl" / "step_4") in again.stderr
    # resume=never would start over on top of it: refused, naming the key, before anything starts
    never = subprocess.run([*cmd, "resume=never"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert never.returncode == 2 and f"cosmo: config error: resume=never: {run} already holds a run" in never.stderr
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in kept} == kept
    # resuming the finished run with more RL steps trains steps 5-6 and evaluates the new final model: the
    # report of rl/step_4 is stale for label `rl`, and the table keeps the start and SFT columns
    more = subprocess.run([*cmd, "rl.steps=6"], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert more.returncode == 0, more.stderr[-4000:]
    assert "[rl] step 6/6" in more.stderr and "[rl] step 4/6" not in more.stderr
    final = json.loads((run / "eval" / "rl.json").read_text())
    assert final["model"] == str(run / "checkpoints" / "rl" / "step_6")
    assert "reusing" in more.stderr and f"[eval] rl model {run / 'checkpoints' / 'rl' / 'step_6'}" in more.stderr
    header = (run / "eval" / "summary.txt").read_text().splitlines()[0].split()
    assert header[1:] == ["start", "sft", "rl"]
