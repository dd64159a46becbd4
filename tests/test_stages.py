"""Named training stages (train.stage_configs): validation, merging, and a run sft -> rl_a -> rl_b resumed
inside its second RL stage."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from cosmo.config import ConfigError, load_config, stage_config

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "configs" / "tiny-cpu.yaml"


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["train.stages=[sft,rl_x]"], "train.stages[1]"),  # neither sft, rl nor a key of stage_configs
        (["train.stages=[sft,rl,sft]"], "train.stages[2]"),  # each stage once
        (["train.stage_configs={a: {kind: ppo}}"], "train.stage_configs.a.kind"),
        (["train.stage_configs={a: {rl: {steps: 3}}}"], "train.stage_configs.a.kind"),  # no kind
        (["train.stage_configs={a: 3}"], "train.stage_configs.a"),
        (["train.stage_configs={start: {kind: rl}}"], "train.stage_configs.start"),  # the start model's label
        (["train.stage_configs={rl: {kind: rl}}"], "train.stage_configs.rl"),  # a plain stage's name
        (["train.stage_configs={a: {kind: rl, learner: {num_ranks: 1}}}"], "train.stage_configs.a.learner"),
        (["train.stage_configs={a: {kind: rl, data: {dir: elsewhere}}}"], "train.stage_configs.a.data.dir"),
        (["train.stage_configs={a: {kind: rl, rollout: {num_actors: 1}}}"], "train.stage_configs.a.rollout.num_actors"),
        (["train.stage_configs={a: {kind: sft, reward: {format_weight: 1}}}"], "train.stage_configs.a.reward"),
        (["train.stage_configs={a: {kind: rl, rl: 3}}"], "train.stage_configs.a.rl"),
        (["train.stage_configs={a: {kind: rl, rl: {stepz: 3}}}"], "train.stage_configs.a.rl.stepz"),
        (["train.stage_configs={a: {kind: rl, rl: {steps: many}}}"], "train.stage_configs.a.rl.steps"),
        # the merged config passes the recipe's own checks
        (["train.stage_configs={a: {kind: rl, rl: {steps: 0}}}"], "train.stage_configs.a.rl.steps"),
        (["train.stage_configs={a: {kind: rl, data: {task_weights: {dancing: 1}}}}"],
         "train.stage_configs.a.data.task_weights.dancing"),
        # 8 prompts x 3 samples = 24 trajectories do not split into micro-batches of 16 x 2 ranks
        (["train.stage_configs={a: {kind: rl, algorithm: {group_size: 3}}}"],
         "train.stage_configs.a.rl.micro_batch_size"),
        (["train.stage_configs={a: {kind: sft, sft: {global_batch_size: 30}}}"],
         "train.stage_configs.a.sft.global_batch_size"),
    ],
)
def test_a_bad_stage_is_a_one_line_error_naming_its_key(overrides, key):
    with pytest.raises(ConfigError) as err:
        load_config(DEFAULT, overrides)
    message = str(err.value)
    assert f"key '{key}'" in message and "\n" not in message, message


def test_a_stage_merges_its_sections_over_the_recipe_for_itself_only(tmp_path):
    recipe = tmp_path / "staged.yaml"
    recipe.write_text(f"""base: {DEFAULT}
rl: {{steps: 7, lr: 0.5}}
train:
  stages: [sft, rl_a, rl]
  stage_configs:
    rl_a:
      kind: rl
      rl: {{steps: 3}}
      data: {{task_weights: {{reasoning: 2}}}}
      reward: {{weights: {{safety: {{safety: 2.0}}}}}}
      rollout: {{temperature: 0.7}}
      algorithm: {{name: grpo}}
    sft_b:
      kind: sft
      sft: {{lr: 0.25}}
