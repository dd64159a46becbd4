"""The figures of bench/evidence.py and their markdown: means over seeds with a 95 % t-interval, and per seed
the counts and the exact McNemar test of the same rows (cosmo.evaluation.table, cosmo.stats).

Plain dicts in, plain dicts and strings out (no run, no Ray), so that the unit tests feed hand-written eval
reports. A report is an eval/<label>.json of a run (`cosmo.evaluation.heldout.summarize`): `metrics`, `counts`,
`row_hits`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

from results_doc import table
from scipy.stats import t as student_t

from cosmo.evaluation.table import SIGNIFICANCE, paired_metric_change
from cosmo.report import EVAL_METRICS, SAFETY
from cosmo.stats import wilson_interval

CONFIDENCE = 0.95


def t_interval(values: Sequence[float]) -> dict:
    """Mean of per-seed values with its two-sided 95 % Student t-interval over the seeds (n − 1 degrees of
    freedom); `low`/`high` are None with fewer than two seeds, where the spread is unknown."""
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "low": None, "high": None}
    mean = statistics.fmean(values)
    if n == 1:
        return {"n": 1, "mean": mean, "low": None, "high": None}
    half = float(student_t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * statistics.stdev(values) / math.sqrt(n)
    return {"n": n, "mean": mean, "low": mean - half, "high": mean + half}


def excludes_zero(agg: Mapping) -> bool | None:
    """Whether the interval lies wholly above or below 0 (None without an interval)."""
    if agg["low"] is None:
        return None
    return agg["low"] > 0 or agg["high"] < 0


def _count(report: Mapping, metric: str) -> list[int] | None:
    count = (report.get("counts") or {}).get(metric)
    return [count["hits"], count["rows"]] if count else None


def _wilson(count: list[int] | None) -> list[float] | None:
    return list(wilson_interval(*count)) if count else None


def paired_figures(pairs: Mapping[int, tuple[Mapping, Mapping]], metric: str) -> dict:
    """One metric over seeds, each seed a (before, after) pair of reports on the same rows: the mean before,
    after and of the change after − before with their t-intervals, and per seed the counts (with their 95 %
    Wilson intervals), the change and the exact McNemar p-value (None when a report lacks per-row hits).
    Seeds lacking the metric are left out."""
    seeds = []
    for seed, (before, after) in sorted(pairs.items()):
        a, b = before["metrics"].get(metric), after["metrics"].get(metric)
        if a is None or b is None:
            continue
        test = paired_metric_change(before, after, metric)
        p = None if test is None else test["p_value"]
        counts = _count(before, metric), _count(after, metric)
        seeds.append({"seed": seed, "before": counts[0], "after": counts[1], "before_value": a, "after_value": b,
                      "before_wilson": _wilson(counts[0]), "after_wilson": _wilson(counts[1]), "change": b - a,
                      "p_value": p, "beyond_noise": None if p is None else p < SIGNIFICANCE})
    return over_seeds(seeds)


def over_seeds(seeds: list[dict]) -> dict:
    """The t-intervals over seeds of per-seed `before_value`, `after_value` and `change`, with the seeds."""
    return {"before": t_interval([s["before_value"] for s in seeds]),
            "after": t_interval([s["after_value"] for s in seeds]),
            "change": t_interval([s["change"] for s in seeds]), "seeds": seeds}


def recipe_figures(reports: Mapping[int, tuple[Mapping, Mapping]], metrics: Sequence[str] = EVAL_METRICS) -> dict:
    """Per metric, the SFT → final RL figures of one recipe; `reports`: seed -> (SFT report, final RL report).
    A metric no seed has in both reports (e.g. jailbreak_success_rate on data without jailbreak rows) is left out."""
    figures = {m: paired_figures(reports, m) for m in metrics}
    return {m: f for m, f in figures.items() if f["seeds"]}


def refusal_gap(report: Mapping) -> float | None:
    """The refusal rate on harmful rows (1 − unsafe_compliance_rate) minus that on their benign look-alikes
    (over_refusal_rate): 1 for a model that refuses exactly the harmful ones, 0 for one that cannot tell them
    apart, whatever it refuses; None without both metrics."""
    unsafe, over = report["metrics"].get("unsafe_compliance_rate"), report["metrics"].get("over_refusal_rate")
    return None if unsafe is None or over is None else (1 - unsafe) - over


def gap_figures(reports: Mapping[int, tuple[Mapping, Mapping]]) -> dict:
    """The refusal-rate gap of one recipe over seeds, `reports`: seed -> (SFT report, final RL report): SFT, final
    RL and their change as means with t-intervals, and per seed. Seeds lacking it are left out."""
    gaps = [(seed, refusal_gap(before), refusal_gap(after)) for seed, (before, after) in sorted(reports.items())]
    return over_seeds([{"seed": seed, "before_value": a, "after_value": b, "change": b - a}
                       for seed, a, b in gaps if a is not None and b is not None])


def versus_figures(ablation: Mapping[int, Mapping], base: Mapping[int, Mapping], metric: str) -> dict:
    """Two recipes' final reports, seed by seed (the seeds both have): ablation − base, and McNemar per seed."""
    return paired_figures({s: (base[s], ablation[s]) for s in sorted(ablation.keys() & base.keys())}, metric)


# ---------------------------------------------------------------- markdown


def arrow(metric: str) -> str:
    return "↓" if metric in SAFETY else "↑"


