"""What happens before a run trains: which Ray cluster it joins, data checked before anything starts,
batch sizes against the data, and which evaluation reports a relaunch may reuse."""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path

import pytest

from cosmo.config import ClusterConfig, load_config
from cosmo.data import load_jsonl
from cosmo.driver import checkpoint_eval, cluster
from cosmo.driver.assets import check_batch_sizes
from cosmo.driver.checkpoint_eval import free_cpus, model_fingerprint, reusable_report
from cosmo.driver.cluster import ClusterError, resolve_address, wait_reachable
from learner.checkpoint import COMPLETE_MARKER

ROOT = Path(__file__).resolve().parents[1]
# the built-in set as the generator writes it without options (the default recipe sets some)
PLAIN_DATA = ("data.eval_disjoint=false", "data.rl_per_task=0", "data.sft_over_refusal_refusals=0", "data.sft_frames=0",
              "data.rl_only_harmful_phrases=0")


def _closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_stale_ray_address_file_is_never_joined_when_no_address_is_set(tmp_path, monkeypatch):
    stale = tmp_path / "ray_current_cluster"
    stale.write_text(f"127.0.0.1:{_closed_port()}")
    monkeypatch.setattr(cluster, "RAY_CURRENT_CLUSTER", stale)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert resolve_address(ClusterConfig(address=None)) is None  # None: start a fresh local cluster
    # `auto` means "the cluster this machine runs", as Ray reads it; RAY_ADDRESS (ray job submit) wins
    assert resolve_address(ClusterConfig(address="auto")) == stale.read_text()
    monkeypatch.setenv("RAY_ADDRESS", "10.1.2.3:6379")
    assert resolve_address(ClusterConfig(address=None)) == "10.1.2.3:6379"
    monkeypatch.delenv("RAY_ADDRESS")
    stale.unlink()
    with pytest.raises(ClusterError, match="cluster.address=auto: no Ray cluster to join"):
        resolve_address(ClusterConfig(address="auto"))


def test_joining_a_dead_address_fails_within_the_timeout_naming_it():
    address = f"127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(ClusterError, match=f"cannot reach the Ray cluster at {address} within "
                                           "cluster.connect_timeout_s=1 s"):
        wait_reachable(address, 1.0)
    assert time.monotonic() - started < 5
    with pytest.raises(ClusterError, match="expected host:port"):
        wait_reachable("nonsense", 1.0)


def test_a_live_address_is_reachable_at_once():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        started = time.monotonic()
        wait_reachable(f"ray://127.0.0.1:{server.getsockname()[1]}", 5.0)
        assert time.monotonic() - started < 1


def test_a_bad_row_fails_before_ray_or_any_model_starts_and_leaves_no_run_directory(tmp_path, capsys):
    from cosmo.cli import main

    data = tmp_path / "data"
    data.mkdir()
    good = {"id": "r1", "task": "reasoning", "prompt": "What is 2 + 1?", "answer": "3"}
    (data / "train.jsonl").write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "r2", "task": "poetry"})
                                      + "\n")
    (data / "eval.jsonl").write_text(json.dumps(good) + "\n")
    model, runs = tmp_path / "model", tmp_path / "runs"
    code = main(["train", str(ROOT / "configs" / "tiny-cpu.yaml"), f"data.dir={data}", f"model.path={model}",
                 f"logging.runs_dir={runs}", "logging.run_name=bad"])
    err = capsys.readouterr().err
    assert code != 0
    assert "train.jsonl:2: row 'r2': field 'task'" in err, err
    assert not runs.exists(), "a launch that failed on its data created a run directory"
    assert not model.exists(), "the tiny model was built before the data was checked"
    import ray

    assert not ray.is_initialized()


def test_a_batch_larger_than_the_data_is_a_warning_naming_the_keys(builtin_data, caplog):
    rows = load_jsonl(builtin_data["train"])  # 8 rows per task, 48 in all
    assert len(rows) == 48
    cfg = load_config(ROOT / "configs" / "tiny-cpu.yaml", ["model.path=m", "sft.global_batch_size=64"])
    with caplog.at_level(logging.WARNING, logger="cosmo"):
        warnings = check_batch_sizes(cfg, {"sft": (rows, "train.jsonl"), "rl": (rows, "train.jsonl")})
    assert warnings == ["sft.global_batch_size=64 is larger than the 48 rows of train.jsonl: "
                        "rows repeat within a step (lower sft.global_batch_size or add rows)"]
    assert warnings[0] in caplog.text
    # with a task mixture all on `safety` (8 rows): SFT draws 32 and RL 16 of those 8 rows per step
    cfg = load_config(ROOT / "configs" / "tiny-cpu.yaml", ["model.path=m", "rl.prompts_per_step=16",
                                                           "data.task_weights={safety: 1.0}", "train.stages=[sft,rl]"])
    assert check_batch_sizes(cfg, {"sft": (rows, "train.jsonl"), "rl": (rows, "train.jsonl")}) == [
        f"{key}={n} with data.task_weights draws {n} rows of task 'safety' per step, but train.jsonl "
        "has only 8: rows repeat within a step"
        for key, n in (("sft.global_batch_size", 32), ("rl.prompts_per_step", 16))]
    cfg = load_config(ROOT / "configs" / "tiny-cpu.yaml", ["model.path=m", "sft.global_batch_size=32"])
    assert check_batch_sizes(cfg, {"sft": (rows, "train.jsonl"), "rl": (rows, "train.jsonl")}) == []