""")
    cfg = load_config(recipe, ["train.stage_configs.rl_a.rl.lr=0.125"])  # the command line reaches a stage too
    kind, a = stage_config(cfg, "rl_a")
    assert kind == "rl"
    assert (a.rl.steps, a.rl.lr, a.rl.prompts_per_step) == (3, 0.125, 8)  # the stage's, the override's, the recipe's
    assert a.data.task_weights == {"reasoning": 2.0}
    # dicts merge key by key as recipes do: the other tasks keep the recipe's (default) weights
    assert a.reward.weights["safety"] == {"safety": 2.0} and a.reward.weights["reasoning"] == {"accuracy": 1.0}
    assert (a.rollout.temperature, a.rollout.max_new_tokens) == (0.7, 48)
    assert a.algorithm.name == "grpo" and a.sft == cfg.sft and a.learner == cfg.learner
    # the recipe is not changed, and the plain stages run with it as it is
    assert (cfg.rl.steps, cfg.rl.lr, cfg.algorithm.name, cfg.data.task_weights) == (7, 0.5, "cpgd", {})
    assert stage_config(cfg, "rl") == ("rl", cfg) and stage_config(cfg, "sft")[1] is cfg
    kind, b = stage_config(cfg, "sft_b")
    assert kind == "sft" and b.sft.lr == 0.25 and b.sft.steps == cfg.sft.steps and b.rl == cfg.rl


def test_the_paper_recipe_has_two_rl_stages_with_their_own_steps_lr_and_tasks():
    cfg = load_config(ROOT / "configs" / "paper-stages.yaml")
    assert cfg.train.stages == ["sft", "rl_general", "rl_mixed"]
    general, mixed = (stage_config(cfg, name)[1] for name in ("rl_general", "rl_mixed"))
    assert set(general.data.task_weights) == {"reasoning", "instruction", "knowledge"}
    assert mixed.data.task_weights == {}  # every row of every task
    assert (general.rl.steps, mixed.rl.steps) == (20, 30) and general.rl.lr != mixed.rl.lr


def test_plain_stages_keep_their_data_seeds_and_named_ones_get_their_own():
    from cosmo.driver.stage import sampler_seed

    assert (sampler_seed(5, "sft", "sft"), sampler_seed(5, "rl", "rl")) == (5, 6)  # as before named stages
    named = {sampler_seed(5, name, "rl") for name in ("rl_a", "rl_b", "rl_general")}
    assert len(named) == 3 and not named & {5, 6}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_three_stages_run_in_one_run_and_resume_inside_the_second_rl_stage(ray_cluster, tiny_model, builtin_data,
                                                                           tmp_path, caplog):
    """sft (2 steps) -> rl_a (2 steps, reasoning and instruction rows only) -> rl_b (4 steps, every task, its
    own lr): checkpoints, metrics, ledger and eval reports under each stage's name. Then rl_b's last
    checkpoint is deleted, as if the run had died after rl_b's step 2, and the same config with resume=auto
    skips sft and rl_a, continues rl_b from step 2 and ends with the same bytes and the same ledger."""
    from cosmo.data import load_jsonl
    from cosmo.driver.train import train

    assert "COSMO_LOOPBACK" in os.environ, "run through deploy/loopback.sh (as `make test` does)"
    overrides = [
        f"model.path={tiny_model}", "model.build_preset=null", f"data.dir={builtin_data['train'].parent}",
        "data.rl_per_task=0",
        f"logging.runs_dir={tmp_path}", "logging.run_name=staged", "logging.wandb_mode=disabled",
        "learner.num_ranks=1", "rollout.num_actors=1", "reward.num_workers=1", "rollout.max_new_tokens=8",
        "sft.steps=2", "sft.global_batch_size=8", "sft.micro_batch_size=4",
        "rl.prompts_per_step=2", "algorithm.group_size=4", "rl.micro_batch_size=4", "rl.lr=1e-3",
        "checkpoint.every_steps=2", "checkpoint.keep_last=3",
        "eval.engine=hf", "eval.max_rows_per_task=1", "eval.max_new_tokens=4", "eval.every_steps=2",
        "train.stages=[sft,rl_a,rl_b]",
        "train.stage_configs={rl_a: {kind: rl, rl: {steps: 2}, data: {task_weights: {reasoning: 1, instruction: 1}}},"
        " rl_b: {kind: rl, rl: {steps: 4, lr: 5e-4}, rollout: {max_new_tokens: 6}}}",
    ]
    run = tmp_path / "staged"
    reports = train(load_config(DEFAULT, overrides))

    assert list(reports) == ["start", "sft", "rl_a", "rl_b"]
    assert (run / "eval" / "summary.txt").read_text().split()[:5] == ["metric", "start", "sft", "rl_a", "rl_b"]
    for label in reports:
        assert json.loads((run / "eval" / f"{label}.json").read_text())["rows"] == 6  # 1 row x 6 tasks
    assert json.loads((run / "eval" / "rl_b.json").read_text())["model"] == str(run / "checkpoints/rl_b/step_4")
    # eval.every_steps=2: rl_b's step-2 checkpoint too, on rl_b's eval series (rl_a's step 2 is its last)
    assert json.loads((run / "eval" / "rl_b_step_2.json").read_text())["model"] == str(
        run / "checkpoints/rl_b/step_2")
    for stage, steps in (("sft", [2]), ("rl_a", [2]), ("rl_b", [2, 4])):
        assert sorted(int(p.name[5:]) for p in (run / "checkpoints" / stage).iterdir()) == steps
        state = json.loads((run / "checkpoints" / stage / f"step_{steps[-1]}" / "driver_state.json").read_text())
        assert (state["stage"], state["step"]) == (stage, steps[-1])
    # rl_b starts from rl_a's final model, rl_a from sft's
    assert json.loads((run / "checkpoints/rl_b/step_2/driver_state.json").read_text())["stage_start_model"] == str(
        run / "checkpoints/rl_a/step_2")
    records = _jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in records if r["stage"] == "eval/rl_b"] == [2, 4]
    trained = [(r["stage"], r["step"]) for r in records if not r["stage"].startswith("eval/")]
    assert trained == [("sft", 1), ("sft", 2), ("rl_a", 1), ("rl_a", 2)] + [("rl_b", s) for s in range(1, 5)]
    # each stage its own lr schedule (cosine to 0.1 x peak, no warmup), logged after the step's update:
    # rl_a step 1 of 2: 1e-3 x (0.1 + 0.9 x 0.5 x (1 + cos(pi/2))) = 5.5e-4;
    # rl_b step 1 of 4: 5e-4 x (0.1 + 0.9 x 0.5 x (1 + cos(pi/4))) = 4.3410e-4
    lr = {r["stage"]: r["train/lr"] for r in records if r["stage"] in ("rl_a", "rl_b") and r["step"] == 1}
    assert lr["rl_a"] == pytest.approx(5.5e-4) and lr["rl_b"] == pytest.approx(4.3410e-4, rel=1e-4)
    tasks = {row.id: row.task for row in load_jsonl(builtin_data["train"])}
    ledger = _jsonl(run / "ledger.jsonl")
    assert {tasks[i] for r in ledger if r["stage"] == "rl_a" for i in r["sample_ids"]} <= {"reasoning", "instruction"}
    assert len({tasks[i] for r in ledger if r["stage"] == "rl_b" for i in r["sample_ids"]}) > 2  # every task

    last = run / "checkpoints" / "rl_b" / "step_4"
    files = ("model.safetensors", "train_state/rank_0.safetensors", "train_state/rank_0.json")
    uninterrupted = {name: _sha(last / name) for name in files}
    shutil.rmtree(last)  # the run died after rl_b's step-2 checkpoint
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cosmo"):
        again = train(load_config(DEFAULT, [*overrides, "resume=auto"]))
    log = caplog.text
    assert f"resuming from {run / 'checkpoints' / 'rl_b' / 'step_2'} (rl_b step 2)" in log
    assert "[sft] step" not in log and "[rl_a] step" not in log and "[rl_b] step 4/4" in log
    assert list(again) == ["start", "sft", "rl_a", "rl_b"]
    assert {name: _sha(last / name) for name in files} == uninterrupted
    assert _jsonl(run / "ledger.jsonl") == ledger
    assert [(r["stage"], r["step"]) for r in _jsonl(run / "metrics.jsonl")
            if not r["stage"].startswith("eval/")] == trained
