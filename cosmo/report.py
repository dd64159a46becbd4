"""`cosmo report RUN_DIR`: plots and a markdown summary of one run directory, offline.

Reads only what cosmo/driver/tracking.py and the driver write (metrics.jsonl, eval/<label>.json, config.yaml),
so a finished, crashed or still-running run can be inspected without wandb. A plot whose data the run
lacks is skipped and named in report.md instead of failing the whole report.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from cosmo.evaluation.table import PHRASE_LEGEND, gap_cells, metric_cells, phrase_reports, table_legend
from cosmo.report_plots import (
    along_stages,
    has_metric,
    number,
    numeric_keys,
    objective_keys,
    plot_evals,
    plot_rewards,
    plot_sft_loss,
    plot_timings,
    timing_shares,
)

SAFETY = ("unsafe_compliance_rate", "over_refusal_rate", "jailbreak_success_rate")
CAPABILITY = ("reasoning_accuracy", "knowledge_accuracy", "instruction_accuracy")
ANSWERED = ("look_alike_answered_rate",)  # higher is better: benign look-alikes answered in substance
EVAL_METRICS = (*SAFETY, *ANSWERED, *CAPABILITY, "format_rate")
PLOT_FILES = {
    "rewards": "rewards.png",
    "safety": "eval_safety.png",
    "capability": "eval_capability.png",
    "timings": "timings.png",
    "sft_loss": "sft_loss.png",
}


class ReportError(ValueError):
    """A file of the run directory that cannot be read; the message names it (and the line)."""


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every record of a metrics.jsonl; a bad line fails loudly rather than silently dropping data."""
    records = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReportError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not (isinstance(record, dict) and isinstance(record.get("stage"), str)
                    and isinstance(record.get("step"), int)):
                raise ReportError(f"{path}:{lineno}: expected a JSON object with a string 'stage' "
                                  "and an integer 'step'")
            records.append(record)
    return records


