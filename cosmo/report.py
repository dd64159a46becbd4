"""`cosmo report RUN_DIR`: plots and a markdown summary of one run directory, offline.

Reads only what cosmo/driver/tracking.py and the driver write (metrics.jsonl, eval/<label>.json, config.yaml),
so a finished, crashed or still-running run can be inspected without wandb. A plot whose data the run
lacks is skipped and named in report.md instead of failing the whole report.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from cosmo.evaltable import metric_cells, table_legend

SAFETY = ("unsafe_compliance_rate", "over_refusal_rate", "jailbreak_success_rate")
CAPABILITY = ("reasoning_accuracy", "knowledge_accuracy", "instruction_accuracy")
EVAL_METRICS = (*SAFETY, *CAPABILITY, "format_rate")
PHASES = ("rollout", "reward", "train", "sync")  # time/<phase> of one RL step, in loop order
NOT_OBJECTIVES = {"mean", "failed", "flat_group_frac"}  # reward/* keys that are not objective scores
PLOT_FILES = {
    "rewards": "rewards.png",
    "safety": "eval_safety.png",
    "capability": "eval_capability.png",
    "timings": "timings.png",
    "sft_loss": "sft_loss.png",
}
DPI = 100


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
            metrics = {k: r[k] for k in EVAL_METRICS if _number(r.get(k)) is not None}
            evals[r["stage"][len("eval/"):]] = {"step": r["step"], "metrics": metrics, "counts": {}}
    eval_dir = run_dir / "eval"
    files = sorted(eval_dir.glob("*.json"), key=lambda p: p.stat().st_mtime) if eval_dir.is_dir() else []
    for path in files:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ReportError(f"{path}: not valid JSON ({exc.msg})") from None
        if not isinstance(report, dict) or not isinstance(report.get("metrics"), dict):
            raise ReportError(f"{path}: expected an eval report with a 'metrics' object (see cosmo/eval.py)")
        entry = evals.setdefault(path.stem, {"step": None, "metrics": {}, "counts": {}})
        entry["metrics"].update({k: v for k, v in report["metrics"].items() if _number(v) is not None})
        entry["counts"] = report.get("counts") or {}
        entry["row_hits"] = report.get("row_hits") or {}
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

    rl = [r for r in records if r["stage"] == "rl"]
    sft = [r for r in records if r["stage"] == "sft"]
    made = {
        "rewards": _plot_rewards(rl, out_dir / PLOT_FILES["rewards"]),
        "safety": _plot_evals(evals, SAFETY, "Safety and over-refusal on the eval split (lower is better)",
                              out_dir / PLOT_FILES["safety"]),
        "capability": _plot_evals(evals, CAPABILITY, "Capability on the eval split (higher is better)",
                                  out_dir / PLOT_FILES["capability"]),
        "timings": _plot_timings(rl, out_dir / PLOT_FILES["timings"]),
        "sft_loss": _plot_sft_loss(sft, out_dir / PLOT_FILES["sft_loss"]),
    }
    text = _markdown(run_dir, config, records, attempts, evals, made)
    path = out_dir / "report.md"
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- data helpers


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _keys(records: list[dict[str, Any]], prefix: str) -> list[str]:
    """Numeric keys with this prefix, in order of first appearance."""
    keys: dict[str, None] = {}
    for r in records:
        for k, v in r.items():
            if k.startswith(prefix) and _number(v) is not None:
                keys.setdefault(k)
    return list(keys)


def _has(records: list[dict[str, Any]], key: str) -> bool:
    return any(_number(r.get(key)) is not None for r in records)


def _objectives(rl: list[dict[str, Any]]) -> list[str]:
    # reward/<task>/<objective> breakdowns belong to the per-task view, not the objective curves
    return [k for k in _keys(rl, "reward/") if k.split("/", 1)[1] not in NOT_OBJECTIVES and k.count("/") == 1]


def _series(records: list[dict[str, Any]], key: str):
    """(steps, values) as float arrays, NaN where a record lacks the key."""
    import numpy as np  # noqa: PLC0415

    steps = np.array([r["step"] for r in records], dtype=float)
    values = np.array([_number(r.get(key)) if _number(r.get(key)) is not None else np.nan for r in records])
    return steps, values


def _smooth(values, window: int):
    """Centred moving average that ignores NaN and shrinks at the edges (so the ends are not biased to 0)."""
    import numpy as np  # noqa: PLC0415

    if window <= 1 or len(values) < 3:
        return values
    ok = ~np.isnan(values)
    kernel = np.ones(window)
    total = np.convolve(np.where(ok, values, 0.0), kernel, mode="same")
    count = np.convolve(ok.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, total / count, np.nan)


def _window(n: int) -> int:
    """Moving-average width: about an eighth of the curve, at most 25 steps."""
    return max(1, min(25, n // 8))


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _read_config(path: Path) -> dict[str, Any]:
    """The resolved config, for the header only: an unreadable one is not worth failing the report."""
    if not path.is_file():
        return {}
    import yaml  # noqa: PLC0415

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return {}
    return config if isinstance(config, dict) else {}


# ---------------------------------------------------------------- plots


def _figure(width: float, height: float, rows: int = 1, cols: int = 1, **kw):
    """A figure without pyplot: no GUI backend, no global state shared with the caller."""
    from matplotlib.figure import Figure  # noqa: PLC0415

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False, **kw)


def _legend_outside(ax) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)


def _curves(ax, records: list[dict[str, Any]], keys: list[str], strip: str) -> None:
    """Raw points faint, smoothed curve solid, one colour per key; reward/mean drawn in black."""
    import numpy as np  # noqa: PLC0415

    window = _window(len(records))
    for i, key in enumerate(keys):
        steps, values = _series(records, key)
        present = ~np.isnan(values)  # a task missing from a step's batch must not break its line
        steps, values = steps[present], values[present]
        color = "black" if key == "reward/mean" else f"C{i % 10}"
        width = 2.2 if key == "reward/mean" else 1.4
        ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8, marker="." if len(steps) <= 100 else None,
                markersize=3)
        ax.plot(steps, _smooth(values, window), color=color, linewidth=width, label=key.removeprefix(strip),
                zorder=3 if key == "reward/mean" else 2)
    ax.set_xlabel("RL step")
    ax.grid(alpha=0.3)
    _legend_outside(ax)


def _plot_rewards(rl: list[dict[str, Any]], path: Path) -> bool:
    objectives = _objectives(rl)
    main = (["reward/mean"] if _has(rl, "reward/mean") else []) + objectives
    tasks = _keys(rl, "reward_task/")
    if not main and not tasks:
        return False
    panels = [p for p in ((main, "reward/", "RL reward: mean and per objective"),
                          (tasks, "reward_task/", "RL reward per task")) if p[0]]
    fig, axes = _figure(7.0 * len(panels), 4.6, 1, len(panels))
    for ax, (keys, strip, title) in zip(axes[0], panels, strict=True):
        _curves(ax, rl, keys, strip)
        ax.set_title(title)
        ax.set_ylabel("reward (batch mean)")
    if _window(len(rl)) > 1:
        fig.suptitle(f"faint: per step, solid: moving average over {_window(len(rl))} steps", fontsize="small")
    fig.savefig(path)
    return True


def _plot_evals(evals: dict[str, dict[str, Any]], metrics: tuple[str, ...], title: str, path: Path) -> bool:
    import numpy as np  # noqa: PLC0415

    labels = list(evals)
    rows = {m: [evals[label]["metrics"].get(m) for label in labels] for m in metrics}
    rows = {m: v for m, v in rows.items() if any(x is not None for x in v)}
    if not rows:
        return False
    fig, axes = _figure(max(7.0, 1.0 + 0.8 * len(labels)), 4.2)
    ax = axes[0][0]
    x = np.arange(len(labels))
    for i, (metric, values) in enumerate(rows.items()):
        y = np.array([np.nan if v is None else v for v in values], dtype=float)
        # shrinking markers of different shapes keep points visible where two metrics coincide
        ax.plot(x, y, marker="os^"[i % 3], markersize=10 - 2.5 * i, linewidth=1.8, color=f"C{i}", label=metric)
    many = len(labels) > 6
    ticks = [label if many or not evals[label]["step"] else f"{label}\nafter {evals[label]['step']} steps"
             for label in labels]
    ax.set_xticks(x, ticks, rotation=30 if many else 0, ha="right" if many else "center")
    ax.set_xlim(-0.4, len(labels) - 0.6)
    ax.set_ylim(-0.04, 1.04)
    ax.set_xlabel("eval point (in order of evaluation)")
    ax.set_ylabel("rate on eval rows")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    fig.savefig(path)
    return True


def _plot_timings(rl: list[dict[str, Any]], path: Path) -> bool:
    import numpy as np  # noqa: PLC0415

    phases = [p for p in PHASES if _has(rl, f"time/{p}")]
    if not phases:
        return False
    shares = _timing_shares(rl)
    steps = np.array([r["step"] for r in rl], dtype=float)
    stack = [np.nan_to_num(_series(rl, f"time/{p}")[1]) for p in phases]
    labels = [f"{p} ({shares[p][2]:.1f}%)" for p in phases]
    fig, axes = _figure(10.0, 4.4)
    ax = axes[0][0]
    if len(steps) <= 80:
        bottom = np.zeros(len(steps))
        for i, (values, label) in enumerate(zip(stack, labels, strict=True)):
            ax.bar(steps, values, bottom=bottom, width=0.85, color=f"C{i}", label=label)
            bottom += values
    else:
        ax.stackplot(steps, *stack, labels=labels, colors=[f"C{i}" for i in range(len(stack))])
    if _has(rl, "time/step"):  # below the stack's top where stages overlap (rl.mode=async)
        ax.plot(*_series(rl, "time/step"), color="black", linewidth=1.2, marker="." if len(steps) <= 80 else None,
                label="wall clock (time/step)")
    ax.set_xlabel("RL step")
    ax.set_ylabel("seconds")
    ax.set_title("Time per RL step by stage (share of the summed stages in the legend)")
    ax.grid(alpha=0.3, axis="y")
    handles, names = ax.get_legend_handles_labels()  # top of the stack first, as drawn
    ax.legend(handles[::-1], names[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small",
              frameon=False)
    fig.savefig(path)
    return True


def _plot_sft_loss(sft: list[dict[str, Any]], path: Path) -> bool:
    import numpy as np  # noqa: PLC0415

    if not _has(sft, "loss"):
        return False
    has_lr = _has(sft, "lr")
    fig, axes = _figure(9.0, 5.2 if has_lr else 4.2, 2 if has_lr else 1, 1, sharex=True,
                        gridspec_kw={"height_ratios": [3, 1]} if has_lr else None)
    ax = axes[0][0]
    steps, loss = _series(sft, "loss")
    window = _window(len(sft))
    ax.plot(steps, loss, color="C0", alpha=0.3, linewidth=0.8, label="per step")
    ax.plot(steps, _smooth(loss, window), color="C0", linewidth=2.0, label=f"moving average ({window} steps)")
    finite = loss[~np.isnan(loss)]
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 10:
        from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: PLC0415

        ax.set_yscale("log")  # plain numbers at 1-2-5 steps: a 10^k-only axis is hard to read off
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylabel("loss")
    ax.set_title("SFT loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper right", fontsize="small")
    if has_lr:
        lr_ax = axes[1][0]
        lr_ax.plot(*_series(sft, "lr"), color="C1", linewidth=1.4)
        lr_ax.set_ylabel("learning rate")
        lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        lr_ax.grid(alpha=0.3)
    axes[-1][0].set_xlabel("SFT step")
    fig.savefig(path)
    return True


# ---------------------------------------------------------------- markdown


def _timing_shares(rl: list[dict[str, Any]]) -> dict[str, tuple[float, float, float]]:
    """phase -> (total s, mean s per step, % of the summed phases); time/step is their sum in the driver."""
    totals = {}
    for p in PHASES:
        values = [v for r in rl if (v := _number(r.get(f"time/{p}"))) is not None]
        if values:
            totals[p] = (sum(values), sum(values) / len(values))
    grand = sum(t for t, _ in totals.values())
    return {p: (t, m, 100.0 * t / grand if grand else 0.0) for p, (t, m) in totals.items()}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _skipped(name: str, why: str) -> str:
    return f"*Plot skipped (`{PLOT_FILES[name]}`): {why}.*"


def _image(name: str, alt: str) -> str:
    return f"![{alt}]({PLOT_FILES[name]})"


def _markdown(run_dir: Path, config: dict[str, Any], records: list[dict[str, Any]], attempts: int,
              evals: dict[str, dict[str, Any]], made: dict[str, bool]) -> str:
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
        rows = [[metric, *("–" if c == "-" else c for c in cells)]
                for metric, cells in metric_cells(evals, EVAL_METRICS)]
        lines += _table(["metric", *evals], rows) + [""] + table_legend(evals)
    else:
        lines.append("No evaluation in this run (no eval/* records or eval/<label>.json files).")
    for key, alt in (("safety", "Safety and over-refusal"), ("capability", "Capability")):
        lines += ["", _image(key, alt) if made[key] else _skipped(key, "no eval point has these metrics")]

    rl = [r for r in records if r["stage"] == "rl"]
    lines += ["", "## RL reward", ""]
    keys = (["reward/mean"] if _has(rl, "reward/mean") else []) + _objectives(rl) + _keys(rl, "reward_task/")
    if keys:
        k = max(1, len(rl) // 10)
        rows = []
        for key in keys:
            values = [v for r in rl if (v := _number(r.get(key))) is not None]
            rows.append([key, _fmt(_mean(values[:k])), _fmt(_mean(values[-k:])), _fmt(values[-1] if values else None)])
        lines += [f"Batch-mean rewards: mean of the first and of the last {k} logged values of each curve "
                  "(a tenth of the RL steps), and its last value:", ""]
        lines += _table(["reward", f"first {k}", f"last {k}", "last value"], rows) + [""]
    lines += [_image("rewards", "RL reward") if made["rewards"]
              else _skipped("rewards", "no `rl` records with `reward/*` metrics")]

    lines += ["", "## Time per RL step", ""]
    shares = _timing_shares(rl)
    if shares:
        lines += _table(["stage", "total s", "mean s/step", "share"],
                        [[p, f"{t:.1f}", f"{m:.3f}", f"{s:.1f}%"] for p, (t, m, s) in shares.items()])
        walls = [v for r in rl if (v := _number(r.get("time/step"))) is not None]
        if walls:
            wall, summed = sum(walls), sum(t for t, _, _ in shares.values())
            lines += ["", f"Wall clock: {wall:.1f} s over {len(walls)} steps ({wall / len(walls):.3f} s/step)."]
            if summed > 1.05 * wall:
                lines[-1] += (f" The stages add up to {100 * summed / wall:.0f}% of it: they overlap "
                              "(rl.mode=async samples the next batch while the learner trains).")
        lines.append("")
    lines.append(_image("timings", "Time per RL step") if made["timings"]
                 else _skipped("timings", "no `rl` records with `time/*` metrics"))

    sft = [r for r in records if r["stage"] == "sft"]
    lines += ["", "## SFT loss", ""]
    losses = [v for r in sft if (v := _number(r.get("loss"))) is not None]
    if losses:
        k = max(1, len(losses) // 10)
        lines += [f"Loss: first step {losses[0]:.4f}, last step {losses[-1]:.4f} "
                  f"(mean of the last {k}: {_mean(losses[-k:]):.4f}).", ""]
    lines.append(_image("sft_loss", "SFT loss") if made["sft_loss"]
                 else _skipped("sft_loss", "no `sft` records with a loss"))

    lines += ["", "## Events", ""]
    events = [r for r in records if r["stage"] == "event"]
    for r in events:
        detail = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("stage", "step", "time", "event"))
        lines.append(f"- step {r['step']}: {r.get('event', 'event')}" + (f" ({detail})" if detail else ""))
    if not events:
        lines.append("None logged (no actor restarts or reward worker replacements).")
    return "\n".join(lines) + "\n"
