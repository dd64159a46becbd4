"""The cells of an eval table (rate, counts, 95 % interval, change from the previous column and whether
it is beyond noise), shared by `cosmo.evaluation.heldout.format_table` and `cosmo report`.

Kept free of the model stack (plain dicts in, strings out) so that `cosmo report` stays quick. A report
is what `cosmo.evaluation.heldout.summarize` returns: `metrics`, `counts` ({"hits", "rows"} per metric) and `row_hits`
(metric -> row id -> hit); older reports may lack `counts` or `row_hits`, and then show less.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cosmo.stats import paired_change, refusal_gap, wilson_interval

SIGNIFICANCE = 0.05
TABLE_LEGEND = (
    "rate (hits/rows) [95 % Wilson interval]; from the second column on, the change from the column before "
    "it: * = beyond noise (exact McNemar test on the rows both evaluated, p < 0.05), no mark = within noise"
)
GAP_LEGEND = (
    "refusal_gap: the rate of harmful rows refused minus that of their benign look-alikes refused (1 - "
    "unsafe_compliance_rate - over_refusal_rate) [95 % Newcombe interval]: how well the model tells the two apart, "
    "whatever its readiness to refuse; its change from the column before is not tested"
)


def paired_metric_change(before: Mapping, after: Mapping, metric: str) -> dict | None:
    """`cosmo.stats.paired_change` of one metric between two reports, on the row ids both evaluated;
    None when either report has no per-row hits for it or they share no row."""
    a = (before.get("row_hits") or {}).get(metric) or {}
    b = (after.get("row_hits") or {}).get(metric) or {}
    shared = sorted(a.keys() & b.keys())
    if not shared:
        return None
    return paired_change([bool(a[i]) for i in shared], [bool(b[i]) for i in shared])


def gap_cells(reports: Mapping[str, Mapping]) -> list[tuple[str, list[str]]]:
    """The refusal-rate gap as one more table row (one cell per report, "-" where it lacks either rate's
    counts), or no row when no report has both."""
    cells: list[str] = []
    before = None
    for report in reports.values():
        counts = report.get("counts") or {}
        unsafe, over = counts.get("unsafe_compliance_rate"), counts.get("over_refusal_rate")
        if not all(isinstance(c, Mapping) and {"hits", "rows"} <= c.keys() and c["rows"] for c in (unsafe, over)):
            cells.append("-")
            before = None
            continue
        gap, low, high = refusal_gap(unsafe["rows"] - unsafe["hits"], unsafe["rows"], over["hits"], over["rows"])
        cells.append(f"{gap:.2f} [{low:.2f}, {high:.2f}]" + ("" if before is None else f" {gap - before:+.2f}"))
        before = gap
    return [("refusal_gap", cells)] if any(c != "-" for c in cells) else []


def metric_cells(reports: Mapping[str, Mapping], metrics: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(metric, one cell per report, "-" where it lacks the metric) for each metric some report has."""
    labels = list(reports)
    out = []
    for name in metrics:
        cells = []
        for j, label in enumerate(labels):
            report = reports[label]
            value, count = report["metrics"].get(name), (report.get("counts") or {}).get(name)
            if value is None:
                cells.append("-")
                continue
            cell = f"{value:.2f}"
            if isinstance(count, Mapping) and {"hits", "rows"} <= count.keys():
                low, high = wilson_interval(count["hits"], count["rows"])
                cell += f" ({count['hits']}/{count['rows']}) [{low:.2f}, {high:.2f}]"
            before = reports[labels[j - 1]]["metrics"].get(name) if j else None
            if before is not None:
                change = paired_metric_change(reports[labels[j - 1]], report, name)
                star = "*" if change is not None and change["p_value"] < SIGNIFICANCE else ""
                cell += f" {value - before:+.2f}{star}"
            cells.append(cell)
        if any(c != "-" for c in cells):
            out.append((name, cells))
    return out


PHRASE_METRICS = ("unsafe_compliance_rate", "jailbreak_success_rate", "over_refusal_rate")
PHRASE_LEGEND = ("by modality and phrase: the built-in safety rows again, text or image, and with a phrase seen in "
                 "training (in other wordings or renders) or never seen")


def phrase_reports(reports: Mapping[str, Mapping]) -> tuple[dict[str, dict], list[str]]:
    """Each report cut to the rows of each (safety metric, row group of `row_groups`), as reports of their
    own whose metrics are named "<metric> <group>" (e.g. "over_refusal_rate text, unseen phrase"), for
    `metric_cells`; and those names in table order. Empty for reports without `row_groups` (older ones,
    data other than the built-in set)."""
    out: dict[str, dict] = {label: {"metrics": {}, "counts": {}, "row_hits": {}} for label in reports}
    names: list[str] = []
    for metric in PHRASE_METRICS:
        cut: dict[str, dict[str, dict[str, bool]]] = {}
        for label, report in reports.items():
            groups = report.get("row_groups") or {}
            hits = (report.get("row_hits") or {}).get(metric) or {}
            cut[label] = {}
            for row, hit in hits.items():
                if row in groups:
                    cut[label].setdefault(groups[row], {})[row] = bool(hit)
        for group in sorted({g for by_group in cut.values() for g in by_group}):
            name = f"{metric} {group}"
            names.append(name)
            for label, by_group in cut.items():
                if group in by_group:
                    hits = by_group[group]
                    out[label]["metrics"][name] = sum(hits.values()) / len(hits)
                    out[label]["counts"][name] = {"hits": sum(hits.values()), "rows": len(hits)}
                    out[label]["row_hits"][name] = hits
    return out, names


def table_legend(reports: Mapping[str, Mapping]) -> list[str]:
    """The legend under an eval table (with the gap's when the table has its row), plus a line naming the
    changes that could not be tested."""
    labels = list(reports)
    untested = [f"{a} -> {b}" for a, b in zip(labels, labels[1:], strict=False)
                if not (reports[a].get("row_hits") and reports[b].get("row_hits"))]
    gap = [GAP_LEGEND] if gap_cells(reports) else []
    return [TABLE_LEGEND, *gap] + ([f"untested (a report without per-row verdicts): {', '.join(untested)}"]
                                   if untested else [])
