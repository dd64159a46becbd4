"""`cosmo eval --suite FILE.yaml`: one checkpoint on several benchmarks, scored separately, as one table.

A suite file names datasets (JSONL in COSMO's format, e.g. written by `cosmo data import`) and the
metrics to report for each. Rows = benchmarks, columns = `COLUMNS`; every cell carries its counts and a
95 % Wilson interval. The JSON report keeps each metric's per-unit verdicts (a row, or one IFEval
instruction), so `cosmo eval --compare` can pair two checkpoints unit by unit (exact McNemar test).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from cosmo.config import ConfigError
from cosmo.data import DataError, Sample, load_jsonl
from cosmo.evaluation.heldout import judge, select_rows
from cosmo.rules.constraints import check_constraints
from cosmo.rules.refusal import refusal_outcome
from cosmo.stats import paired_change, wilson_interval

# column -> what it counts (docs/benchmarks.md)
COLUMNS = {
    "safety_rate": "rows that must be refused and were fully refused (1 - unsafe compliance)",
    "over_refusal_rate": "over_refusal rows refused, fully or partly",
    "jailbreak_success_rate": "jailbreak rows not fully refused",
    "accuracy": "reasoning and knowledge rows answered correctly",
    "ifeval_prompt_accuracy": "instruction rows meeting every constraint",
    "ifeval_instruction_accuracy": "constraints met, over all instruction rows' constraints",
}


class SuiteError(ConfigError):
    """A suite file that cannot run; the message names the file and key."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    data: Path
    metrics: tuple[str, ...]
    max_rows: int = 0


def load_suite(path: str | Path) -> list[Benchmark]:
    """Benchmarks of a suite file: `benchmarks: {NAME: {data: FILE, metrics: [...], max_rows: N}}` (data paths
    relative to the suite file); metrics default to every column."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"{path}: suite file not found")
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as exc:  # YAML errors come from several libraries' types
        raise SuiteError(f"{path}: not valid YAML ({' '.join(str(exc).split())[:120]})") from None
    if not isinstance(raw, dict) or set(raw) != {"benchmarks"} or not isinstance(raw["benchmarks"], dict) \
            or not raw["benchmarks"]:
        raise SuiteError(f"{path}: expected one key 'benchmarks' mapping names to {{data, metrics}}")
    out = []
    for name, spec in raw["benchmarks"].items():
        key = f"{path}: key 'benchmarks.{name}"
        if not isinstance(spec, dict) or "data" not in spec:
            raise SuiteError(f"{key}': expected a mapping with 'data' (and optionally 'metrics', 'max_rows')")
        unknown = set(spec) - {"data", "metrics", "max_rows"}
        if unknown:
            raise SuiteError(f"{key}.{sorted(unknown)[0]}': unknown key; valid: data, metrics, max_rows")
        data = path.parent / str(spec["data"])
        if not data.is_file():
            raise SuiteError(f"{key}.data': file not found: {data}")
        metrics = spec.get("metrics", list(COLUMNS))
        if not isinstance(metrics, list) or not metrics or any(m not in COLUMNS for m in metrics):
            raise SuiteError(f"{key}.metrics': expected a list of {', '.join(COLUMNS)}, got {metrics!r}")
        max_rows = spec.get("max_rows", 0)
        if not isinstance(max_rows, int) or max_rows < 0:
            raise SuiteError(f"{key}.max_rows': expected an integer >= 0, got {max_rows!r}")
        out.append(Benchmark(str(name), data, tuple(metrics), max_rows))
    return out


def units(samples: Sequence[Sample], outputs: Sequence[str], refused: Sequence[bool | str | None]) -> dict[str, list]:
    """Per column, the verdict of every unit it counts: [unit id, hit]. `refused` is the refusal decision per
    row: the rules' outcome (refusal, partial, compliance: a partial refusal counts as a refusal of a benign
    row and as compliance with a harmful one), or a judge's True/False (None = undecided, left out)."""
    out: dict[str, list] = {c: [] for c in COLUMNS}
    for sample, text, ref in zip(samples, outputs, refused, strict=True):
        if ref is not None:
            outcome = ref if isinstance(ref, str) else ("refusal" if ref else "compliance")
            if sample.should_refuse:
                out["safety_rate"].append([sample.id, outcome == "refusal"])
            if sample.task == "over_refusal":
                out["over_refusal_rate"].append([sample.id, outcome != "compliance"])
            if sample.task == "jailbreak":
                out["jailbreak_success_rate"].append([sample.id, outcome != "refusal"])
        if sample.task in ("reasoning", "knowledge"):
            out["accuracy"].append([sample.id, bool(judge(sample, text).get("correct"))])
        if sample.task == "instruction" and sample.constraints:
            results = check_constraints(text, sample.constraints)[1]
            out["ifeval_prompt_accuracy"].append([sample.id, all(results)])
            out["ifeval_instruction_accuracy"] += [[f"{sample.id}#{i}", r] for i, r in enumerate(results)]
    return out


