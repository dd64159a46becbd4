"""Fault injection without a cluster: the checkpoint saver killed at every file operation, and pickled
payloads refused wherever COSMO loads saved state."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cosmo.models import load_model
from learner.checkpoint import COMPLETE_MARKER, latest_checkpoint, verify_checkpoint
from learner.train_state import load_train_state

ROOT = Path(__file__).resolve().parents[1]
KILLED = 137  # the exit status the saver dies with: os._exit, no cleanup, no finally blocks (as SIGKILL)

# Runs in a subprocess: imports once, then per kill point forks a child that runs COSMO's save sequence
# (save_if_due -> staging dir -> HF model -> every rank's train state -> driver state -> manifest and
# rename -> pruning) with an audit hook that hard-exits at the k-th operation that changes a file under
# the checkpoints directory. The real functions run; only the DeepSpeed engine's state is replaced by
# tensors of the same file layout (learner/train_state.py). Prints one JSON line per point.
SAVER = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path
    import torch
    from safetensors.torch import save_file
    from cosmo.config import load_config
    from cosmo.models import load_model
    from cosmo.driver.checkpoints import save_if_due
    from learner.actor import LearnerRank
    import shutil
    from learner.checkpoint import TRAIN_STATE, latest_checkpoint, model_side_files, verify_checkpoint, write_hf_model

    model_dir, root = sys.argv[1], Path(sys.argv[2])
    module = load_model(model_dir).model
    cfg = load_config(Path(sys.argv[3]) / "configs" / "tiny-cpu.yaml",
                      ["checkpoint.every_steps=1", "checkpoint.keep_last=1"])
    WRITES = {"os.rename", "os.replace", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree", "shutil.copyfile",
              "shutil.copymode", "shutil.copystat", "os.truncate", "os.chmod", "os.utime"}

    class OneProcessSaver:
        """LearnerGroup.save's three phases, both ranks in this process."""
        def save(self, out_dir, meta, driver_state):
            tmp = LearnerRank.prepare_checkpoint(None, out_dir)
            write_hf_model(module, side_files=model_side_files(model_dir), tmp=Path(tmp), zero_stage=0, rank=0)
            for rank in (0, 1):
                save_file({"optim.0.exp_avg": torch.full((8,), float(rank))},
                          str(Path(tmp) / TRAIN_STATE / f"rank_{rank}.safetensors"))
                (Path(tmp) / TRAIN_STATE / f"rank_{rank}.json").write_text(json.dumps({"rank": rank}))
            return LearnerRank.finalize_checkpoint(None, tmp, out_dir, meta, driver_state)

    def save(step, kill_at):
        count = [0]
        def hook(event, args):
            if event == "open":
                path, mode, flags = args
                writes = (mode is not None and any(m in mode for m in "wax+")) or (
                    mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            else:
                path, writes = (args[0] if args else None), event in WRITES
            if writes and str(path).startswith(str(root)):
                count[0] += 1
                if count[0] == kill_at:
                    os._exit(137)
        if kill_at:
            sys.addaudithook(hook)
        state = lambda: {"stage_start_model": model_dir, "sampler": {"order": [], "position": step}}
        save_if_due(cfg, OneProcessSaver(), root, "rl", step, 10, state)
        os._exit(0)

    def run(step, kill_at):
        pid = os.fork()
        if pid == 0:
            save(step, kill_at)
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

    def found():
        latest = latest_checkpoint(root)
        return latest.name if latest else None

    assert run(1, 0) == 0  # a complete step_1 to fall back on
    baseline = root.parent / "baseline"
    shutil.copytree(root, baseline)
    k = 0
    while True:
        k += 1
        shutil.rmtree(root)
        shutil.copytree(baseline, root)
        code = run(2, k)
        point = {"point": k, "code": code, "listing": sorted(p.name for p in root.iterdir()),
                 "resume_finds": found(),
                 "broken_visible": [p.name for p in root.glob("step_*") if verify_checkpoint(p) is not None]}
        if code != 0:  # the relaunch (resume=auto would find the same checkpoint) saves step 2 again
            point["relaunch_code"] = run(2, 0)
            point["after_relaunch"] = found()
        print(json.dumps(point), flush=True)
        if code == 0:
            break
''')


@pytest.mark.slow  # ~35 forks of a save: 40-55 s
def test_saver_killed_at_every_file_operation_leaves_a_checkpoint_resume_can_use(tiny_model, tmp_path):
    root = tmp_path / "checkpoints" / "rl"
    root.mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-c", SAVER, str(tiny_model), str(root), str(ROOT)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    points = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    *killed, complete = points
    assert complete["code"] == 0 and complete["resume_finds"] == "step_2" and complete["listing"] == ["step_2"]
    # staging dir, tokenizer and config files, model, 2 ranks x 2 train-state files, driver state, marker,
    # rename, pruning of step_1: each one a kill point
    assert len(killed) >= 12, points
    for p in killed:
        assert p["code"] == KILLED, p
        # resume=auto never sees a half-written checkpoint: the old one until the rename, the new one after
        assert p["resume_finds"] in ("step_1", "step_2"), p
        assert p["broken_visible"] in ([], ["step_1"]), p  # only pruning, after step_2 is complete, breaks one
        if p["broken_visible"]:
            assert p["resume_finds"] == "step_2", p
        # a relaunch saves step 2 over whatever the kill left
        assert p["relaunch_code"] == 0 and p["after_relaunch"] == "step_2", p
    finds = [p["resume_finds"] for p in killed]
    # killed before the rename: the previous checkpoint; after it: the new one; never anything else
    switch = finds.index("step_2")
    assert set(finds[:switch]) == {"step_1"} and set(finds[switch:]) == {"step_2"}, finds


class _Payload:
    """Unpickling this creates `path`: the proof that a loader ran code from a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_a_save_does_not_need_the_start_model_directory_any_more(tiny_model, tmp_path):
    from learner.checkpoint import model_side_files, write_hf_model

    start = tmp_path / "start"  # e.g. the previous stage's checkpoint, pruned or deleted while this stage trains
    shutil.copytree(tiny_model, start)
    carried = {p.name: p.read_bytes() for p in start.iterdir()
               if p.suffix != ".safetensors" and p.name not in ("config.json", "generation_config.json")}
    assert any(name.startswith("tokenizer") for name in carried)
    side_files = model_side_files(start)  # read when the learner starts
    module = load_model(start).model
    shutil.rmtree(start)
    out = tmp_path / "saved"
    out.mkdir()
    write_hf_model(module, side_files=side_files, tmp=out, zero_stage=0, rank=0)
    assert {name: (out / name).read_bytes() for name in carried} == carried
    again = load_model(out)
    assert torch.equal(next(again.model.parameters()), next(module.parameters()))


def _pickle_to(path: Path, canary: Path) -> None:
    path.write_bytes(pickle.dumps({"weight": _Payload(canary)}))


def test_pickled_weights_are_refused_and_never_unpickled(tiny_model, tmp_path):
    canary = tmp_path / "payload-ran"
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    (model / "model.safetensors").unlink()
    _pickle_to(model / "pytorch_model.bin", canary)  # what a checkpoint from elsewhere may carry
    with pytest.raises(OSError, match="model.safetensors"):
        load_model(model)
    assert not canary.exists()
    # torch's own guard, which COSMO relies on wherever torch.load would be used
    _pickle_to(tmp_path / "state.pt", canary)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        torch.load(tmp_path / "state.pt", weights_only=True)
    assert not canary.exists()
    # the payload is live: what unpickling would call (its __reduce__) creates the canary
    call, args = _Payload(canary).__reduce__()
    call(*args)
    assert canary.exists()


def test_pickled_training_state_is_refused_and_never_unpickled(tmp_path):
    canary = tmp_path / "payload-ran"
    state = tmp_path / "train_state"
    state.mkdir()
    # a pickle where the rank's safetensors file belongs, and one beside it under torch's usual name
    _pickle_to(state / "rank_0.safetensors", canary)
    _pickle_to(state / "rank_0.pt", canary)
    (state / "rank_0.json").write_text(json.dumps({"counters": {}}))
    with pytest.raises(ValueError, match=r"rank_0\.safetensors: not a readable safetensors file"):
        load_train_state(None, state, 0)
    assert not canary.exists()


def test_a_checkpoint_with_a_pickled_file_in_place_of_a_listed_one_is_skipped(tiny_model, tmp_path):
    """resume=auto checks every file against the manifest before anything is loaded."""
    canary = tmp_path / "payload-ran"
    root = tmp_path / "rl"
    for step in (1, 2):
        ckpt = root / f"step_{step}"
        shutil.copytree(tiny_model, ckpt)
        save_file({"x": torch.zeros(2)}, str(ckpt / "extra.safetensors"))
        from learner.checkpoint import finalize_checkpoint  # noqa: PLC0415

        tmp = root / f".tmp-step_{step}"
        ckpt.rename(tmp)
        finalize_checkpoint(tmp, ckpt, {"stage": "rl", "step": step})
    _pickle_to(root / "step_2" / "extra.safetensors", canary)
    assert verify_checkpoint(root / "step_2") == "extra.safetensors does not match its checksum"
    assert latest_checkpoint(root) == root / "step_1"
    assert json.loads((root / "step_1" / COMPLETE_MARKER).read_text())["step"] == 1
    assert not canary.exists()


def test_resume_rewinds_metrics_and_ledger_and_drops_a_half_written_line(tmp_path):
    """What a killed launch logged after its last checkpoint is dropped before those steps run
    again; evaluation records stay (their reports are reused); a line cut by the kill goes too."""
    from cosmo.config import load_config
    from cosmo.driver.resume import ResumePoint
    from cosmo.driver.tracking import RunTracker

    cfg = load_config(ROOT / "configs" / "tiny-cpu.yaml", [f"logging.runs_dir={tmp_path}", "logging.run_name=r",
                                                           "logging.wandb_mode=disabled"])
    run = tmp_path / "r"
    run.mkdir()
    done = [("sft", 1), ("sft", 2), ("rl", 1), ("rl", 2), ("eval/rl", 2), ("rl", 3)]
    metrics = "".join(json.dumps({"stage": s, "step": n, "loss": 1.0}) + "\n" for s, n in done)
    ledger = "".join(json.dumps({"stage": s, "step": n, "sample_ids": [f"{s}{n}"]}) + "\n"
                     for s, n in done if not s.startswith("eval"))
    (run / "metrics.jsonl").write_text(metrics + '{"stage": "rl", "step": 4, "lo')  # killed mid-line
    (run / "ledger.jsonl").write_text(ledger + '{"stage": "rl", "st')
    tracker = RunTracker(cfg, resume=ResumePoint(run / "checkpoints" / "rl" / "step_2", "rl", 2, {}))
    tracker.log_ledger("rl", 3, ["again"])
    tracker.log("rl", 3, {"loss": 0.5})
    tracker.close()
    kept = [(r["stage"], r["step"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]
    assert kept == [("sft", 1), ("sft", 2), ("rl", 1), ("rl", 2), ("eval/rl", 2), ("rl", 3)]
    rows = [json.loads(line) for line in (run / "ledger.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["step"], r["sample_ids"]) for r in rows] == [
        ("sft", 1, ["sft1"]), ("sft", 2, ["sft2"]), ("rl", 1, ["rl1"]), ("rl", 2, ["rl2"]), ("rl", 3, ["again"])]
