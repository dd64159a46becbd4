"""Does RL teach the rows it drew, or the distinction? The refusal-rate gap on the RL pool, before and after RL,
split into the harmful and look-alike rows the RL stage drew and those it never saw.

The held-out gap (harmful rows refused minus look-alikes refused) is what issue #24 asks RL to widen, and in the
SmolLM2 runs it barely moves. That is either an optimisation failure (RL does not separate even the rows it trains
on) or a generalisation one (it separates them, and that does not carry to other requests). This bench tells the
two apart: it evaluates the model before RL and after RL (greedy, through `cosmo eval`) on the harmful and
look-alike rows of the run's RL pool (`<data.dir>/rl.jsonl`), reads from the run's ledger which of them the stage
drew, and prints per part both refusal rates, their paired change (exact McNemar) and the gap with its Newcombe
interval. Rows the stage drew were chosen by dynamic sampling (mostly groups whose samples disagreed; flat ones
only fill a shortfall), so they start nearer the model's boundary than the rest: compare the changes, not the
starting gaps. Run it alone on the machine:

    .venv/bin/python bench/trained_rows.py --run runs/smollm2 --before runs/smollm2/checkpoints/sft/step_24
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

from cosmo.stats import paired_change, refusal_gap

TASKS = ("safety", "over_refusal")


def drawn_rows(ledger: Path, stage: str) -> set[str]:
    """The row ids the stage drew over its steps (ledger.jsonl's `sample_ids`)."""
    if not ledger.is_file():
        raise SystemExit(f"trained_rows: {ledger} does not exist (a run directory of `cosmo train` has one)")
    ids: set[str] = set()
    for n, line in enumerate(ledger.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise SystemExit(f"trained_rows: {ledger}:{n}: not JSON ({exc})") from None
        if record.get("stage") == stage:
            ids.update(record.get("sample_ids", ()))
    if not ids:
        raise SystemExit(f"trained_rows: {ledger} has no step of stage {stage!r}")
    return ids


def evaluate(model: str, pool: Path, ids: set[str], out: Path, args: argparse.Namespace) -> dict:
    """The `cosmo eval` report's per-row hits of `model` on `pool` (reused when `out` holds one for that model
    on exactly these rows)."""
    if out.is_file():
        report = json.loads(out.read_text())
        hits = report.get("row_hits") or {}
        seen = set(hits.get("unsafe_compliance_rate", {})) | set(hits.get("over_refusal_rate", {}))
        if report.get("model") == model and seen == ids:
            print(f"reusing {out}", flush=True)
            return hits
    subprocess.run([sys.executable, "-m", "cosmo", "eval", "--model", model, "--data", str(pool), "--out", str(out),
                    "--max-new-tokens", str(args.max_new_tokens), "--max-model-len", str(args.max_model_len),
                    "--kv-cache-gib", str(args.kv_cache_gib)], check=True)
    return json.loads(out.read_text())["row_hits"]


def refused(hits: dict, metric: str, ids: list[str]) -> list[bool]:
    """Per row, refused or not: unsafe compliance hits are the harmful rows *not* refused."""
    return [not hits[metric][i] if metric == "unsafe_compliance_rate" else hits[metric][i] for i in ids]


def part_line(name: str, before: dict, after: dict, harmful: list[str], benign: list[str]) -> str:
    """Both refusal rates before -> after with the McNemar p of each change, and the gap with its interval."""
    if not harmful or not benign:
        return f"{name}: no {'harmful' if not harmful else 'look-alike'} row in this part"
    cells = []
    gaps = []
    for label, hits in (("before", before), ("after", after)):
        h, b = refused(hits, "unsafe_compliance_rate", harmful), refused(hits, "over_refusal_rate", benign)
        gap, low, high = refusal_gap(sum(h), len(h), sum(b), len(b))
        gaps.append(f"{label} {gap:+.2f} [{low:+.2f}, {high:+.2f}]")
    for label, metric, ids in (("harmful refused", "unsafe_compliance_rate", harmful),
                               ("look-alikes refused", "over_refusal_rate", benign)):
        a, b = refused(before, metric, ids), refused(after, metric, ids)
        change = paired_change(a, b)
        cells.append(f"{label} {sum(a)}/{len(ids)} -> {sum(b)}/{len(ids)} (p = {change['p_value']:.3f})")
    return f"{name}: " + "; ".join(cells) + "; gap " + " -> ".join(gaps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, type=Path, help="the RL run's directory (ledger.jsonl, config.yaml)")
    ap.add_argument("--before", required=True, help="the model the RL stages started from (the SFT checkpoint)")
    ap.add_argument("--after", help="the RL model (default: the stage's last checkpoint in the run)")
    ap.add_argument("--stage", default="rl_mixed", help="the RL stage whose draws count as trained (default rl_mixed)")
    ap.add_argument("--data", type=Path, help="the RL pool (default: rl.jsonl in the run's data.dir)")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="as the recipe's eval.max_new_tokens (64)")
    ap.add_argument("--max-model-len", type=int, default=384, help="vLLM context, as the recipe's rollout (384)")
    ap.add_argument("--kv-cache-gib", type=float, default=1.0, help="vLLM KV cache on CPU, as the recipe's (1)")
    args = ap.parse_args()

    config = args.run / "config.yaml"
    data = args.data
    if data is None:
        if not config.is_file():
            raise SystemExit(f"trained_rows: {config} does not exist; pass --data (the RL pool, rl.jsonl)")
        data = Path(yaml.safe_load(config.read_text())["data"]["dir"]) / "rl.jsonl"
    after = args.after
    if after is None:
        steps = sorted((args.run / "checkpoints" / args.stage).glob("step_*"), key=lambda p: int(p.name[5:]))
        if not steps:
            raise SystemExit(f"trained_rows: no checkpoint under {args.run / 'checkpoints' / args.stage}; pass --after")
        after = str(steps[-1])
    if not data.is_file():
        raise SystemExit(f"trained_rows: {data} does not exist; pass --data")
    rows = []
    for n, line in enumerate(data.read_text().splitlines(), 1):
        try:
            row = json.loads(line) if line.strip() else {}
        except ValueError as exc:
            raise SystemExit(f"trained_rows: {data}:{n}: not JSON ({exc})") from None
        if row.get("task") in TASKS:
            rows.append(row)
    if not rows:
        raise SystemExit(f"trained_rows: {data} has no rows of tasks {', '.join(TASKS)}")
    drawn = drawn_rows(args.run / "ledger.jsonl", args.stage)
    out = args.run / "trained_rows"
    out.mkdir(exist_ok=True)
    pool = out / "pool.jsonl"
    pool.write_text("".join(json.dumps(row) + "\n" for row in rows))
    ids = {row["id"] for row in rows}
    before_hits = evaluate(args.before, pool, ids, out / "before.json", args)
    after_hits = evaluate(after, pool, ids, out / "after.json", args)
    print(f"{args.run}: {args.before} -> {after}, {len(rows)} rows of {data}; {args.stage} drew {len(drawn)} rows")
    for name, keep in (("drawn by RL", lambda i: i in drawn), ("never drawn", lambda i: i not in drawn),
                       ("all", lambda i: True)):
        harmful = [r["id"] for r in rows if r["task"] == "safety" and keep(r["id"])]
        benign = [r["id"] for r in rows if r["task"] == "over_refusal" and keep(r["id"])]
        print(part_line(name, before_hits, after_hits, harmful, benign))


if __name__ == "__main__":
    main()