def _checkpoint(path: Path, manifest: dict) -> Path:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    (path / COMPLETE_MARKER).write_text(json.dumps(manifest))
    return path


def test_a_report_is_reused_only_for_the_model_it_describes(tmp_path):
    step3 = _checkpoint(tmp_path / "rl" / "step_3", {"step": 3, "files": {"model.safetensors": "aa"}})
    step6 = _checkpoint(tmp_path / "rl" / "step_6", {"step": 6, "files": {"model.safetensors": "bb"}})
    assert model_fingerprint(str(step3)) != model_fingerprint(str(step6))
    report = tmp_path / "rl.json"
    report.write_text(json.dumps({"model": str(step3), "model_fingerprint": model_fingerprint(str(step3)),
                                  "metrics": {}}))
    assert reusable_report(report, str(step3), model_fingerprint(str(step3)))["model"] == str(step3)
    # the run was resumed with more steps: the label is the same, the model is not
    assert reusable_report(report, str(step6), model_fingerprint(str(step6))) is None
    # the same path rewritten by another save (a rerun from scratch): a new manifest, so not reused
    (step3 / COMPLETE_MARKER).write_text(json.dumps({"step": 3, "files": {"model.safetensors": "cc"}}))
    assert reusable_report(report, str(step3), model_fingerprint(str(step3))) is None
    # a report from before fingerprints existed is recomputed, never trusted
    report.write_text(json.dumps({"model": str(step3), "metrics": {}}))
    assert reusable_report(report, str(step3), model_fingerprint(str(step3))) is None
    assert reusable_report(tmp_path / "missing.json", str(step3), "x") is None


def test_built_in_data_built_with_other_keys_is_named_and_user_data_is_never_touched(tmp_path):
    from cosmo.data import build_dataset
    from cosmo.driver.assets import stale_builtin_data

    build_dataset(tmp_path / "d", seed=0, train_per_task=2, eval_per_task=1)
    same = load_config(ROOT / "configs" / "tiny-cpu.yaml", ["model.path=m", f"data.dir={tmp_path / 'd'}",
                                                            "data.train_per_task=2", "data.eval_per_task=1",
                                                            *PLAIN_DATA])
    assert stale_builtin_data(tmp_path / "d", same.data, 0) is None
    assert stale_builtin_data(tmp_path / "d", same.data, 1) == "seed 0 (this run: 1)"
    more = load_config(ROOT / "configs" / "tiny-cpu.yaml", ["model.path=m", "data.train_per_task=3",
                                                            "data.eval_per_task=1", *PLAIN_DATA])
    assert stale_builtin_data(tmp_path / "d", more.data, 0) == ("[2] rows per task in train "
                                                                "(this run: data.train_per_task=3)")
    pool = load_config(ROOT / "configs" / "tiny-cpu.yaml", ["model.path=m", "data.train_per_task=2",
                                                            "data.eval_per_task=1", *PLAIN_DATA, "data.rl_per_task=4"])
    assert stale_builtin_data(tmp_path / "d", pool.data, 0) == "[0] rows per task in rl (this run: data.rl_per_task=4)"
    (tmp_path / "mine").mkdir()  # the user's own data: no generator manifest, never rebuilt
    assert stale_builtin_data(tmp_path / "mine", more.data, 0) is None


def test_an_evaluation_between_stages_waits_for_the_cpus_of_the_killed_actors(monkeypatch):
    # Ray reports 0 free CPUs right after the stage's actors are killed and returns them a moment later; sized
    # at that moment the evaluation ran on one thread of two (1.7x slower in the SmolLM2 recipe)
    reads = iter([{}, {"CPU": 0.5}, {"CPU": 2.0}])
    monkeypatch.setattr(checkpoint_eval.ray, "available_resources", lambda: next(reads))
    assert free_cpus(2.0, wait_s=5.0, poll_s=0.0) == 2


def test_an_evaluation_takes_what_is_free_when_another_job_holds_cpus(monkeypatch):
    monkeypatch.setattr(checkpoint_eval.ray, "available_resources", lambda: {"CPU": 3.0})
    started = time.monotonic()
    assert free_cpus(8.0, wait_s=0.2, poll_s=0.05) == 3
    assert time.monotonic() - started < 2.0
    monkeypatch.setattr(checkpoint_eval.ray, "available_resources", lambda: {"CPU": 16.0})
    assert free_cpus(8.0, wait_s=0.0) == 8  # a task cannot span nodes: the largest node's CPUs at most
