"""The PNG plots of `cosmo report` (matplotlib, no pyplot): readable for a 1-step run and for thousands of steps.

Steps are integers on every axis; short runs draw every point with a marker (a single step is a visible dot,
not an invisible line); series that coincide are told apart by marker shape and a small sideways offset;
every eval rate carries its k/n count. Several stages of a kind (the paper's RL stage 1 and 2) share one
step axis in run order, with a dashed line and the stage's name where each begins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

PHASES = ("rollout", "reward", "train", "sync")  # time/<phase> of one RL step, in loop order
NOT_OBJECTIVES = {"mean", "failed", "flat_group_frac"}  # reward/* keys that are not objective scores
DPI = 100
MARKERS = "osD^vPX*"  # one shape per series: coinciding series stay distinguishable
LINESTYLES = ("-", "--", "-.", ":")  # long runs: no markers, so coinciding curves differ by dash pattern
FEW_STEPS = 30  # up to this many points a curve draws each one as a marker
ANNOTATED_EVALS = 12  # up to this many eval points each rate carries its k/n beside it
COUNT_OFFSETS = ((6, 4), (-6, -11), (6, -11), (-6, 4))  # points: series i's count goes to a different corner


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def numeric_keys(records: list[dict[str, Any]], prefix: str) -> list[str]:
    """Numeric keys with this prefix, in order of first appearance."""
    keys: dict[str, None] = {}
    for r in records:
        for k, v in r.items():
            if k.startswith(prefix) and number(v) is not None:
                keys.setdefault(k)
    return list(keys)


def has_metric(records: list[dict[str, Any]], key: str) -> bool:
    return any(number(r.get(key)) is not None for r in records)


def objective_keys(rl: list[dict[str, Any]]) -> list[str]:
    # reward/<task>/<objective> breakdowns belong to the per-task view, not the objective curves
    return [k for k in numeric_keys(rl, "reward/") if k.split("/", 1)[1] not in NOT_OBJECTIVES and k.count("/") == 1]


def _series(records: list[dict[str, Any]], key: str):
    """(steps, values) as float arrays, NaN where a record lacks the key."""
    steps = np.array([r["step"] for r in records], dtype=float)
    values = np.array([number(r.get(key)) if number(r.get(key)) is not None else np.nan for r in records])
    return steps, values


def _smooth(values, window: int):
    """Centred moving average that ignores NaN and shrinks at the edges (so the ends are not biased to 0)."""
    if window <= 1 or len(values) < 3:
        return values
    ok = ~np.isnan(values)
    kernel = np.ones(window)
    total = np.convolve(np.where(ok, values, 0.0), kernel, mode="same")
    count = np.convolve(ok.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, total / count, np.nan)


def _smooth_stages(steps, values, window: int, stages: Sequence[tuple[int, str]]):
    """`_smooth` within each stage: a stage's curve does not average in its neighbour's steps."""
    cuts = np.searchsorted(steps, [x for x, _ in stages[1:]])
    return np.concatenate([_smooth(part, window) for part in np.split(values, cuts)])


def along_stages(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """Several stages' records on one step axis: each stage's steps (which restart at 1) continue after the
    previous stage's last step, in run order. Returns the records (copies with `step` moved) and where each
    stage starts on that axis, with its name; a single stage's records come back as they are, unmarked."""
    names = list(dict.fromkeys(r["stage"] for r in records))
    if len(names) < 2:
        return records, []
    moved: list[dict[str, Any]] = []
    starts: list[tuple[int, str]] = []
    for name in names:
        part = [r for r in records if r["stage"] == name]
        offset = moved[-1]["step"] if moved else 0
        starts.append((offset + part[0]["step"], name))
        moved += [{**r, "step": offset + r["step"]} for r in part]
    return moved, starts


def _mark_stages(ax, stages: Sequence[tuple[int, str]]) -> None:
    """A dashed line before each stage after the first, and each stage's name at the top of its part."""
    for i, (x, name) in enumerate(stages):
        if i:
            ax.axvline(x - 0.5, color="grey", linestyle="--", linewidth=1.0)
        ax.text(x - 0.5, 0.99, f" {name}", transform=ax.get_xaxis_transform(), ha="left", va="top",
                fontsize="small", color="dimgrey", zorder=5,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})


def _step_label(kind: str, stages: Sequence[tuple[int, str]]) -> str:
    return f"{kind} step" + (f" (the {kind} stages in run order)" if stages else "")