def interval_text(agg: Mapping, signed: bool = False) -> str:
    """`0.653 [0.600, 0.706]`; `0.653 (n=1, no interval)`; `-` without values."""
    if agg["mean"] is None:
        return "-"
    fmt = "{:+.3f}" if signed else "{:.3f}"
    if agg["low"] is None:
        return f"{fmt.format(agg['mean'])} (n=1, no interval)"
    return f"{fmt.format(agg['mean'])} [{fmt.format(agg['low'])}, {fmt.format(agg['high'])}]"


def _counts_text(count: list[int] | None, value: float) -> str:
    return f"{count[0]}/{count[1]}" if count else f"{value:.3f}"


def seed_text(seed: Mapping, before: str = "", after: str = "") -> str:
    """One seed of a paired comparison: `s0: 33/50 → 36/50 +0.060 (p 0.45)`, `*` when beyond noise."""
    p = "untested: no per-row hits" if seed["p_value"] is None else f"p {seed['p_value']:.2g}"
    star = "*" if seed["beyond_noise"] else ""
    return (f"s{seed['seed']}: {before}{_counts_text(seed['before'], seed['before_value'])} → "
            f"{after}{_counts_text(seed['after'], seed['after_value'])} {seed['change']:+.3f}{star} ({p})")


def recipe_table(figures: Mapping[str, Mapping]) -> list[str]:
    """One recipe: per metric the SFT and final RL values, the change, and each seed."""
    rows = [[f"{m} {arrow(m)}", interval_text(f["before"]), interval_text(f["after"]),
             interval_text(f["change"], signed=True), "; ".join(seed_text(s) for s in f["seeds"])]
            for m, f in figures.items() if f["seeds"]]
    return table(["metric", "SFT", "final RL", "RL − SFT", "per seed: SFT → RL, change (McNemar)"], rows)


def overview_table(recipes: Mapping[str, Mapping]) -> list[str]:
    """The final RL value of every recipe side by side, one row per metric."""
    metrics = [m for m in EVAL_METRICS if any(r["metrics"].get(m, {}).get("seeds") for r in recipes.values())]
    rows = [[f"{m} {arrow(m)}", *(interval_text(r["metrics"][m]["after"]) if m in r["metrics"] else "-"
                                  for r in recipes.values())] for m in metrics]
    return table(["metric", *recipes], rows)


def gap_table(gaps: Mapping[str, Mapping]) -> list[str]:
    """The refusal-rate gap of every recipe: SFT, final RL, the change, and each seed."""
    rows = [[name, interval_text(g["before"]), interval_text(g["after"]), interval_text(g["change"], signed=True),
             "; ".join(f"s{s['seed']}: {s['before_value']:.3f} → {s['after_value']:.3f} {s['change']:+.3f}"
                       for s in g["seeds"])] for name, g in gaps.items() if g["seeds"]]
    return table(["recipe", "SFT", "final RL", "RL − SFT", "per seed: SFT → RL, change"], rows)


def comparison_row(comparison: Mapping) -> list[str]:
    """A headline: what is compared, its mean difference with interval, whether that excludes 0, each seed."""
    change, seeds = comparison["figures"]["change"], comparison["figures"]["seeds"]
    excl = excludes_zero(change)
    verdict = "n=1, no interval" if excl is None and change["n"] == 1 else {True: "yes", False: "no", None: "-"}[excl]
    versus = comparison["kind"] == "versus"
    before, after = (f"{comparison['before']} ", f"{comparison['after']} ") if versus else ("", "")
    tested = [s for s in seeds if s["beyond_noise"] is not None]
    marked = f"{sum(s['beyond_noise'] for s in tested)} of {len(tested)} seeds beyond noise"
    return [comparison["title"], f"{comparison['metric']} {arrow(comparison['metric'])}",
            interval_text(change, signed=True), verdict,
            f"{marked}: " + "; ".join(seed_text(s, before, after) for s in seeds)]


def render_section(evidence: Mapping) -> str:
    """The generated part of docs/results.md from the JSON that bench/evidence.py writes."""
    seeds = ", ".join(map(str, evidence["seeds"]))
    lines = [f"Generated by `{evidence['command']}` at commit `{evidence['commit']}`, {evidence['date']}; "
             f"seeds {seeds}. Figures: `{evidence['json']}`.", ""]
    lines += [f"- {note}" for note in evidence["notes"]]
    lines += ["", "Mean over seeds [95 % t-interval over seeds, n − 1 degrees of freedom]; with one seed the "
              "spread is unknown (n=1, no interval). Per seed: hits/rows before → after, the change, and the "
              f"exact McNemar test on the rows both evaluated: * = beyond noise (p < {SIGNIFICANCE}).", ""]
    if evidence["comparisons"]:
        lines += ["**Headline comparisons**", ""]
        lines += table(["comparison", "metric", "mean difference", "interval excludes 0", "per seed"],
                       [comparison_row(c) for c in evidence["comparisons"]])
        lines.append("")
    lines += ["**Final RL value per recipe** (mean over seeds [95 % t-interval])", ""]
    lines += overview_table(evidence["recipes"]) + [""]
    if evidence.get("refusal_gap"):
        lines += ["**Refusal-rate gap** ↑: refusal rate on harmful rows (1 − unsafe_compliance_rate) − refusal rate "
                  "on their benign look-alikes (over_refusal_rate), per seed and as mean over seeds [95 % t-interval]",
                  ""]
        lines += gap_table(evidence["refusal_gap"]) + [""]
    for name, recipe in evidence["recipes"].items():
        lines += [f"**{name}**: {recipe['description']}", ""]
        lines += recipe_table(recipe["metrics"]) + [""]
    lines += ["**Commands** (run by bench/evidence.py in this order, from the repository root)", "", "```",
              *(run["command"] for run in evidence["runs"]), "```"]
    return "\n".join(lines) + "\n"
