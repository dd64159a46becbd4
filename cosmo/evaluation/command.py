"""`cosmo eval`: one checkpoint on JSONL rows (a report and a table), on a benchmark suite, or a
comparison of suite reports. Heavy libraries are imported inside the functions: `cosmo --help` stays fast."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from cosmo.config import RolloutConfig

log = logging.getLogger("cosmo")


def _eval_usage(args: argparse.Namespace) -> str | None:
    """Which flags `cosmo eval` lacks for the mode asked for (plain, --suite or --compare)."""
    if args.compare:
        return None if not (args.model or args.data or args.suite) else "--compare takes no --model/--data/--suite"
    if not (args.model and args.out):
        return "--model and --out are required (or --compare REPORT.json ...)"
    if bool(args.data) == bool(args.suite):
        return "give either --data FILE (repeatable) or --suite FILE.yaml"
    return None


def run_eval(args: argparse.Namespace) -> int:
    problem = _eval_usage(args)
    if problem:
        print(f"cosmo eval: {problem}", file=sys.stderr)
        return 2
    if args.compare:
        from cosmo.evaluation.suite import compare_reports  # noqa: PLC0415 - see the module docstring

        table = compare_reports([Path(p) for p in args.compare])
        if args.out:
            Path(args.out).write_text(table)
        print(table, end="")
        return 0
    import torch  # noqa: PLC0415 - see the module docstring

    from cosmo.data import load_jsonl  # noqa: PLC0415 - see the module docstring
    from cosmo.evaluation.heldout import evaluate, format_table, select_rows  # noqa: PLC0415 - see the module docstring

    if args.threads:
        torch.set_num_threads(args.threads)
    on_gpu = torch.cuda.is_available()
    rollout = RolloutConfig(max_model_len=args.max_model_len, max_new_tokens=args.max_new_tokens,
                            cpu_memory_utilization=args.cpu_memory_utilization,
                            cpu_kv_cache_gib=args.kv_cache_gib or None)
    judge = _eval_judge(args, on_gpu, rollout)
    if args.suite:
        return _eval_suite(args, on_gpu, rollout, judge)
    rows = []
    for path in args.data:
        rows += load_jsonl(path)
    rows = select_rows(rows, args.max_rows_per_task)
    log.info("evaluating %s on %d rows from %s", args.model, len(rows), ", ".join(args.data))
    report = evaluate(args.model, rows, engine=args.engine, max_new_tokens=args.max_new_tokens,
                      batch_size=args.batch_size, temperature=args.temperature, on_gpu=on_gpu, rollout=rollout,
                      judge=judge)
    report["data"] = list(args.data)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(format_table({Path(args.model).name or args.model: report}))
    if "judge" in report:
        from cosmo.evaluation.refusal_judge import summary_line  # noqa: PLC0415 - see the module docstring

        print(summary_line(report["judge"]))
    log.info("report written to %s (%.1f s)", out, report["seconds"])
    return 0


def _eval_judge(args: argparse.Namespace, on_gpu: bool, rollout):
    """The judge objective named by --judge, configured from --judge-config and --judge-set, or None."""
    if not args.judge:
        return None
    from cosmo.evaluation.refusal_judge import REFUSAL_RUBRIC, build_judge, judge_config  # noqa: PLC0415 - see the module docstring

    section = judge_config(args.judge, args.judge_config, args.judge_set)
    rubric = Path(args.judge_rubric) if args.judge_rubric else Path(args.out).with_suffix(".judge-rubric.txt")
    if not args.judge_rubric:  # the rubric the verdicts came from stays beside the report
        rubric.parent.mkdir(parents=True, exist_ok=True)
        rubric.write_text(REFUSAL_RUBRIC)
    return build_judge(args.judge, section, rubric, on_gpu=on_gpu, rollout=rollout)


def _eval_suite(args: argparse.Namespace, on_gpu: bool, rollout, judge) -> int:
    from cosmo.evaluation.heldout import generate_responses  # noqa: PLC0415 - see the module docstring
    from cosmo.evaluation.refusal_judge import judge_refusals  # noqa: PLC0415 - see the module docstring
    from cosmo.evaluation.suite import load_suite, run_suite, suite_table, write_suite_report  # noqa: PLC0415 - see the module docstring

    benchmarks = load_suite(args.suite)

    def generate(samples):
        log.info("evaluating %s on %d rows of %d benchmarks", args.model, len(samples), len(benchmarks))
        return generate_responses(args.model, samples, engine=args.engine, max_new_tokens=args.max_new_tokens,
                                  batch_size=args.batch_size, temperature=args.temperature, on_gpu=on_gpu,
                                  rollout=rollout)

    judge_fn = (lambda samples, outputs: judge_refusals(judge, samples, outputs)) if judge is not None else None
    report = run_suite(benchmarks, generate, judge_fn)
    report.update(model=args.model, label=args.label or Path(args.model).name, suite=str(args.suite),
                  refusal=judge.name if judge is not None else "rules")
    md = write_suite_report(report, Path(args.out))
    print(suite_table(report))
    log.info("suite report written to %s and %s", args.out, md)
    return 0
