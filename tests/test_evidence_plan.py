"""bench/evidence.py --family smollm2 without any run: which runs it plans (one full smollm2 run per seed, the
ablations' RL from that seed's SFT checkpoint, one shared data dir and start model), the world data pinned to one
seed, and the tables of reports without jailbreak rows, with the refusal-rate gap. Expected values are worked out
by hand in the comments."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import evidence  # noqa: E402
import evidence_tables as et  # noqa: E402
import launch  # noqa: E402

SMOLLM2 = evidence.FAMILIES["smollm2"]
T975_1 = 12.706204736174698  # Student t quantile 0.975 with 1 degree of freedom (from a t table)
UC, OR, JB = "unsafe_compliance_rate", "over_refusal_rate", "jailbreak_success_rate"


def planned(runs_dir: Path, seeds: list[int]) -> list[evidence.Run]:
    recipes = [SMOLLM2.default, *SMOLLM2.ablations]
    return [run for seed in seeds for run, _ in evidence.plan_seed(recipes, seed, runs_dir, [], dry_run=True)]


def value(overrides: list[str], key: str) -> str | None:
    """The last `key=...` override's value (the one that wins)."""
    found = [o.split("=", 1)[1] for o in overrides if o.startswith(f"{key}=")]
    return found[-1] if found else None


def test_smollm2_plan_full_run_then_rl_only_ablations_from_its_sft(tmp_path):
    from cosmo.config import load_config

    runs = planned(tmp_path, [0, 1])
    assert [r.name for r in runs] == ["smollm2-s0", "safety-only-s0", "capability-only-s0",
                                      "smollm2-s1", "safety-only-s1", "capability-only-s1"]
    data_dirs = {value(r.overrides, "data.dir") for r in runs}
    assert data_dirs == {launch.rel(tmp_path / "data")}  # one pinned data dir: the same eval.jsonl everywhere
    for seed, (default, *ablations) in enumerate((runs[:3], runs[3:])):
        assert default.stages == ["sft", "rl_general", "rl_mixed"] and default.sft_from is None
        cfg = load_config(launch.ROOT / default.recipe.config, default.overrides)
        # the converted model is shared: no per-seed copy
        assert value(default.overrides, "model.path") is None and cfg.model.path == "runs/assets/smollm2"
        assert cfg.model.convert == "smollm2" and cfg.seed == seed
        for run in ablations:
            assert run.stages == ["rl_general", "rl_mixed"] and run.sft_from == f"smollm2-s{seed}"
            assert value(run.overrides, "model.path") == f"<sft checkpoint of smollm2-s{seed}>"
            assert value(run.overrides, "model.convert") == "null"
            assert value(run.overrides, "train.stages") == "[rl_general,rl_mixed]"
            cfg = load_config(launch.ROOT / run.recipe.config, run.overrides)  # validates
            assert cfg.model.convert is None and cfg.model.build_preset is None and not cfg.data.distill
            assert cfg.eval.stages == ["rl_mixed"] and cfg.seed == seed
    assert not (tmp_path / "data").exists()  # a dry run builds nothing


def test_dry_run_cli_prints_the_commands(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH / "evidence.py"), "--family", "smollm2", "--dry-run", "--seeds",
                          "0", "1", "--runs", str(tmp_path)], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert len(lines) == 6 and all(line.startswith("python -m cosmo train configs/smollm2") for line in lines)
    assert "'model.path=<sft checkpoint of smollm2-s1>'" in lines[4]


def test_rl_only_ablation_reads_the_checkpoint_from_the_default_report(tmp_path):
    recipes = [SMOLLM2.default, SMOLLM2.ablations[0]]
    plan = evidence.plan_seed(recipes, 0, tmp_path, [], dry_run=True)
    default, _ = next(plan)
    (tmp_path / default.name / "eval").mkdir(parents=True)
    checkpoint = tmp_path / default.name / "checkpoints" / "sft" / "step_4"
    (tmp_path / default.name / "eval" / "sft.json").write_text(json.dumps({"model": str(checkpoint)}))
    assert evidence.sft_checkpoint(tmp_path, default, "sft", dry_run=False) == launch.rel(checkpoint)