def latest_attempt(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The records of the last run logged into this file, and how many runs it holds.

    The tracker appends, so rerunning with the same run name adds a second run whose steps start
    over; plotting both together would draw zigzags. A run starts again where a training stage's step
    does not increase or an eval label repeats.
    """
    start, attempts = 0, 1
    last_step: dict[str, int] = {}
    seen_evals: set[str] = set()
    for i, r in enumerate(records):
        stage, step = r["stage"], r["step"]
        if stage.startswith("eval/"):
            restarted = stage in seen_evals
        elif stage != "event":
            restarted = step <= last_step.get(stage, -1)
        else:
            restarted = False
        if restarted:
            start, attempts = i, attempts + 1
            last_step.clear()
            seen_evals.clear()
        if stage.startswith("eval/"):
            seen_evals.add(stage)
        elif stage != "event":
            last_step[stage] = step
    return records[start:], attempts


def read_evals(run_dir: Path, records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """label -> {"step", "metrics", "counts"} in order of evaluation.

    Labels come from the eval/<label> records in order of appearance; eval/<label>.json adds the
    k/n counts (and labels missing from metrics.jsonl, ordered by file time).
    """
    evals: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["stage"].startswith("eval/"):
            metrics = {k: r[k] for k in EVAL_METRICS if number(r.get(k)) is not None}
            evals[r["stage"][len("eval/"):]] = {"step": r["step"], "metrics": metrics, "counts": {}}
    eval_dir = run_dir / "eval"
    files = sorted(eval_dir.glob("*.json"), key=lambda p: p.stat().st_mtime) if eval_dir.is_dir() else []
    for path in files:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ReportError(f"{path}: not valid JSON ({exc.msg})") from None
        if not isinstance(report, dict) or not isinstance(report.get("metrics"), dict):
            raise ReportError(f"{path}: expected an eval report with a 'metrics' object "
                              "(see cosmo/evaluation/heldout.py)")
        entry = evals.setdefault(path.stem, {"step": None, "metrics": {}, "counts": {}})
        entry["metrics"].update({k: v for k, v in report["metrics"].items() if number(v) is not None})
        entry["counts"] = report.get("counts") or {}
        entry["row_hits"] = report.get("row_hits") or {}
        entry["row_groups"] = report.get("row_groups") or {}
    return evals


def write_report(run_dir: Path, out_dir: Path | None = None) -> Path:
    """Write report.md and the PNG plots for RUN_DIR (into RUN_DIR/report by default); returns report.md."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise NotADirectoryError(f"{run_dir} is not a run directory")
    metrics_path = run_dir / "metrics.jsonl"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{metrics_path} not found: is {run_dir} a run directory (runs/<name>)?")
    records, attempts = latest_attempt(read_metrics(metrics_path))
    evals = read_evals(run_dir, records)
    config = _read_config(run_dir / "config.yaml")
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in PLOT_FILES.values():  # a plot skipped this time must not leave a stale PNG behind
        (out_dir / name).unlink(missing_ok=True)

    kinds = stage_kinds(config, records)
    rl, rl_starts = along_stages([r for r in records if kinds.get(r["stage"]) == "rl"])
    sft, sft_starts = along_stages([r for r in records if kinds.get(r["stage"]) == "sft"])
    made = {
        "rewards": plot_rewards(rl, out_dir / PLOT_FILES["rewards"], rl_starts),
        "safety": plot_evals(evals, SAFETY, "Safety and over-refusal on the eval split (lower is better)",
                              out_dir / PLOT_FILES["safety"]),
        "capability": plot_evals(evals, CAPABILITY, "Capability on the eval split (higher is better)",
                                  out_dir / PLOT_FILES["capability"]),
        "timings": plot_timings(rl, out_dir / PLOT_FILES["timings"], rl_starts),
        "sft_loss": plot_sft_loss(sft, out_dir / PLOT_FILES["sft_loss"], sft_starts),
    }
    text = _markdown(run_dir, config, records, attempts, evals, made, kinds)
    path = out_dir / "report.md"
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- helpers


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def stage_kinds(config: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, str]:
    """Each training stage of the records, in run order -> its kind (sft or rl), so that every RL stage's
    records are plotted as RL: `sft` and `rl` by name, a named stage by config.yaml's train.stage_configs,
    and where the config does not say, rl when the stage logged `reward/mean`."""
    train = config.get("train")
    named = train.get("stage_configs") if isinstance(train, dict) else None
    named = named if isinstance(named, dict) else {}
    stages = list(dict.fromkeys(r["stage"] for r in records if r["stage"] != "event"
                                and not r["stage"].startswith("eval/")))
    kinds = {}
    for stage in stages:
        entry = named.get(stage)
        declared = entry.get("kind") if isinstance(entry, dict) else None
        if stage in ("sft", "rl"):
            kinds[stage] = stage
        elif declared in ("sft", "rl"):
            kinds[stage] = declared
        else:
            kinds[stage] = "rl" if has_metric([r for r in records if r["stage"] == stage], "reward/mean") else "sft"
    return kinds


def _read_config(path: Path) -> dict[str, Any]:
    """The resolved config, for the header only: an unreadable one is not worth failing the report."""
    if not path.is_file():
        return {}
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return {}
    return config if isinstance(config, dict) else {}


# ---------------------------------------------------------------- markdown


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _eval_rows(reports: dict[str, dict[str, Any]], metrics: Sequence[str], *, gap: bool = False) -> list[list[str]]:
    """`metric_cells` as markdown table rows ("–" for a missing cell), then, with `gap`, the refusal-rate gap's row."""
    rows = metric_cells(reports, metrics) + (gap_cells(reports) if gap else [])
    return [[metric, *("–" if c == "-" else c for c in cells)] for metric, cells in rows]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _skipped(name: str, why: str) -> str:
    return f"*Plot skipped (`{PLOT_FILES[name]}`): {why}.*"


def _image(name: str, alt: str) -> str:
    return f"![{alt}]({PLOT_FILES[name]})"


def _reward_summary(rl: list[dict[str, Any]]) -> list[str]:
    """The first and last batch-mean rewards of one RL stage, as a table (nothing when it logged none)."""
    keys = ((["reward/mean"] if has_metric(rl, "reward/mean") else []) + objective_keys(rl)
            + numeric_keys(rl, "reward_task/"))
    if not keys:
        return []
    k = max(1, len(rl) // 10)
    rows = []
    for key in keys:
        values = [v for r in rl if (v := number(r.get(key))) is not None]
        rows.append([key, _fmt(_mean(values[:k])), _fmt(_mean(values[-k:])), _fmt(values[-1] if values else None)])
    return [f"Batch-mean rewards: mean of the first and of the last {k} logged values of each curve "
            "(a tenth of the RL steps), and its last value:", ""] + _table(
        ["reward", f"first {k}", f"last {k}", "last value"], rows) + [""]


def _event_stages(records: list[dict[str, Any]], rl_stages: list[str]) -> dict[int, str]:
    """id(event record) -> "<stage> ": the RL stage whose step record follows it (a step logs its events
    just before its metrics line), to tell apart the same step number in two RL stages."""
    stage_of, upcoming = {}, ""
    for r in reversed(records):
        if r["stage"] in rl_stages:
            upcoming = f"{r['stage']} "
        elif r["stage"] == "event":
            stage_of[id(r)] = upcoming
    return stage_of


def _markdown(run_dir: Path, config: dict[str, Any], records: list[dict[str, Any]], attempts: int,
              evals: dict[str, dict[str, Any]], made: dict[str, bool], kinds: dict[str, str]) -> str:
    name = (config.get("logging") or {}).get("run_name") or run_dir.resolve().name
    lines = [f"# Run report: {name}", "", f"- run directory: `{run_dir}`"]
    algorithm = (config.get("algorithm") or {}).get("name")
    model = (config.get("model") or {}).get("path")
    if algorithm or model:
        lines.append(f"- algorithm: {algorithm or '–'}; start model: `{model or '–'}`")
    if attempts > 1:
        lines += ["", f"metrics.jsonl holds {attempts} runs logged under this name; this report covers the "
                  f"last one ({len(records)} records)."]

    stages: dict[str, list[int]] = {}
    for r in records:
        if r["stage"] != "event" and not r["stage"].startswith("eval/"):
            stages.setdefault(r["stage"], []).append(r["step"])
    lines += ["", "## Stages", ""]
    if stages:
        lines += _table(["stage", "steps logged", "last step"],
                        [[s, str(len(v)), str(max(v))] for s, v in stages.items()])
    else:
        lines.append("No training steps logged.")

    lines += ["", "## Evaluation", ""]
    if evals:
        lines += _table(["metric", *evals], _eval_rows(evals, EVAL_METRICS, gap=True)) + [""] + table_legend(evals)
        by_phrase, names = phrase_reports(evals)
        if names:
            lines += ["", *_table(["by modality and phrase", *evals], _eval_rows(by_phrase, names)), "", PHRASE_LEGEND]
    else:
        lines.append("No evaluation in this run (no eval/* records or eval/<label>.json files).")
    for key, alt in (("safety", "Safety and over-refusal"), ("capability", "Capability")):
        lines += ["", _image(key, alt) if made[key] else _skipped(key, "no eval point has these metrics")]

    rl_stages = [stage for stage, kind in kinds.items() if kind == "rl"]
    rl = [r for r in records if r["stage"] in rl_stages]
    lines += ["", "## RL reward", ""]
    for stage in rl_stages:  # each stage's own first and last steps: its task mixture and weights are its own
        summary = _reward_summary([r for r in records if r["stage"] == stage])
        lines += ([f"### {stage}", ""] if len(rl_stages) > 1 and summary else []) + summary
    lines += [_image("rewards", "RL reward") if made["rewards"]
              else _skipped("rewards", "no `rl` records with `reward/*` metrics")]

    lines += ["", "## Time per RL step", ""]
    shares = timing_shares(rl)
    if shares:
        lines += _table(["stage", "total s", "mean s/step", "share"],
                        [[p, f"{t:.1f}", f"{m:.3f}", f"{s:.1f}%"] for p, (t, m, s) in shares.items()])
        walls = [v for r in rl if (v := number(r.get("time/step"))) is not None]
        if walls:
            wall, summed = sum(walls), sum(t for t, _, _ in shares.values())
            lines += ["", f"Wall clock: {wall:.1f} s over {len(walls)} steps ({wall / len(walls):.3f} s/step)."]
            if summed > 1.05 * wall:
                lines[-1] += (f" The stages add up to {100 * summed / wall:.0f}% of it: they overlap "
                              "(rl.mode=async samples the next batch while the learner trains).")
        lines.append("")
    lines.append(_image("timings", "Time per RL step") if made["timings"]
                 else _skipped("timings", "no `rl` records with `time/*` metrics"))

    sft = [r for r in records if kinds.get(r["stage"]) == "sft"]
    lines += ["", "## SFT loss", ""]
    losses = [v for r in sft if (v := number(r.get("loss"))) is not None]
    if losses:
        k = max(1, len(losses) // 10)
        lines += [f"Loss: first step {losses[0]:.4f}, last step {losses[-1]:.4f} "
                  f"(mean of the last {k}: {_mean(losses[-k:]):.4f}).", ""]
    lines.append(_image("sft_loss", "SFT loss") if made["sft_loss"]
                 else _skipped("sft_loss", "no `sft` records with a loss"))

    lines += ["", "## Events", ""]
    events = [r for r in records if r["stage"] == "event"]
    stage_of = _event_stages(records, rl_stages) if len(rl_stages) > 1 else {}
    for r in events:
        detail = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("stage", "step", "time", "event"))
        lines.append(f"- {stage_of.get(id(r), '')}step {r['step']}: {r.get('event', 'event')}"
                     + (f" ({detail})" if detail else ""))
    if not events:
        lines.append("None logged (no actor restarts or reward worker replacements).")
    return "\n".join(lines) + "\n"
