"""Compare two run directories value by value, ignoring wall-clock figures.

A refactor of the loop must not change what a run computes: with the same config and seed, every
metrics.jsonl record (stage, step and each non-timing value) and every held-out report must be
identical. Prints each difference and exits 1 if there is any.

    .venv/bin/python bench/compare_runs.py runs/before runs/after
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# wall-clock figures: they differ between any two runs
TIMING_KEYS = {"time", "step_s", "train/step_s", "rollout/tokens_per_s", "sync/load_s", "seconds"}
TIMING_PREFIXES = ("time/",)


def is_timing(key: str) -> bool:
    return key in TIMING_KEYS or key.startswith(TIMING_PREFIXES)


def records(run: Path) -> list[dict]:
    """metrics.jsonl without its timing values, in file order."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise SystemExit(f"compare_runs: {path} does not exist")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise SystemExit(f"compare_runs: {path}:{n}: not JSON ({exc})") from None
        out.append({k: v for k, v in record.items() if not is_timing(k)})
    return out


def eval_metrics(run: Path) -> dict[str, dict]:
    """Each eval report's metrics and counts, by label."""
    reports = {p.stem: json.loads(p.read_text()) for p in sorted((run / "eval").glob("*.json"))}
    return {label: {"metrics": r["metrics"], "counts": r["counts"]} for label, r in reports.items()}


def differences(a: Path, b: Path) -> list[str]:
    """Human-readable differences between two runs' non-timing records and eval reports."""
    out = []
    ra, rb = records(a), records(b)
    if len(ra) != len(rb):
        out.append(f"metrics.jsonl: {len(ra)} records vs {len(rb)}")
    for x, y in zip(ra, rb, strict=False):
        where = f"{x.get('stage')} step {x.get('step')}"
        for key in sorted(set(x) | set(y)):
            if x.get(key, "<missing>") != y.get(key, "<missing>"):
                out.append(f"{where}: {key}: {x.get(key, '<missing>')!r} vs {y.get(key, '<missing>')!r}")
    ea, eb = eval_metrics(a), eval_metrics(b)
    for label in sorted(set(ea) | set(eb)):
        if ea.get(label) != eb.get(label):
            out.append(f"eval/{label}.json: {ea.get(label)} vs {eb.get(label)}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path, help="run directory (runs/<name>)")
    parser.add_argument("after", type=Path, help="run directory to compare with")
    args = parser.parse_args()
    diffs = differences(args.before, args.after)
    for line in diffs:
        print(line)
    n = len(records(args.before))
    values = sum(len(r) for r in records(args.before))
    print(f"{n} records, {values} non-timing values, {len(eval_metrics(args.before))} eval reports compared: "
          f"{'identical' if not diffs else f'{len(diffs)} differences'}")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