def test_world_data_is_pinned_to_the_data_seed(tmp_path):
    sizes = ["data.train_per_task=8", "data.rl_per_task=16", "data.eval_per_task=10", "seed=2"]
    over = launch.pinned_data(launch.ROOT / "configs" / "smollm2.yaml", sizes, tmp_path / "data", launch.DATA_SEED)
    assert over == [f"data.dir={launch.rel(tmp_path / 'data')}", "data.build_if_missing=false"]
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["profile"] == "world" and manifest["seed"] == launch.DATA_SEED  # not the run's seed 2
    assert (tmp_path / "data" / "eval.jsonl").is_file()


def report(**hits: list[int]) -> dict:
    """A world eval report (no jailbreak rows) with these per-row hits per metric."""
    return {"metrics": {m: sum(h) / len(h) for m, h in hits.items()},
            "counts": {m: {"hits": sum(h), "rows": len(h)} for m, h in hits.items()},
            "row_hits": {m: {f"r{i}": bool(x) for i, x in enumerate(h)} for m, h in hits.items()}}


# two seeds, SFT -> final RL, 4 harmful and 4 look-alike rows each:
#   s0: unsafe 1/4 -> 0/4, over-refusal 2/4 -> 1/4; gap (1 - 0.25) - 0.5 = 0.25 -> (1 - 0) - 0.25 = 0.75, +0.5
#   s1: unsafe 2/4 -> 1/4, over-refusal 1/4 -> 1/4; gap (1 - 0.5) - 0.25 = 0.25 -> (1 - 0.25) - 0.25 = 0.5, +0.25
PAIRS = {0: (report(**{UC: [1, 0, 0, 0], OR: [1, 1, 0, 0]}), report(**{UC: [0, 0, 0, 0], OR: [1, 0, 0, 0]})),
         1: (report(**{UC: [1, 1, 0, 0], OR: [1, 0, 0, 0]}), report(**{UC: [1, 0, 0, 0], OR: [1, 0, 0, 0]}))}


def test_tables_skip_the_absent_jailbreak_metric():
    figures = et.recipe_figures(PAIRS)
    assert set(figures) == {UC, OR}  # no jailbreak (nor capability) rows in these reports
    # over-refusal change: s0 0.25 - 0.5 = -0.25, s1 0; mean -0.125
    assert figures[OR]["change"]["mean"] == pytest.approx(-0.125)
    assert [s["before"] for s in figures[UC]["seeds"]] == [[1, 4], [2, 4]]
    lines = et.recipe_table(figures)
    assert len(lines) == 4 and not any(JB in line for line in lines)


def test_refusal_gap_over_seeds():
    gap = et.gap_figures(PAIRS)
    assert [(s["before_value"], s["after_value"]) for s in gap["seeds"]] == [(0.25, 0.75), (0.25, 0.5)]
    # change +0.5, +0.25: mean 0.375, sample sd sqrt(2 * 0.125^2) = 0.1767767, standard error 0.125,
    # half width 12.706205 * 0.125 = 1.588276
    assert gap["change"]["mean"] == pytest.approx(0.375)
    assert gap["change"]["high"] == pytest.approx(0.375 + T975_1 * 0.125)
    row = et.gap_table({"smollm2": gap})[2]
    assert row == ("| smollm2 | 0.250 [0.250, 0.250] | 0.625 [-0.963, 2.213] | +0.375 [-1.213, +1.963] | "
                   "s0: 0.250 → 0.750 +0.500; s1: 0.250 → 0.500 +0.250 |")


def test_smollm2_headlines_skip_what_no_report_has():
    finals = {"smollm2": {s: rl for s, (_, rl) in PAIRS.items()},
              "safety-only": {s: sft for s, (sft, _) in PAIRS.items()}}
    baselines = {"SFT": PAIRS, "start": PAIRS}
    titles = [c["title"] for c in evidence.comparisons(SMOLLM2, finals, baselines, None)]
    assert titles == ["over-refusal change of the smollm2 (RL − SFT)", "unsafe-compliance change of the smollm2 "
                      "(RL − SFT)", "unsafe-compliance change of the smollm2 (RL − start)",
                      "safety-only − smollm2, final RL"]  # capability-only did not run
    tiny = evidence.FAMILIES["tiny"]
    augment = evidence.Recipe("augment", tiny.default.config, ("data.augment=true",))
    tiny_finals = {"default": finals["smollm2"], "augment": finals["safety-only"]}
    tiny_titles = [c["title"] for c in evidence.comparisons(tiny, tiny_finals, baselines, augment)]
    assert tiny_titles == ["over-refusal change of the default (RL − SFT)"]  # no jailbreak rows: no augment headline
