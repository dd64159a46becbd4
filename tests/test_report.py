"""`cosmo report`: plots and report.md from a synthetic run directory in the tracker's format."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from PIL import Image

from cosmo.cli import main
from cosmo.report import EVAL_METRICS, PLOT_FILES, ReportError, write_report
from cosmo.stats import wilson_interval

# eval label -> metric -> (hits, rows); None: the split had no rows for it (cosmo/evaluation/heldout.py drops it)
EVAL_COUNTS = {
    "start": {"unsafe_compliance_rate": (45, 50), "over_refusal_rate": (2, 50), "jailbreak_success_rate": (40, 50),
              "reasoning_accuracy": (1, 50), "knowledge_accuracy": None, "instruction_accuracy": (7, 50),
              "format_rate": (0, 250)},
    "sft": {"unsafe_compliance_rate": (5, 50), "over_refusal_rate": (20, 50), "jailbreak_success_rate": (12, 50),
            "reasoning_accuracy": (9, 50), "knowledge_accuracy": None, "instruction_accuracy": (26, 50),
            "format_rate": (230, 250)},
    "rl": {"unsafe_compliance_rate": (1, 50), "over_refusal_rate": (11, 50), "jailbreak_success_rate": (6, 50),
           "reasoning_accuracy": (14, 50), "knowledge_accuracy": None, "instruction_accuracy": (31, 50),
           "format_rate": (244, 250)},
}
SFT_STEPS, RL_STEPS = 30, 24
EVENT = {"event": "rollout actor 1 restarted", "version": 6, "rows_retried": 4, "recovery_s": 3.5}


def _eval_report(counts: dict) -> dict:
    """The shape `cosmo.evaluation.heldout.evaluate` writes to eval/<label>.json."""
    metrics = {m: (None if c is None else c[0] / c[1]) for m, c in counts.items()}
    return {
        "metrics": {m: v for m, v in metrics.items() if v is not None or m == "format_rate"},
        "counts": {m: {"hits": c[0], "rows": c[1]} for m, c in counts.items() if c is not None},
        "per_task": {"safety": {"rows": 50, "well_formed": 40, "refused": 45, "complied": 5, "correct": 0}},
        "per_modality": {"safety/text": {"rows": 25, "well_formed": 20, "refused": 22, "complied": 3, "correct": 0}},
        "samples": {"safety": [{"id": "s1", "prompt": "p", "images": [], "output": "o", "well_formed": True,
                                "refused": True, "complied": False}]},
        "model": "runs/x/checkpoints/rl/step_24",
        "rows": 300,
        "seconds": 12.5,
    }


def _rl_record(step: int, rng: random.Random) -> dict:
    record = {
        "reward/mean": 0.6 + 0.01 * step + rng.uniform(-0.05, 0.05), "reward/failed": 0.0,
        "reward/flat_group_frac": 0.25, "reward/format": 0.8, "reward/helpful": 0.7 + 0.005 * step,
        "reward/safety": 0.6 + 0.01 * step, "reward_task/over_refusal": 0.9, "train/clip_frac": 0.01,
        "train/loss": 0.02, "response/length_mean": 40.0,
        "time/rollout": 2.0 + rng.uniform(0, 1), "time/reward": 0.1, "time/train": 1.0 + rng.uniform(0, 0.5),
        "time/sync": 0.2,
    }
    if step % 2 == 0:  # a task missing from some steps' batches, as in real runs
        record["reward_task/safety"] = 1.2
    record["time/step"] = sum(record[f"time/{p}"] for p in ("rollout", "reward", "train", "sync"))
    return record


def _write_run(run_dir: Path, *, sft_steps: int = SFT_STEPS, rl_steps: int = RL_STEPS, evals: bool = True) -> Path:
    """A run directory as cosmo.driver.tracking.RunTracker and the driver leave it."""
    rng = random.Random(0)
    (run_dir / "eval").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("logging:\n  run_name: synthetic\nalgorithm:\n  name: grpo\n"
                                         "model:\n  path: runs/assets/model-small\n")
    lines = []

    def log(stage: str, step: int, metrics: dict) -> None:
        lines.append(json.dumps({"stage": stage, "step": step, "time": 1.7e9 + len(lines), **metrics}))

    def log_eval(label: str, step: int) -> None:
        if evals:
            report = _eval_report(EVAL_COUNTS[label])
            (run_dir / "eval" / f"{label}.json").write_text(json.dumps(report, indent=2))
            log(f"eval/{label}", step, {k: v for k, v in report["metrics"].items() if v is not None})

    log_eval("start", 0)
    for step in range(1, sft_steps + 1):
        log("sft", step, {"loss": 6.0 * math.exp(-step / 8) + 0.2 + rng.uniform(0, 0.05), "lr": 1e-3,
                          "grad_norm": 1.0, "tokens": 900, "step_s": 0.4, "epoch": 0})
    if sft_steps:
        log_eval("sft", sft_steps)
    for step in range(1, rl_steps + 1):
        if step == 7:
            log("event", step, {**EVENT, "time": 1.7e9})
        log("rl", step, _rl_record(step, rng))
    if rl_steps:
        log_eval("rl", rl_steps)
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return run_dir


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return _write_run(tmp_path / "runs" / "synthetic")


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> tuple[Path, str]:
    """One report shared by the tests that only read it (rendering five plots takes a second)."""
    run = _write_run(tmp_path_factory.mktemp("runs") / "synthetic")
    return run, write_report(run).read_text()


def _rl_records(run_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["stage"] == "rl"]


def test_every_plot_is_a_readable_png(reported):
    run_dir, text = reported
    assert (run_dir / "report" / "report.md").is_file()
    for name in PLOT_FILES.values():
        with Image.open(run_dir / "report" / name) as image:
            assert image.format == "PNG"
            width, height = image.size
        assert 600 <= width <= 2000 and 350 <= height <= 1000, (name, image.size)
        assert f"]({name})" in text  # linked from report.md


def test_eval_table_has_the_written_values_in_eval_order(reported):
    _, text = reported
    assert "# Run report: synthetic" in text and "grpo" in text
    assert "| metric | start | sft | rl |" in text
    for metric in ("over_refusal_rate", "unsafe_compliance_rate", "jailbreak_success_rate", "format_rate"):
        counts = [EVAL_COUNTS[label][metric] for label in ("start", "sft", "rl")]
        cells = []
        for j, (h, n) in enumerate(counts):
            low, high = wilson_interval(h, n)
            cells.append(f"{h / n:.2f} ({h}/{n}) [{low:.2f}, {high:.2f}]"
                         + (f" {h / n - counts[j - 1][0] / counts[j - 1][1]:+.2f}" if j else ""))
        assert f"| {metric} | " + " | ".join(cells) + " |" in text
    # these reports carry no per-row hits: the changes are shown but not tested, and the legend says so
    assert "untested (a report without per-row verdicts): start -> sft, sft -> rl" in text
    assert "knowledge_accuracy" not in text  # None everywhere: no row rather than a row of dashes


def test_stages_reward_and_timing_shares(reported):
    run_dir, text = reported
    assert f"| sft | {SFT_STEPS} | {SFT_STEPS} |" in text and f"| rl | {RL_STEPS} | {RL_STEPS} |" in text
    rl = _rl_records(run_dir)
    totals = {p: sum(r[f"time/{p}"] for r in rl) for p in ("rollout", "reward", "train", "sync")}
    for phase, total in totals.items():
        share = 100 * total / sum(totals.values())
        assert f"| {phase} | {total:.1f} | {total / RL_STEPS:.3f} | {share:.1f}% |" in text
    k = RL_STEPS // 10
    first, last = (sum(r["reward/mean"] for r in part) / k for part in (rl[:k], rl[-k:]))
    assert f"| reward/mean | {first:.3f} | {last:.3f} | {rl[-1]['reward/mean']:.3f} |" in text
    assert "reward/failed" not in text and "reward/flat_group_frac" not in text  # diagnostics, not objectives
    assert "| reward_task/safety |" in text


def test_wall_clock_and_async_overlap(reported, tmp_path):
    run_dir, text = reported
    wall = sum(r["time/step"] for r in _rl_records(run_dir))
    assert f"Wall clock: {wall:.1f} s over {RL_STEPS} steps" in text and "overlap" not in text
    run = _write_run(tmp_path / "async", sft_steps=0, evals=False)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in records:  # rollouts of the next step run during training: wall clock < summed stages
        if r["stage"] == "rl":
            r["time/step"] = r["time/train"] + r["time/sync"] + 0.5
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    rl = [r for r in records if r["stage"] == "rl"]
    summed = sum(r[f"time/{p}"] for r in rl for p in ("rollout", "reward", "train", "sync"))
    percent = 100 * summed / sum(r["time/step"] for r in rl)
    assert f"The stages add up to {percent:.0f}% of it: they overlap" in write_report(run).read_text()


def test_events_are_listed(reported):
    _, text = reported
    assert "- step 7: rollout actor 1 restarted (version=6, rows_retried=4, recovery_s=3.5)" in text


def test_missing_data_skips_plots_and_says_so(tmp_path):
    run = _write_run(tmp_path / "sft-only", rl_steps=0, evals=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / PLOT_FILES["rewards"]).write_bytes(b"stale")  # from an earlier report of another run
    md = write_report(run, out)
    text = md.read_text()
    assert (out / PLOT_FILES["sft_loss"]).is_file()
    for key in ("rewards", "safety", "capability", "timings"):
        assert not (out / PLOT_FILES[key]).exists()
        assert f"Plot skipped (`{PLOT_FILES[key]}`)" in text
    assert "No evaluation in this run" in text


def test_long_run_and_appended_rerun(tmp_path):
    run = _write_run(tmp_path / "r", sft_steps=0, rl_steps=120)
    first = (run / "metrics.jsonl").read_text()
    rerun = _write_run(tmp_path / "again", sft_steps=0, rl_steps=5)
    (run / "metrics.jsonl").write_text(first + (rerun / "metrics.jsonl").read_text())
    text = write_report(run).read_text()
    assert "holds 2 runs" in text and "| rl | 5 | 5 |" in text
    assert (run / "report" / PLOT_FILES["timings"]).is_file()
    assert not (run / "report" / PLOT_FILES["sft_loss"]).exists()


def test_malformed_line_names_file_and_line(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    lines[2] = lines[2][:25]  # a record cut off mid-write
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"metrics\.jsonl:3: not valid JSON"):
        write_report(run_dir)
    (run_dir / "metrics.jsonl").write_text('{"stage": "rl", "step": 1}\n["not", "an", "object"]\n')
    with pytest.raises(ReportError, match=r"metrics\.jsonl:2: expected a JSON object"):
        write_report(run_dir)


def test_missing_run_dir_or_metrics_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        write_report(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty/metrics\.jsonl"):
        write_report(tmp_path / "empty")


def test_metric_names_follow_cosmo_eval():
    from cosmo.evaluation.heldout import METRICS

    assert set(EVAL_METRICS) == {*METRICS, "format_rate"}


def test_cli_report_prints_paths_and_bad_input_is_one_line(run_dir, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["-q", "report", str(run_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == str(out / "report.md")
    assert [line.strip() for line in printed[1:]] == [str(out / name) for name in PLOT_FILES.values()]

    (run_dir / "metrics.jsonl").write_text('{"stage": "rl", "step": 1}\n{oops\n')
    assert main(["report", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert "metrics.jsonl:2" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1

    assert main(["report", str(tmp_path / "missing")]) == 1
    assert "missing" in capsys.readouterr().err


def test_report_has_help():
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--help"])
    assert exit_.value.code == 0


def test_eval_table_stars_a_change_beyond_noise_from_per_row_hits(tmp_path):
    """Two eval reports of the same 20 rows: 14 refused, then 5; 10 rows refused only before and 1 only
    after, so the exact McNemar p = 2 (C(11,0) + C(11,1)) / 2^11 = 0.0117 < 0.05: starred. Rows 0-9 have a
    phrase seen in training, 10-19 one never seen: seen 10 -> 4 refused (6 rows refused only before, p = 2 / 2^6
    = 0.031, starred), unseen 4 -> 1 (4 only before, 1 only after: p = 2 (1 + 5) / 2^5 = 0.375, not starred)."""
    run_dir = tmp_path / "run"
    (run_dir / "eval").mkdir(parents=True)
    records = []
    for step, (label, refused) in enumerate((("sft", set(range(14))), ("rl", {0, 1, 2, 3, 14}))):
        hits = {f"o{i}": i in refused for i in range(20)}
        report = {"metrics": {"over_refusal_rate": len(refused) / 20},
                  "counts": {"over_refusal_rate": {"hits": len(refused), "rows": 20}},
                  "row_hits": {"over_refusal_rate": hits},
                  "row_groups": {f"o{i}": "text, unseen phrase" if i >= 10 else "text, seen phrase" for i in range(20)}}
        (run_dir / "eval" / f"{label}.json").write_text(json.dumps(report))
        records.append({"stage": f"eval/{label}", "step": step, "time": 1.7e9 + step, **report["metrics"]})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    text = write_report(run_dir).read_text()
    # Wilson intervals as in tests/test_eval.py: 14/20 -> [0.48, 0.85], 5/20 -> [0.11, 0.47]
    assert "| over_refusal_rate | 0.70 (14/20) [0.48, 0.85] | 0.25 (5/20) [0.11, 0.47] -0.45* |" in text
    assert "exact McNemar" in text and "untested" not in text
    # Wilson 10/10 -> [0.72, 1.00]; 4/10 -> [0.17, 0.69]; 1/10 -> [0.02, 0.40]
    assert ("| over_refusal_rate text, seen phrase | 1.00 (10/10) [0.72, 1.00] | 0.40 (4/10) [0.17, 0.69] -0.60* |"
            in text)
    assert ("| over_refusal_rate text, unseen phrase | 0.40 (4/10) [0.17, 0.69] | 0.10 (1/10) [0.02, 0.40] -0.30 |"
            in text)


@pytest.mark.parametrize("steps", [1, 5, 2000])
def test_step_axes_have_whole_number_ticks(steps):
    from matplotlib.figure import Figure

    from cosmo.report_plots import integer_steps

    ax = Figure().subplots()
    ax.plot(range(1, steps + 1), [0.5] * steps)
    integer_steps(ax)
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    if steps <= 5:  # one tick per step: a 1-step run shows "1", not 0.96, 0.98, ...
        assert ticks == list(range(1, steps + 1))


def test_one_step_run_reports_every_rate_with_its_count(tmp_path):
    run = _write_run(tmp_path / "runs" / "one", sft_steps=1, rl_steps=1)
    text = write_report(run).read_text()
    for label, counts in EVAL_COUNTS.items():
        for metric, count in counts.items():
            if count is not None:  # e.g. "0.90 (45/50)" in the start column
                assert f"{count[0] / count[1]:.2f} ({count[0]}/{count[1]})" in text, (label, metric)
    for name in PLOT_FILES.values():
        assert Image.open(run / "report" / name).size[0] > 0


@pytest.mark.parametrize("declared", [True, False])
def test_two_rl_stages_share_the_plots_and_each_has_its_reward_table(tmp_path, declared):
    """The paper's RL stage 1 and 2 as named stages: steps restart at 1 in each. config.yaml says which kind each
    stage is; without it a stage that logged reward/mean counts as RL."""
    from cosmo.report_plots import along_stages

    run = _write_run(tmp_path / "staged", rl_steps=RL_STEPS)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    half = RL_STEPS // 2
    for r in records:  # RL steps 1-12 become rl_general 1-12, steps 13-24 rl_mixed 1-12
        if r["stage"] == "rl":
            r["stage"], r["step"] = ("rl_general", r["step"]) if r["step"] <= half else ("rl_mixed", r["step"] - half)
        elif r["stage"] == "eval/rl":
            r["stage"] = "eval/rl_mixed"
    (run / "eval" / "rl.json").rename(run / "eval" / "rl_mixed.json")
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if declared:
        (run / "config.yaml").write_text("train:\n  stages: [sft, rl_general, rl_mixed]\n  stage_configs:\n"
                                         "    rl_general: {kind: rl}\n    rl_mixed: {kind: rl}\n")
    text = write_report(run).read_text()

    assert "| metric | start | sft | rl_mixed |" in text
    assert f"| rl_general | {half} | {half} |" in text and f"| rl_mixed | {half} | {half} |" in text
    for stage in ("rl_general", "rl_mixed"):  # 12 steps each: k = 1, the first and the last value
        values = [r["reward/mean"] for r in records if r["stage"] == stage]
        section = text.split(f"### {stage}\n", 1)[1]
        assert section.index(f"| reward/mean | {values[0]:.3f} | {values[-1]:.3f} | {values[-1]:.3f} |") < 500
    # the restart logged before RL step 7 is in rl_general; the same step number of rl_mixed is another step
    assert "- rl_general step 7: rollout actor 1 restarted" in text
    wall = sum(r["time/step"] for r in records if r["stage"].startswith("rl_"))
    assert f"Wall clock: {wall:.1f} s over {RL_STEPS} steps" in text
    for key in ("rewards", "timings", "sft_loss"):
        assert (run / "report" / PLOT_FILES[key]).is_file()
    moved, starts = along_stages([r for r in records if r["stage"].startswith("rl_")])
    assert [r["step"] for r in moved] == list(range(1, RL_STEPS + 1))
    assert starts == [(1, "rl_general"), (half + 1, "rl_mixed")]