def _window(n: int) -> int:
    """Moving-average width: about an eighth of the curve, at most 25 steps."""
    return max(1, min(25, n // 8))


def timing_shares(rl: list[dict[str, Any]]) -> dict[str, tuple[float, float, float]]:
    """phase -> (total s, mean s per step, % of the summed phases); time/step is their sum in the driver."""
    totals = {}
    for p in PHASES:
        values = [v for r in rl if (v := number(r.get(f"time/{p}"))) is not None]
        if values:
            totals[p] = (sum(values), sum(values) / len(values))
    grand = sum(t for t, _ in totals.values())
    return {p: (t, m, 100.0 * t / grand if grand else 0.0) for p, (t, m) in totals.items()}


# ---------------------------------------------------------------- plots


def _figure(width: float, height: float, rows: int = 1, cols: int = 1, **kw):
    """A figure without pyplot: no GUI backend, no global state shared with the caller."""
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib: only when plotting

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False, **kw)


def _legend_outside(ax) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)


def integer_steps(ax) -> None:
    """Steps are counts: ticks at whole numbers only. A run of a few steps gets one tick per step and half a
    step of margin (matplotlib would put 0.96, 0.98, ... around a single step)."""
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415 - matplotlib: only when plotting

    first, last = ax.dataLim.intervalx
    if math.isfinite(first) and last - first < 10:
        ax.set_xlim(first - 0.5, last + 0.5)
        ax.set_xticks(range(math.ceil(first), math.floor(last) + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _curves(ax, records: list[dict[str, Any]], keys: list[str], strip: str, stages: Sequence[tuple[int, str]]) -> None:
    """Raw points faint, smoothed curve solid, one colour and marker shape per key; reward/mean drawn in black.

    Up to FEW_STEPS steps every point is a marker on the solid line (one step is a dot, not an invisible
    line of length 0) and the faint raw line is left out (with no smoothing it is the same line)."""
    window = _window(len(records))
    few = len(records) <= FEW_STEPS
    for i, key in enumerate(keys):
        steps, values = _series(records, key)
        present = ~np.isnan(values)  # a task missing from a step's batch must not break its line
        steps, values = steps[present], values[present]
        color = "black" if key == "reward/mean" else f"C{i % 10}"
        width = 2.2 if key == "reward/mean" else 1.4
        if window > 1:
            ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8, marker="." if len(steps) <= 100 else None,
                    markersize=3)
        ax.plot(steps, _smooth_stages(steps, values, window, stages), color=color, linewidth=width,
                label=key.removeprefix(strip),
                zorder=3 if key == "reward/mean" else 2, marker=MARKERS[i % len(MARKERS)] if few else None,
                linestyle="-" if few or key == "reward/mean" else LINESTYLES[i % len(LINESTYLES)],
                markersize=max(3.0, 8.0 - 1.2 * i), markerfacecolor="none" if i % 2 else color)
    ax.set_xlabel(_step_label("RL", stages))
    integer_steps(ax)
    _mark_stages(ax, stages)
    ax.grid(alpha=0.3)
    _legend_outside(ax)


def plot_rewards(rl: list[dict[str, Any]], path: Path, stages: Sequence[tuple[int, str]] = ()) -> bool:
    objectives = objective_keys(rl)
    main = (["reward/mean"] if has_metric(rl, "reward/mean") else []) + objectives
    tasks = numeric_keys(rl, "reward_task/")
    if not main and not tasks:
        return False
    panels = [p for p in ((main, "reward/", "RL reward: mean and per objective"),
                          (tasks, "reward_task/", "RL reward per task")) if p[0]]
    fig, axes = _figure(7.0 * len(panels), 4.6, 1, len(panels))
    for ax, (keys, strip, title) in zip(axes[0], panels, strict=True):
        _curves(ax, rl, keys, strip, stages)
        ax.set_title(title)
        ax.set_ylabel("reward (batch mean)")
    if _window(len(rl)) > 1:
        fig.suptitle(f"faint: per step, solid: moving average over {_window(len(rl))} steps", fontsize="small")
    fig.savefig(path)
    return True


def plot_evals(evals: dict[str, dict[str, Any]], metrics: tuple[str, ...], title: str, path: Path) -> bool:
    labels = list(evals)
    rows = {m: [evals[label]["metrics"].get(m) for label in labels] for m in metrics}
    rows = {m: v for m, v in rows.items() if any(x is not None for x in v)}
    if not rows:
        return False
    fig, axes = _figure(max(7.0, 1.0 + 0.8 * len(labels)), 4.2)
    ax = axes[0][0]
    x = np.arange(len(labels))
    spread = 0.06 * min(len(labels), 4)  # sideways offsets: series at the same rate stay side by side
    for i, (metric, values) in enumerate(rows.items()):
        y = np.array([np.nan if v is None else v for v in values], dtype=float)
        xs = x + spread * (i - (len(rows) - 1) / 2) / max(1, len(rows) - 1)
        ax.plot(xs, y, marker=MARKERS[i % len(MARKERS)], markersize=8, linewidth=1.8, color=f"C{i}", label=metric,
                markerfacecolor="none" if i % 2 else f"C{i}")
        if len(labels) <= ANNOTATED_EVALS:  # 1/1 and 50/50 both read 1.0: the count says which
            for xi, yi, label in zip(xs, y, labels, strict=True):
                count = evals[label]["counts"].get(metric)
                if not math.isnan(yi) and isinstance(count, dict) and {"hits", "rows"} <= count.keys():
                    dx, dy = COUNT_OFFSETS[i % len(COUNT_OFFSETS)]
                    ax.annotate(f"{count['hits']}/{count['rows']}", (xi, yi), xytext=(dx, dy), fontsize=7,
                                textcoords="offset points", color=f"C{i}", ha="left" if dx > 0 else "right")
    many = len(labels) > 6
    steps = {label: evals[label]["step"] for label in labels}
    ticks = [label if many or not steps[label] else f"{label}\nafter {steps[label]} step{'s' * (steps[label] != 1)}"
             for label in labels]
    ax.set_xticks(x, ticks, rotation=30 if many else 0, ha="right" if many else "center")
    ax.set_xlim(-0.5, len(labels) - 0.3)
    ax.set_ylim(-0.04, 1.04)
    ax.set_xlabel("eval point (in order of evaluation)")
    ax.set_ylabel("rate on eval rows")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    fig.savefig(path)
    return True


def plot_timings(rl: list[dict[str, Any]], path: Path, stages: Sequence[tuple[int, str]] = ()) -> bool:
    phases = [p for p in PHASES if has_metric(rl, f"time/{p}")]
    if not phases:
        return False
    shares = timing_shares(rl)
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
    if has_metric(rl, "time/step"):  # below the stack's top where stages overlap (rl.mode=async)
        ax.plot(*_series(rl, "time/step"), color="black", linewidth=1.2, marker="." if len(steps) <= 80 else None,
                label="wall clock (time/step)")
    ax.set_xlabel(_step_label("RL", stages))
    integer_steps(ax)
    _mark_stages(ax, stages)
    ax.set_ylabel("seconds")
    ax.set_title("Time per RL step by stage (share of the summed stages in the legend)")
    ax.grid(alpha=0.3, axis="y")
    handles, names = ax.get_legend_handles_labels()  # top of the stack first, as drawn
    ax.legend(handles[::-1], names[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small",
              frameon=False)
    fig.savefig(path)
    return True


def plot_sft_loss(sft: list[dict[str, Any]], path: Path, stages: Sequence[tuple[int, str]] = ()) -> bool:
    if not has_metric(sft, "loss"):
        return False
    has_lr = has_metric(sft, "lr")
    fig, axes = _figure(9.0, 5.2 if has_lr else 4.2, 2 if has_lr else 1, 1, sharex=True,
                        gridspec_kw={"height_ratios": [3, 1]} if has_lr else None)
    ax = axes[0][0]
    steps, loss = _series(sft, "loss")
    window = _window(len(sft))
    ax.plot(steps, loss, color="C0", alpha=0.3, linewidth=0.8, label="per step",
            marker="o" if len(sft) <= FEW_STEPS else None, markersize=4)
    ax.plot(steps, _smooth_stages(steps, loss, window, stages), color="C0", linewidth=2.0,
            label=f"moving average ({window} steps)")
    finite = loss[~np.isnan(loss)]
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 10:
        from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: PLC0415 - matplotlib: only when plotting

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
    axes[-1][0].set_xlabel(_step_label("SFT", stages))
    integer_steps(axes[-1][0])
    _mark_stages(ax, stages)
    fig.savefig(path)
    return True
