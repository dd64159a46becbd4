"""bench/evidence.py and bench/stability.py without any run: the figures over seeds (mean, t-interval, McNemar per
seed), their markdown, the regenerated section of docs/results.md, which ablations share the default's SFT, and
the stability table's quarters. Expected values are worked out by hand in the comments."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import evidence  # noqa: E402
import evidence_tables as et  # noqa: E402
import launch  # noqa: E402
import results_doc  # noqa: E402

T975_2 = 4.302652729911275  # Student t quantile 0.975 with 2 degrees of freedom (from a t table)


def report(metric: str, hits: list[int]) -> dict:
    """An eval report of one metric over rows r0, r1, ... with these per-row hits."""
    return {"metrics": {metric: sum(hits) / len(hits)}, "counts": {metric: {"hits": sum(hits), "rows": len(hits)}},
            "row_hits": {metric: {f"r{i}": bool(h) for i, h in enumerate(hits)}}}


OR = "over_refusal_rate"
# three seeds of over-refusal on 6 rows, SFT -> RL:
#   s0: 6/6 -> 0/6, change -1,   6 rows refused only by SFT: McNemar p = 2 * 0.5^6 = 0.03125 (beyond noise)
#   s1: 3/6 -> 1/6, change -1/3, 2 rows only by SFT:          p = 2 * 0.5^2 = 0.5
#   s2: 2/6 -> 2/6, change 0,    no discordant row:           p = 1
PAIRS = {0: (report(OR, [1, 1, 1, 1, 1, 1]), report(OR, [0, 0, 0, 0, 0, 0])),
         1: (report(OR, [1, 1, 1, 0, 0, 0]), report(OR, [1, 0, 0, 0, 0, 0])),
         2: (report(OR, [1, 1, 0, 0, 0, 0]), report(OR, [1, 1, 0, 0, 0, 0]))}


def test_t_interval_over_three_seeds():
    # values 0.1, 0.2, 0.6: mean 0.3, squared deviations 0.04 + 0.01 + 0.09 = 0.14, sample variance 0.07,
    # standard error sqrt(0.07 / 3), half width t(0.975, 2) * that = 4.302653 * 0.1527525 = 0.657241
    agg = et.t_interval([0.1, 0.2, 0.6])
    half = T975_2 * math.sqrt(0.07 / 3)
    assert agg["n"] == 3 and agg["mean"] == pytest.approx(0.3)
    assert agg["low"] == pytest.approx(0.3 - half) and agg["high"] == pytest.approx(0.3 + half)
    assert half == pytest.approx(0.657241, abs=1e-6)


def test_t_interval_one_seed_has_no_interval():
    assert et.t_interval([0.4]) == {"n": 1, "mean": 0.4, "low": None, "high": None}
    assert et.interval_text(et.t_interval([0.4])) == "0.400 (n=1, no interval)"
    assert et.excludes_zero(et.t_interval([0.4])) is None


def test_paired_figures_means_intervals_and_mcnemar_per_seed():
    f = et.paired_figures(PAIRS, OR)
    # SFT: 1, 1/2, 1/3 -> mean 11/18; RL: 0, 1/6, 1/3 -> mean 1/6; change: -1, -1/3, 0 -> mean -4/9
    assert f["before"]["mean"] == pytest.approx(11 / 18)
    assert f["after"]["mean"] == pytest.approx(1 / 6)
    # change deviations from -4/9: -5/9, 1/9, 4/9; squares sum 42/81 = 14/27, variance 7/27,
    # standard error sqrt(7/81) = sqrt(7)/9
    half = T975_2 * math.sqrt(7) / 9
    assert f["change"]["mean"] == pytest.approx(-4 / 9)
    assert (f["change"]["low"], f["change"]["high"]) == (pytest.approx(-4 / 9 - half), pytest.approx(-4 / 9 + half))
    seeds = {s["seed"]: s for s in f["seeds"]}
    assert seeds[0]["before"] == [6, 6] and seeds[0]["after"] == [0, 6]
    # Wilson at 0/6 (z² = 3.841459): centre (z²/12) / (1 + z²/6) = 0.320122 / 1.640243 = 0.195167, which is also
    # the half width, so [0, 0.390334]
    assert seeds[0]["after_wilson"] == [pytest.approx(0.0, abs=1e-12), pytest.approx(0.390334, abs=1e-6)]
    assert seeds[0]["p_value"] == pytest.approx(0.03125) and seeds[0]["beyond_noise"] is True
    assert seeds[1]["p_value"] == pytest.approx(0.5) and seeds[1]["beyond_noise"] is False
    assert seeds[2]["p_value"] == 1.0 and seeds[2]["change"] == 0
    assert et.excludes_zero(f["change"]) is False  # -0.444 +- 1.265 spans 0


def test_report_without_row_hits_is_untested_and_missing_metric_is_left_out():
    no_rows = {"metrics": {OR: 0.5}, "counts": {OR: {"hits": 1, "rows": 2}}}
    lacking = {"metrics": {}, "counts": {}}
    f = et.paired_figures({0: (no_rows, report(OR, [0, 0])), 1: (lacking, report(OR, [1, 0]))}, OR)
    assert [s["seed"] for s in f["seeds"]] == [0]
    assert f["seeds"][0]["p_value"] is None and f["seeds"][0]["beyond_noise"] is None
    assert f["change"] == {"n": 1, "mean": -0.5, "low": None, "high": None}
    assert "untested: no per-row hits" in et.seed_text(f["seeds"][0])


def test_versus_pairs_the_seeds_both_recipes_have():
    default = {0: report(OR, [1, 1, 1, 1, 1, 1]), 1: report(OR, [1, 0, 0, 0, 0, 0])}
    ablation = {0: report(OR, [0, 0, 0, 0, 0, 0]), 2: report(OR, [1, 1, 1, 1, 1, 1])}
    f = et.versus_figures(ablation, default, OR)
    # only seed 0 is in both: ablation 0/6 - default 6/6 = -1, six rows only the default refused: p = 0.03125
    assert [s["seed"] for s in f["seeds"]] == [0]
    assert f["change"]["mean"] == -1.0 and f["seeds"][0]["p_value"] == pytest.approx(0.03125)


def test_recipe_table_cells():
    lines = et.recipe_table(et.recipe_figures(PAIRS, [OR]))
    assert lines[0] == "| metric | SFT | final RL | RL − SFT | per seed: SFT → RL, change (McNemar) |"
    row = lines[2]
    # RL mean 1/6: deviations -1/6, 0, 1/6, variance 1/36, standard error sqrt(1/108), half 4.30265 * 0.096225
    # = 0.414023 -> [-0.247, 0.581]; change -4/9 +- 4.30265 * sqrt(7)/9 = -0.444 +- 1.264862 -> [-1.709, +0.820]
    assert row.startswith("| over_refusal_rate ↓ | 0.611 [")
    assert "| 0.167 [-0.247, 0.581] |" in row
    assert "| -0.444 [-1.709, +0.820] |" in row
    assert "s0: 6/6 → 0/6 -1.000* (p 0.031); s1: 3/6 → 1/6 -0.333 (p 0.5); s2: 2/6 → 2/6 +0.000 (p 1)" in row
    assert len(lines) == 3  # metrics no seed has are left out


def test_headline_row_and_section_render():
    comparison = {"title": "safety-only − default, final RL", "kind": "versus", "metric": OR, "before": "default",
                  "after": "safety-only", "figures": et.paired_figures({0: PAIRS[0]}, OR)}
    row = et.comparison_row(comparison)
    assert row[2:4] == ["-1.000 (n=1, no interval)", "n=1, no interval"]
    assert row[4] == "1 of 1 seeds beyond noise: s0: default 6/6 → safety-only 0/6 -1.000* (p 0.031)"
    ev = {"command": "deploy/loopback.sh python bench/evidence.py --seeds 0", "commit": "abc1234",
          "date": "2026-11-29 20:00 UTC", "seeds": [0], "json": "bench/results/evidence.json", "notes": ["a note"],
          "comparisons": [comparison], "runs": [{"command": "python -m cosmo train configs/tiny-cpu.yaml seed=0"}],
          "recipes": {"default": {"description": "`configs/tiny-cpu.yaml`", "metrics": et.recipe_figures(
              {0: PAIRS[0]}, [OR])}}}
    text = et.render_section(ev)
    assert text.startswith("Generated by `deploy/loopback.sh python bench/evidence.py --seeds 0` at commit "
                           "`abc1234`, 2026-11-29 20:00 UTC; seeds 0.")
    assert "- a note" in text
    assert "| metric | default |\n|---|---|\n| over_refusal_rate ↓ | 0.000 (n=1, no interval) |" in text
    assert "```\npython -m cosmo train configs/tiny-cpu.yaml seed=0\n```" in text


def test_replace_section_keeps_the_rest_of_the_file():
    text = "# Results\n\nintro\n\n<!-- evidence:begin -->\nold\ntable\n<!-- evidence:end -->\n\n## After\nkept\n"
    new = results_doc.replace_section(text, "evidence", "new table\n")
    assert new == "# Results\n\nintro\n\n<!-- evidence:begin -->\nnew table\n<!-- evidence:end -->\n\n## After\nkept\n"
    # another section's markers are left alone
    assert results_doc.replace_section(new, "stability", "x").startswith(new.rstrip() + "\n\n")


def test_replace_section_appends_when_missing_and_refuses_broken_markers():
    assert results_doc.replace_section("# R\n", "s", "body") == "# R\n\n<!-- s:begin -->\nbody\n<!-- s:end -->\n"
    assert results_doc.replace_section("", "s", "body") == "<!-- s:begin -->\nbody\n<!-- s:end -->\n"
    twice = "<!-- s:begin -->\n" * 2 + "<!-- s:end -->"
    for broken in ("<!-- s:end -->\n<!-- s:begin -->\n", "<!-- s:begin -->\n", twice):
        with pytest.raises(ValueError, match="s:begin"):
            results_doc.replace_section(broken, "s", "body")


def test_write_section_names_the_file(tmp_path):
    path = tmp_path / "results.md"
    path.write_text("<!-- s:begin -->\n")
    with pytest.raises(ValueError, match=str(path)):
        results_doc.write_section(path, "s", "body")


def test_which_ablations_share_the_default_sft():
    from cosmo.config import load_config

    root = launch.ROOT / "configs"
    default = load_config(root / "tiny-cpu.yaml", ["logging.run_name=default-s0"])
    for recipe in ("ablation-safety-only.yaml", "ablation-capability-only.yaml", "ablation-grpo.yaml"):
        assert not evidence.own_sft(default, load_config(root / recipe)), recipe  # rewards / algorithm: RL only
    assert evidence.own_sft(default, load_config(root / "tiny-cpu.yaml", ["data.augment=true"]))
    assert evidence.own_sft(default, load_config(root / "tiny-cpu.yaml", ["seed=1"]))


def test_split_stages():
    assert launch.split_stages(["sft", "rl"]) == (["sft"], ["rl"])
    assert launch.split_stages(["rl"]) == ([], ["rl"])


def steps(key: str, values: list[float | None]) -> list[dict]:
    return [{"stage": "rl", "step": i, key: v} for i, v in enumerate(values, 1)]


def test_stability_quarters_split_the_steps_in_order():
    import stability

    # 8 steps: quarters [1, 2], [3, 4], [5, 6], [7, 8]
    assert stability.quarters(steps("r", [1, 2, 3, 4, 5, 6, 7, 8]), "r") == [1.5, 3.5, 5.5, 7.5]
    # 6 steps: quarter q holds records [6q/4, 6(q+1)/4) rounded down: [1], [2, 3], [4], [5, 6]
    assert stability.quarters(steps("r", [1, 2, 3, 4, 5, 6]), "r") == [1, 2.5, 4, 5.5]
    # 3 steps: the first quarter is empty; a missing value is left out of its quarter's mean
    assert stability.quarters(steps("r", [1, 2, 3]), "r") == [None, 1, 2, 3]
    assert stability.quarters(steps("r", [1, None, 3, 5]), "r") == [1, None, 3, 5]


def test_stability_quarter_table_averages_seeds():
    import stability

    def run(reward: float, clip: float) -> list[dict]:
        return [{"stage": "rl", "step": i, "reward/mean": reward, "response/length_mean": 10.0 * i,
                 "train/clip_frac": clip, "train/approx_kl_old": 0.0} for i in range(1, 5)]

    lines = stability.quarter_table({"GRPO": [run(0.0, 0.5), run(1.0, 0.1)], "CPGD": [run(0.25, 0.0)]})
    assert lines[0] == ("| quarter (steps) | reward GRPO | reward CPGD | response length GRPO | response length CPGD "
                        "| clip fraction GRPO | clip fraction CPGD | KL to old policy GRPO | KL to old policy CPGD |")
    # quarter 2 is step 2: GRPO reward (0 + 1) / 2, length 20 in both runs, clip (0.5 + 0.1) / 2
    assert lines[3] == "| 2 (2-2) | 0.500 | 0.250 | 20.000 | 20.000 | 0.300 | 0.000 | 0.000 | 0.000 |"


def test_rl_steps_reads_the_last_attempt(tmp_path):
    import json

    from metrics import rl_steps

    # a launch that died at RL step 2 before any checkpoint, then a full relaunch with 3 steps; RL step records
    # carry time/step (an SFT record does not)
    lines = [{"stage": "rl", "step": 1, "x": 0}, {"stage": "rl", "step": 2, "x": 0},
             {"stage": "rl", "step": 1, "x": 1}, {"stage": "rl", "step": 2, "x": 1}, {"stage": "rl", "step": 3, "x": 1}]
    lines = [{"stage": "sft", "step": 1, "x": 1}, *({**r, "time/step": 1.0} for r in lines)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert [(r["step"], r["x"]) for r in rl_steps(tmp_path, skip=0)] == [(1, 1), (2, 1), (3, 1)]
    assert [r["step"] for r in rl_steps(tmp_path)] == [2, 3]
    # named RL stages (rl_general, rl_mixed): each one's first step is skipped
    named = [{"stage": s, "step": i, "time/step": 1.0} for s in ("rl_general", "rl_mixed") for i in (1, 2)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in named))
    assert [(r["stage"], r["step"]) for r in rl_steps(tmp_path)] == [("rl_general", 2), ("rl_mixed", 2)]


def test_a_run_is_reused_only_with_the_same_config_and_start_model(tmp_path):
    import json

    from cosmo.config import load_config, to_yaml
    from cosmo.driver.checkpoint_eval import model_fingerprint

    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"1234")
    config = launch.ROOT / "configs" / "tiny-cpu.yaml"
    cfg = load_config(config, [f"model.path={model}"])
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    (run / "config.yaml").write_text(to_yaml(load_config(config, [f"model.path={model}", "resume=auto"])))
    (run / "eval" / "start.json").write_text(json.dumps({"model_fingerprint": model_fingerprint(str(model))}))
    assert launch.same_inputs(run, cfg)  # `resume` aside, the same config and weights
    assert not launch.same_inputs(run, load_config(config, [f"model.path={model}", "rl.steps=3"]))
    (model / "weights.bin").write_bytes(b"123456")  # the start model was made again
    assert not launch.same_inputs(run, cfg)
