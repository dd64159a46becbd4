"""Relaunching never loses a run: `resume=auto` (the default) continues, `resume=never` refuses a used run
directory, `resume=fresh` moves it aside whole, and a finished run is not trained again. No Ray, vLLM or
DeepSpeed is started here (the whole relaunch of a finished run: tests/test_driver.py, slow)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from cosmo.config import ConfigError, load_config
from cosmo.driver.checkpoint_eval import differing_rows
from cosmo.driver.resume import (
    ResumePoint,
    earlier_run,
    find_resume_point,
    move_aside,
    refuse_used_run_dir,
    run_finished,
)
from cosmo.driver.tracking import RunTracker
from learner.checkpoint import COMPLETE_MARKER, DRIVER_STATE, finalize_checkpoint, staging_dir

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "tiny-cpu.yaml"


def _cfg(tmp: Path, *overrides: str):
    return load_config(RECIPE, [f"logging.runs_dir={tmp / 'runs'}", "logging.run_name=run",
                                "logging.wandb_mode=disabled", *overrides])


def _finished_run(tmp: Path) -> Path:
    """A run directory as the default recipe leaves it (sft 400 steps, rl 40): both stages' final
    checkpoints, the records of every step and the evaluation reports."""
    run = tmp / "runs" / "run"
    for stage, step in (("sft", 400), ("rl", 40)):
        out = run / "checkpoints" / stage / f"step_{step}"
        work = staging_dir(out)
        work.mkdir(parents=True)
        (work / "model.safetensors").write_bytes(f"{stage} weights".encode())
        (work / DRIVER_STATE).write_text(json.dumps({"stage": stage, "step": step, "sampler": {},
                                                     "stage_start_model": "m"}))
        finalize_checkpoint(work, out, {"stage": stage, "step": step})
    records = [("eval/start", 0), *(("sft", s) for s in range(1, 401)), ("eval/sft", 400),
               *(("rl", s) for s in range(1, 41)), ("eval/rl", 40)]
    (run / "metrics.jsonl").write_text("".join(json.dumps({"stage": s, "step": n}) + "\n" for s, n in records))
    (run / "ledger.jsonl").write_text("".join(json.dumps({"stage": s, "step": n, "sample_ids": ["a"]}) + "\n"
                                              for s, n in records if not s.startswith("eval/")))
    (run / "eval").mkdir()
    for label in ("start", "sft", "rl"):
        (run / "eval" / f"{label}.json").write_text(json.dumps({"model": label}))
    return run


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_default_is_auto_and_a_finished_run_is_found_finished(tmp_path):
    cfg = _cfg(tmp_path)
    assert cfg.resume == "auto"
    _finished_run(tmp_path)
    point = find_resume_point(cfg, tmp_path / "runs" / "run")
    assert (point.stage, point.step) == ("rl", 40)
    assert run_finished(cfg, point)
    # more RL steps asked for: the run goes on from rl step 40; a point inside a stage is not the end
    assert not run_finished(_cfg(tmp_path, "rl.steps=60"), point)
    assert not run_finished(cfg, ResumePoint(point.path, "rl", 39, point.state))
    assert not run_finished(cfg, ResumePoint(point.path, "sft", 400, point.state))
    assert not run_finished(cfg, None)
    # never and fresh start at step 1 whatever the directory holds
    assert find_resume_point(_cfg(tmp_path, "resume=never"), tmp_path / "runs" / "run") is None
    assert find_resume_point(_cfg(tmp_path, "resume=fresh"), tmp_path / "runs" / "run") is None


def test_a_used_run_directory_is_what_holds_checkpoints_records_or_reports(tmp_path):
    run = tmp_path / "run"
    assert earlier_run(run) == []  # not there yet
    for sub in ("checkpoints", "eval"):
        (run / sub).mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 0\n")
    (run / "metrics.jsonl").write_text("")
    assert earlier_run(run) == []  # what a launch writes before its first step: nothing to lose
    (run / "checkpoints" / "sft" / ".tmp-step_2").mkdir(parents=True)
    (run / "checkpoints" / "sft" / ".tmp-step_2" / "model.safetensors").write_bytes(b"w")
    (run / "metrics.jsonl").write_text('{"stage": "sft", "step": 1}\n')
    assert earlier_run(run) == ["checkpoints/", "metrics.jsonl"]


def test_never_in_a_used_run_directory_is_refused_in_one_line_and_nothing_changes(tmp_path, capsys):
    from cosmo.cli import main

    run = _finished_run(tmp_path)
    before = _hashes(tmp_path)
    with pytest.raises(ConfigError) as raised:
        refuse_used_run_dir(_cfg(tmp_path, "resume=never"), run)
    assert str(raised.value) == (f"resume=never: {run} already holds a run (checkpoints/, eval/, metrics.jsonl, "
                                 "ledger.jsonl); continue it with resume=auto, start over with resume=fresh (moves "
                                 "it aside), or set another logging.run_name")
    refuse_used_run_dir(_cfg(tmp_path, "resume=never", "logging.run_name=other"), tmp_path / "runs" / "other")
    # through the CLI: exit 2, one line, before any data or model is looked at (neither exists here)
    code = main(["train", str(RECIPE), f"logging.runs_dir={tmp_path / 'runs'}", "logging.run_name=run",
                 "resume=never", f"model.path={tmp_path / 'no-model'}", f"data.dir={tmp_path / 'no-data'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("cosmo: config error: resume=never: ")
    assert _hashes(tmp_path) == before


def test_fresh_moves_the_earlier_run_aside_whole_and_never_onto_another(tmp_path, caplog):
    run = _finished_run(tmp_path)
    before = _hashes(run)
    with caplog.at_level("INFO", logger="cosmo"):
        moved = move_aside(run)
    assert not run.exists() and moved.parent == run.parent
    assert re.fullmatch(r"run\.old-\d{8}-\d{6}", moved.name), moved.name
    assert _hashes(moved) == before
    assert f"moved the earlier run in {run} to {moved}" in caplog.text
    # a second run moved aside within the same second goes to its own folder
    again = _finished_run(tmp_path)
    (again / "metrics.jsonl").write_text('{"stage": "sft", "step": 7}\n')
    second = move_aside(again)
    assert second != moved and second.name.startswith(moved.name)
    assert _hashes(moved) == before and (second / "metrics.jsonl").read_text() == '{"stage": "sft", "step": 7}\n'
    assert move_aside(run) is None  # nothing there: nothing moved


def test_auto_without_a_checkpoint_drops_the_earlier_launchs_steps_but_keeps_its_evaluations(tmp_path):
    """The launch died in SFT before its first checkpoint: every step runs again, so its step records go
    (else metrics.jsonl would hold steps 1-3 twice); the start model's evaluation is reused, so its record stays."""
    run = tmp_path / "runs" / "run"
    run.mkdir(parents=True)
    records = [("eval/start", 0), ("sft", 1), ("sft", 2), ("sft", 3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps({"stage": s, "step": n}) + "\n" for s, n in records))
    (run / "ledger.jsonl").write_text("".join(json.dumps({"stage": s, "step": n, "sample_ids": ["a"]}) + "\n"
                                              for s, n in records[1:]))
    cfg = _cfg(tmp_path)
    tracker = RunTracker(cfg, resume=find_resume_point(cfg, run))
    tracker.log("sft", 1, {"loss": 1.0})
    tracker.close()
    kept = [(r["stage"], r["step"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]
    assert kept == [("eval/start", 0), ("sft", 1)]
    assert (run / "ledger.jsonl").read_text() == ""


def test_a_finished_run_relaunched_keeps_its_records_and_repeats_go_beside_the_reports(tmp_path):
    run = _finished_run(tmp_path)
    before = _hashes(run)
    cfg = _cfg(tmp_path)
    tracker = RunTracker(cfg, resume=find_resume_point(cfg, run))
    first = tracker.write_repeat("rl", {"rows": 1})
    second = tracker.write_repeat("rl", {"rows": 2})
    tracker.close()
    assert (first.name, second.name) == ("rl-1.json", "rl-2.json") and first.parent == run / "eval" / "repeats"
    assert json.loads(first.read_text()) == {"rows": 1}
    after = _hashes(run)
    assert {k: after[k] for k in before} == before  # checkpoints, metrics, ledger and reports unchanged
    assert sorted(set(after) - set(before)) == ["config.yaml", "eval/repeats/rl-1.json", "eval/repeats/rl-2.json"]


def test_repeat_evaluations_are_compared_by_output_else_by_verdict():
    first = {"outputs": {"a": "yes", "b": "no", "c": "maybe"},
             "row_hits": {"over_refusal_rate": {"a": True, "b": False}}}
    assert differing_rows(first, {**first, "outputs": {"a": "yes", "b": "no", "c": "maybe"}}) == []
    assert differing_rows(first, {**first, "outputs": {"a": "yes", "b": "No.", "c": "maybe"}}) == ["b"]
    old = {"row_hits": {"over_refusal_rate": {"a": True, "b": False}, "format_rate": {"a": True, "b": True}}}
    new = {"row_hits": {"over_refusal_rate": {"a": True, "b": True}, "format_rate": {"a": False, "b": True}},
           "outputs": {}}
    assert differing_rows(old, new) == ["a", "b"]  # a report from before outputs were kept: verdicts


@pytest.mark.parametrize(("value", "ok"), [("auto", True), ("fresh", True), ("never", True),
                                           ("runs/x/checkpoints/rl/step_4", True), ("Auto", False),
                                           ("FRESH", False), ("", False)])
def test_resume_is_a_keyword_or_a_path(tmp_path, value, ok):
    if ok:
        assert _cfg(tmp_path, f"resume={value}").resume == value
    else:
        with pytest.raises(ConfigError, match=re.escape(f"key 'resume': expected auto, fresh, never or a checkpoint "
                                                        f"directory, got {value!r}")):
            _cfg(tmp_path, f"resume='{value}'")


def test_a_finished_run_needs_its_marker_to_be_found(tmp_path):
    """A final checkpoint whose completion marker is gone is not a finished run: auto goes back to the newest
    complete checkpoint (here sft's last), and the run continues from there."""
    run = _finished_run(tmp_path)
    (run / "checkpoints" / "rl" / "step_40" / COMPLETE_MARKER).unlink()
    cfg = _cfg(tmp_path)
    point = find_resume_point(cfg, run)
    assert (point.stage, point.step) == ("sft", 400) and not run_finished(cfg, point)


def test_train_with_fresh_moves_the_used_run_aside_after_the_data_is_checked(tmp_path, tiny_model, builtin_data,
                                                                              monkeypatch):
    """`cosmo train … resume=fresh` on a used run directory: the data and model are checked first, then the
    old run is renamed whole, and the new run starts in an empty directory (stopped here where Ray would start)."""
    import cosmo.driver.train as driver

    def no_cluster(_cluster):
        raise RuntimeError("no Ray in this test")

    monkeypatch.setattr(driver, "handle_sigterm", lambda: None)
    monkeypatch.setattr(driver, "ray_session", no_cluster)
    run = _finished_run(tmp_path)
    before = _hashes(run)
    cfg = _cfg(tmp_path, "resume=fresh", f"model.path={tiny_model}", "model.build_preset=null",
               f"data.dir={builtin_data['train'].parent}", "data.rl_per_task=0")
    with pytest.raises(RuntimeError, match="no Ray in this test"):
        driver.train(cfg)
    moved = [p for p in run.parent.iterdir() if p.name.startswith("run.old-")]
    assert len(moved) == 1 and _hashes(moved[0]) == before
    assert earlier_run(run) == [] and sorted(p.name for p in run.iterdir()) == [
        "checkpoints", "config.yaml", "eval", "ledger.jsonl", "metrics.jsonl"]


def test_auto_refuses_a_run_with_checkpoints_of_a_stage_it_does_not_run(tmp_path):
    """`cosmo sft` (train.stages=[sft]) in a whole run's directory would continue from sft step 400 and drop
    every RL record logged after it: refused, naming the stage; adding a stage to a run stays allowed."""
    run = _finished_run(tmp_path)
    before = _hashes(run)
    with pytest.raises(ConfigError, match=re.escape(f"resume=auto: {run} holds a run with checkpoints of rl, a stage "
                                                    "train.stages ['sft'] does not run; set another "
                                                    "logging.run_name, or resume=fresh to move that run aside")):
        find_resume_point(_cfg(tmp_path, "train.stages=[sft]"), run)
    assert _hashes(run) == before
    point = find_resume_point(_cfg(tmp_path, "train.stages=[sft,rl,rl_b]",
                                   "train.stage_configs={rl_b: {kind: rl}}"), run)
    assert (point.stage, point.step) == ("rl", 40)