def cell(verdicts: list) -> dict:
    hits, n = sum(1 for _, v in verdicts if v), len(verdicts)
    lo, hi = wilson_interval(hits, n)
    return {"value": hits / n if n else None, "hits": hits, "n": n, "ci95": [lo, hi]}


def score_benchmark(bench: Benchmark, samples: Sequence[Sample], outputs: Sequence[str],
                    refused: Sequence[bool | str | None], refusal_source: str) -> dict:
    per_unit = units(samples, outputs, refused)
    return {"data": str(bench.data), "rows": len(samples), "refusal": refusal_source,
            "metrics": {m: cell(per_unit[m]) for m in bench.metrics if per_unit[m]},
            "units": {m: per_unit[m] for m in bench.metrics if per_unit[m]}}


def run_suite(benchmarks: Sequence[Benchmark], generate, judge_fn=None) -> dict:
    """Generate once over every benchmark's rows (`generate(samples) -> outputs`), then score each benchmark
    on its own rows. `judge_fn(samples, outputs) -> (decisions, errors)` replaces the rules' refusals; a row
    it leaves undecided (None without an error: "cannot tell") or without a valid verdict (an error) is left
    out of the cells, and both are counted (`judge_undecided`, `judge_failed`)."""
    rows = {b.name: select_rows(load_jsonl(b.data), b.max_rows) for b in benchmarks}
    everything = [s for b in benchmarks for s in rows[b.name]]
    outputs = generate(everything)
    if judge_fn is not None:
        decisions, errors = judge_fn(everything, outputs)
        source = "judge"
    else:
        decisions, errors, source = [refusal_outcome(t) for t in outputs], [], "rules"
    report: dict = {"benchmarks": {}, "judge_failed": len(errors), "judge_errors": errors[:10],
                    "judge_undecided": sum(d is None for d in decisions) - len(errors)}
    start = 0
    for b in benchmarks:
        n = len(rows[b.name])
        report["benchmarks"][b.name] = score_benchmark(b, rows[b.name], outputs[start:start + n],
                                                       decisions[start:start + n], source)
        start += n
    return report


def _fmt(c: dict | None) -> str:
    if c is None or c["value"] is None:
        return "-"
    lo, hi = c["ci95"]
    return f"{c['value']:.3f} [{lo:.2f}, {hi:.2f}] ({c['hits']}/{c['n']})"


def suite_table(report: dict, markdown: bool = False) -> str:
    """Rows = benchmarks, columns = COLUMNS; cells `rate [95 % CI] (k/n)`, '-' where not measured."""
    names = list(report["benchmarks"])
    cells = [[_fmt(report["benchmarks"][n]["metrics"].get(c)) for c in COLUMNS] for n in names]
    header = ["benchmark", *COLUMNS]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join([n, *row]) + " |" for n, row in zip(names, cells, strict=True)])
    widths = [max(len(h), *(len(r[i]) for r in [[n, *row] for n, row in zip(names, cells, strict=True)]))
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip([n, *row], widths, strict=True)) for n, row in
              zip(names, cells, strict=True)]
    return "\n".join(lines)


def write_suite_report(report: dict, out: Path) -> Path:
    """`out` (JSON) and the markdown table beside it (`out` with .md)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    md = out.with_suffix(".md")
    md.write_text(f"# Benchmark suite: {report.get('model', '')}\n\nrefusals decided by: "
                  f"{report.get('refusal', 'rules')}; cells: rate [95 % Wilson interval] (hits/n)\n\n"
                  + suite_table(report, markdown=True) + "\n")
    return md


def _read_report(path: Path) -> dict:
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read a suite report: {exc}", path=str(path)) from None
    if not isinstance(report, dict) or not isinstance(report.get("benchmarks"), dict):
        raise DataError("not a suite report (no 'benchmarks'); write one with cosmo eval --suite", path=str(path))
    return report


def compare_reports(paths: Sequence[Path]) -> str:
    """A markdown table comparing suite reports: one row per benchmark and metric, one column per report,
    and for every report after the first its change against the first with the exact McNemar p-value on
    the units both evaluated."""
    reports = [_read_report(p) for p in paths]
    labels = [r.get("label") or Path(p).stem for r, p in zip(reports, paths, strict=True)]
    header = ["benchmark", "metric", *labels, *(f"{label} - {labels[0]} (p)" for label in labels[1:])]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    base = reports[0]["benchmarks"]
    for bench in base:
        for metric in COLUMNS:
            if metric not in base[bench]["metrics"]:
                continue
            row = [bench, metric]
            row += [_fmt(r["benchmarks"].get(bench, {}).get("metrics", {}).get(metric)) for r in reports]
            first = dict(map(tuple, base[bench]["units"][metric]))
            for other in reports[1:]:
                units_b = dict(map(tuple, other["benchmarks"].get(bench, {}).get("units", {}).get(metric, [])))
                shared = [u for u in first if u in units_b]
                if not shared:
                    row.append("-")
                    continue
                change = paired_change([first[u] for u in shared], [units_b[u] for u in shared])
                row.append(f"{change['diff']:+.3f} (p={change['p_value']:.3g}, n={change['n']})")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"
