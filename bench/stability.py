"""GRPO against CPGD when the updates go off-policy: the CPGD paper's stability comparison, in miniature.

From one SFT checkpoint (--model, or a short SFT run made here first), RL with GRPO and with CPGD at an
aggressive setting: several optimizer steps per rollout batch (rl.mini_batches x rl.epochs) at a high learning
rate, otherwise identical (recipe, seed, data, steps). From each run's metrics.jsonl: a plot of the batch reward,
the response length, the clip fraction and the policy's drift from the sampler (k3 KL to the batch's old policy)
over the RL steps, and a table of their means per quarter of the run with the final eval, written into a marked
section of docs/results.md. With one update per batch the two losses have the same gradient (docs/results.md),
so the difference can only show here. Inside the loopback-only namespace, alone on the machine:

    deploy/loopback.sh .venv/bin/python bench/stability.py --model runs/evidence/default-s0/checkpoints/sft/step_400
    deploy/loopback.sh .venv/bin/python bench/stability.py --quick    # smoke test: short SFT, 4 RL steps
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import launch
from launch import QUICK, ROOT, read_report, rel, split_stages
from metrics import rl_steps
from results_doc import commit, table, write_section

from cosmo.evaluation.table import metric_cells, table_legend
from cosmo.report import EVAL_METRICS

TAG = "stability"
ALGORITHMS = ("grpo", "cpgd")
# metrics.jsonl key -> label: what the learner and the driver log per RL step (cosmo/algorithms/batch.py,
# cosmo/algorithms/losses.py via learner/actor.py)
SERIES = {"reward/mean": "reward", "response/length_mean": "response length", "train/clip_frac": "clip fraction",
          "train/approx_kl_old": "KL to old policy"}
QUARTERS = 4


def quarters(records: Sequence[Mapping], key: str) -> list[float | None]:
    """Mean of `key` over each quarter of the records (step order; quarter q holds records [q·n/4, (q+1)·n/4));
    None for a quarter without values."""
    n = len(records)
    out = []
    for q in range(QUARTERS):
        values = [r[key] for r in records[q * n // QUARTERS:(q + 1) * n // QUARTERS] if r.get(key) is not None]
        out.append(statistics.fmean(values) if values else None)
    return out


def quarter_table(runs: Mapping[str, Sequence[Sequence[Mapping]]]) -> list[str]:
    """Per quarter, each series' mean for each algorithm (averaged over its seeds' quarter means).
    `runs`: algorithm -> one list of RL step records per seed."""
    steps = max((len(r) for seeds in runs.values() for r in seeds), default=0)
    header = ["quarter (steps)"] + [f"{label} {algo}" for label in SERIES.values() for algo in runs]
    rows = []
    for q in range(QUARTERS):
        cells = [f"{q + 1} ({q * steps // QUARTERS + 1}-{(q + 1) * steps // QUARTERS})"]
        for key in SERIES:
            for seeds in runs.values():
                means = [m for m in (quarters(r, key)[q] for r in seeds) if m is not None]
                cells.append(f"{statistics.fmean(means):.3f}" if means else "-")
        rows.append(cells)
    return table(header, rows)


def eval_table(reports: Mapping[str, Mapping]) -> list[str]:
    """The start (SFT) and final evals side by side, with counts, Wilson intervals and the paired test."""
    rows = [[m, *cells] for m, cells in metric_cells(reports, EVAL_METRICS)]
    return table(["metric", *reports], rows) + [""] + table_legend(reports)


def plot(runs: Mapping[str, Mapping[int, Sequence[Mapping]]], path: Path, title: str) -> None:
    import matplotlib  # noqa: PLC0415 - only for the figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(2, 2, figsize=(12, 7), sharex=True)
    for ax, (key, label) in zip(axes.flat, SERIES.items(), strict=True):
        for colour, (algo, seeds) in zip(("C0", "C1"), runs.items(), strict=False):
            for k, (seed, records) in enumerate(seeds.items()):
                points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
                ax.plot([p[0] for p in points], [p[1] for p in points], color=colour, alpha=1.0 if k == 0 else 0.5,
                        label=f"{algo.upper()} seed {seed}")
        ax.set(title=label, xlabel="RL step")
        ax.grid(alpha=0.3)
    axes.flat[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="the SFT checkpoint both RL runs start from (default: an SFT run made here)")
    parser.add_argument("--config", default="configs/tiny-cpu.yaml", help="the recipe both runs use")
    parser.add_argument("--steps", type=int, help="RL steps (default: the recipe's; 4 with --quick)")
    parser.add_argument("--lr", type=float, default=1e-3, help="RL learning rate (the recipe's is 1e-4)")
    parser.add_argument("--mini-batches", type=int, default=4, help="rl.mini_batches: optimizer steps per pass")
    parser.add_argument("--epochs", type=int, default=2, help="rl.epochs: passes over each rollout batch")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one GRPO and one CPGD run per seed")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="overrides for every run")
    parser.add_argument("--quick", action="store_true", help=f"smoke test: {' '.join(QUICK)}, 4 RL steps; results "
                        "go to RUNS/, not docs/")
    parser.add_argument("--runs", type=Path, help="runs directory (default: runs/stability, runs/stability-quick)")
    parser.add_argument("--skip-existing", action="store_true", help="reuse runs that finished with the same config")
    parser.add_argument("--doc", type=Path, help="markdown file whose stability section is regenerated "
                        "(default: docs/results.md; RUNS/results.md with --quick)")
    parser.add_argument("--png", type=Path, help="the plot (default: docs/stability.png; RUNS/stability.png with "
                        "--quick)")
    args = parser.parse_args()
    args.runs = (args.runs or ROOT / "runs" / ("stability-quick" if args.quick else "stability")).resolve()
    args.doc = args.doc or (args.runs / "results.md" if args.quick else ROOT / "docs" / "results.md")
    args.png = args.png or (args.runs / "stability.png" if args.quick else ROOT / "docs" / "stability.png")
    if args.steps is None and args.quick:
        args.steps = 4
    args.common = [o for o in (*(QUICK if args.quick else ()), *args.set)
                   if args.steps is None or not o.startswith("rl.steps=")]  # --steps wins
    return args


def sft_checkpoint(args: argparse.Namespace, over: list[str]) -> tuple[str, list[str]]:
    """--model, or the final checkpoint of an SFT run of the recipe made here with the first seed; and the
    command that made it."""
    if args.model:
        return (rel(args.model) if Path(args.model).exists() else args.model), []  # a path, or a hub id
    from cosmo.config import load_config

    config = ROOT / args.config
    seed = args.seeds[0]
    over = [*over, *launch.start_model(config, over, args.runs / "models", seed), f"seed={seed}",
            "logging.run_name=sft"]
    sft, _ = split_stages(load_config(config, over).train.stages)
    over.append(f"train.stages=[{','.join(sft)}]")
    launch.train_once(TAG, "sft", config, over, args.runs, skip_existing=args.skip_existing)
    return rel(read_report(args.runs / "sft", sft[-1])["model"]), [launch.shown(launch.train_command(config, over))]


def last_quarter_reward(runs: Mapping[int, Sequence[Mapping]]) -> float | None:
    """The mean batch reward of the last quarter of the run, averaged over the seeds."""
    means = [m for m in (quarters(r, "reward/mean")[-1] for r in runs.values()) if m is not None]
    return statistics.fmean(means) if means else None


def render(args: argparse.Namespace, title: str, model: str, records: Mapping, evals: Mapping,
           commands: list[str]) -> str:
    """The stability section of docs/results.md."""
    seeds = ", ".join(map(str, args.seeds))
    lines = [f"Generated by `deploy/loopback.sh {shlex.join(['python', 'bench/stability.py', *sys.argv[1:]])}` at "
             f"commit `{commit()}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {title}, from `{model}`; "
             f"the built-in data built with seed {launch.DATA_SEED}. Plot: `{rel(args.png)}`.", "",
             f"![GRPO vs CPGD]({os.path.relpath(args.png, args.doc.parent)})", ""]
    if args.quick:
        lines += [f"**--quick smoke test ({' '.join(QUICK)}, {args.steps} RL steps): these figures are not "
                  "evidence.**", ""]
    lines += [f"Mean per quarter of the RL steps (over seeds {seeds}):", ""]
    lines += quarter_table({a.upper(): list(s.values()) for a, s in records.items()}) + [""]
    for seed, reports in evals.items():
        lines += [f"Held-out eval, seed {seed} (each column's change is against the column before it: GRPO against "
                  "the SFT start, CPGD against GRPO):", ""] + eval_table(reports) + [""]
    return "\n".join([*lines, "Commands (run by bench/stability.py in this order, from the repository root):", "",
                      "```", *commands, "```"])


def main() -> int:
    from cosmo.config import load_config

    args = parse_args()
    launch.warn_outside_loopback(TAG)
    started = time.perf_counter()
    config = ROOT / args.config
    over = [*args.common, f"logging.runs_dir={rel(args.runs)}", "logging.wandb_mode=disabled"]
    over += launch.pinned_data(config, over, args.runs / "data", launch.DATA_SEED)
    model, commands = sft_checkpoint(args, over)
    rl_stages = split_stages(load_config(config, over).train.stages)[1]
    aggressive = [f"rl.lr={args.lr}", f"rl.mini_batches={args.mini_batches}", f"rl.epochs={args.epochs}",
                  *([f"rl.steps={args.steps}"] if args.steps else [])]
    records: dict[str, dict[int, list[dict]]] = {algo: {} for algo in ALGORITHMS}
    evals: dict[int, dict[str, dict]] = {}
    for k, (seed, algo) in enumerate(((s, a) for s in args.seeds for a in ALGORITHMS), 1):
        name = f"{algo}-s{seed}"
        run = [*over, f"seed={seed}", f"logging.run_name={name}", f"train.stages=[{','.join(rl_stages)}]",
               f"model.path={model}", "model.build_preset=null", f"algorithm.name={algo}", *aggressive]
        commands.append(launch.shown(launch.train_command(config, run)))
        launch.train_once(TAG, name, config, run, args.runs, skip_existing=args.skip_existing,
                   position=f"{k}/{len(args.seeds) * len(ALGORITHMS)}")
        records[algo][seed] = rl_steps(args.runs / name, skip=0)
        reports = evals.setdefault(seed, {"SFT (start)": read_report(args.runs / name, "start")})
        reports[algo.upper()] = read_report(args.runs / name, rl_stages[-1])
    title = (f"`{args.config}`, lr {args.lr}, {args.mini_batches} mini-batches x {args.epochs} epochs per rollout "
             f"batch, seeds {', '.join(map(str, args.seeds))}")
    plot(records, args.png, title.replace("`", ""))
    write_section(args.doc, TAG, render(args, title, model, records, evals, commands))
    last = {a.upper(): last_quarter_reward(s) for a, s in records.items()}
    print(f"[{TAG}] {len(commands)} runs in {time.perf_counter() - started:.0f} s; mean batch reward in the last "
          "quarter " + ", ".join(f"{a} {'-' if v is None else f'{v:.3f}'}" for a, v in last.items())
          + f"; plot {rel(args.png)}, table {rel(args.doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
