"""The default recipe and its ablations over several seeds: what RL changes, with intervals and paired tests.

Per seed, the default recipe (configs/tiny-cpu.yaml) runs in full (SFT, then RL); each ablation that changes
only the RL part (rewards, algorithm) starts its RL from that seed's SFT checkpoint, and one that changes what
SFT sees (data augmentation) runs its own SFT. Then, per recipe and metric, the SFT value, the final RL value
and the change as means over seeds with a 95 % t-interval, per seed the counts and the exact McNemar test, and
the headline comparisons; written as a JSON of every figure and as a marked section of docs/results.md.
Start it inside the loopback-only namespace, alone on the machine (about 20 min per seed on 2 CPU cores):

    deploy/loopback.sh .venv/bin/python bench/evidence.py --seeds 0 1 2
    deploy/loopback.sh .venv/bin/python bench/evidence.py --quick --seeds 0 1   # smoke test, minutes
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from evidence_tables import paired_figures, recipe_figures, render_section, versus_figures
from launch import (
    DATA_SEED,
    QUICK,
    ROOT,
    pinned_data,
    read_report,
    rel,
    shown,
    split_stages,
    start_model,
    train_command,
    train_once,
    warn_outside_loopback,
)
from results_doc import commit, write_section

TAG = "evidence"
DEFAULT = "default"


@dataclass(frozen=True)
class Recipe:
    name: str
    config: str
    overrides: tuple[str, ...] = ()


RECIPES = [Recipe(DEFAULT, "configs/tiny-cpu.yaml"), Recipe("safety-only", "configs/ablation-safety-only.yaml"),
           Recipe("capability-only", "configs/ablation-capability-only.yaml"),
           Recipe("grpo", "configs/ablation-grpo.yaml")]
# sections only the RL stage reads: a recipe that differs from the default nowhere else can start its RL from
# the default's SFT checkpoint
RL_ONLY_SECTIONS = {"rl", "rollout", "reward", "algorithm", "train", "logging", "checkpoint", "cluster", "resume"}


def augmentation_recipe(default_augments: bool) -> tuple[Recipe, str]:
    """The data-augmentation ablation: the default with `data.augment` flipped, and what the comparison means."""
    if default_augments:
        return (Recipe("no-augment", "configs/tiny-cpu.yaml", ("data.augment=false",)),
                "the default recipe augments its data (data.augment=true); the no-augmentation ablation is "
                "`no-augment` (data.augment=false), with its own SFT")
    return (Recipe("augment", "configs/tiny-cpu.yaml", ("data.augment=true",)),
            "the default recipe does not augment its data (data.augment=false), so the no-augmentation ablation "
            "is the default itself, compared with `augment` (data.augment=true, its own SFT)")


def own_sft(default_cfg, cfg) -> bool:
    """Whether a recipe needs its own SFT: it differs from the default outside the RL-only sections."""
    a, b = dataclasses.asdict(default_cfg), dataclasses.asdict(cfg)
    return any(a[k] != b[k] for k in a if k not in RL_ONLY_SECTIONS)


@dataclass
class Run:
    name: str
    recipe: Recipe
    seed: int
    overrides: list[str]
    stages: list[str]
    sft_from: str | None = None  # the run whose SFT checkpoint this run's RL starts from

    @property
    def command(self) -> str:
        return shown(train_command(self.recipe.config, self.overrides))


def execute(run: Run, runs_dir: Path, skip_existing: bool, position: str) -> dict:
    """Run (or, with --skip-existing, reuse or continue) one training; its record for the JSON."""
    seconds = train_once(TAG, run.name, ROOT / run.recipe.config, run.overrides, runs_dir, skip_existing=skip_existing,
                         position=position)
    return {"name": run.name, "recipe": run.recipe.name, "seed": run.seed, "command": run.command,
            "sft_from": run.sft_from, "seconds": None if seconds is None else round(seconds, 1),
            "reused": seconds is None}


def base_overrides(recipe: Recipe, seed: int, runs_dir: Path, common: list[str]) -> list[str]:
    """Every run: the recipe's own overrides, the common ones, the seed, its run directory, the pinned data and
    the seed's start model."""
    over = [*recipe.overrides, *common, f"seed={seed}", f"logging.runs_dir={rel(runs_dir)}",
            f"logging.run_name={recipe.name}-s{seed}", "logging.wandb_mode=disabled"]
    config = ROOT / recipe.config
    data = pinned_data(config, over, runs_dir / "data", DATA_SEED)
    return [*over, *data, *start_model(config, over, runs_dir / "models", seed)]


def plan_run(recipe: Recipe, seed: int, runs_dir: Path, common: list[str], default_run: Run | None
             ) -> tuple[Run, str | None]:
    """The seed's run of a recipe, and the eval label of its SFT model: the default and any recipe that changes
    what SFT reads run every stage; the others run their RL stages from the seed's default SFT checkpoint."""
    from cosmo.config import load_config

    over = base_overrides(recipe, seed, runs_dir, common)
    cfg = load_config(ROOT / recipe.config, over)
    sft, rl = split_stages(cfg.train.stages)
    run = Run(f"{recipe.name}-s{seed}", recipe, seed, over, list(cfg.train.stages))
    if default_run is None or not (sft and rl):
        return run, sft[-1] if sft else None
    if not own_sft(load_config(ROOT / default_run.recipe.config, default_run.overrides), cfg):
        checkpoint = read_report(runs_dir / default_run.name, sft[-1])["model"]
        run.overrides = [*(o for o in over if not o.startswith("model.path=")), f"train.stages=[{','.join(rl)}]",
                         f"model.path={rel(checkpoint)}", "model.build_preset=null"]
        run.stages, run.sft_from = rl, default_run.name
    return run, sft[-1]


def describe(recipe: Recipe, run: Run) -> str:
    what = f"`{recipe.config}`" + (f" with `{' '.join(recipe.overrides)}`" if recipe.overrides else "")
    if run.sft_from:
        return f"{what}; RL only ({', '.join(run.stages)}), from the same seed's `{DEFAULT}` SFT checkpoint"
    return f"{what}; its own SFT, then RL ({', '.join(run.stages)})"


def notes(augment_note: str | None, quick: bool) -> list[str]:
    out = [
        f"The held-out data is the same in every run: the built-in set is built once, with seed {DATA_SEED}, into the "
        "runs directory (`data.dir`), so every paired test (RL vs SFT, ablation vs default) compares the same rows. "
        "The seed (`seed=S`) sets the start model's initial weights (one tiny model per seed), the data order and "
        "the sampling.",
        "An ablation that changes only the RL part starts from the same seed's default SFT checkpoint, so its SFT "
        "column is the default's; one that changes anything SFT reads runs its own SFT.",
    ]
    if augment_note:
        out.append(augment_note[0].upper() + augment_note[1:] + ".")
    if quick:
        out.insert(0, f"**--quick smoke test ({' '.join(QUICK)}): these figures are not evidence.**")
    return out


def comparisons(finals: dict, default_pairs: dict, augment: str) -> list[dict]:
    """The issue's headline comparisons, each for the recipes that ran."""
    out = [{"title": "over-refusal change of the default (RL − SFT)", "kind": "change", "metric": "over_refusal_rate",
            "figures": paired_figures(default_pairs, "over_refusal_rate")}]
    for ablation, metric in (("safety-only", "over_refusal_rate"), ("capability-only", "unsafe_compliance_rate"),
                             (augment, "jailbreak_success_rate")):
        if ablation in finals:
            out.append({"title": f"{ablation} − {DEFAULT}, final RL", "kind": "versus", "metric": metric,
                        "before": DEFAULT, "after": ablation,
                        "figures": versus_figures(finals[ablation], finals[DEFAULT], metric)})
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--recipes", nargs="+", help="the ablations to run (default: all; the default recipe "
                        "always runs): safety-only capability-only grpo augment (or no-augment), or names given "
                        "with --add")
    parser.add_argument("--add", nargs="+", action="append", default=[], metavar="ARG",
                        help="NAME CONFIG [KEY=VALUE ...]: another ablation, a recipe with overrides (repeatable)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="overrides for every run")
    parser.add_argument("--quick", action="store_true", help=f"smoke test: {' '.join(QUICK)}; results go to "
                        "RUNS/results.md, not docs/results.md")
    parser.add_argument("--runs", type=Path, help="runs directory (default: runs/evidence, runs/evidence-quick)")
    parser.add_argument("--skip-existing", action="store_true", help="reuse runs that finished with the same "
                        "config; continue interrupted ones from their checkpoint (default: run everything again)")
    parser.add_argument("--doc", type=Path, help="markdown file whose evidence section is regenerated "
                        "(default: docs/results.md; RUNS/results.md with --quick)")
    parser.add_argument("--json", type=Path, help="all figures (default: bench/results/evidence.json; "
                        "RUNS/evidence.json with --quick)")
    args = parser.parse_args()
    if any(len(add) < 2 for add in args.add):
        parser.error("--add needs a name and a recipe, then optional overrides")
    args.runs = (args.runs or ROOT / "runs" / ("evidence-quick" if args.quick else "evidence")).resolve()
    args.doc = args.doc or (args.runs / "results.md" if args.quick else ROOT / "docs" / "results.md")
    args.json = args.json or (args.runs / "evidence.json" if args.quick else ROOT / "bench" / "results" /
                              "evidence.json")
    args.common = [*(QUICK if args.quick else ()), *args.set]
    return args


def choose_recipes(args: argparse.Namespace) -> tuple[list[Recipe], Recipe, str]:
    """The default first, then the chosen ablations; the augmentation ablation and what it means."""
    from cosmo.config import load_config

    augment, note = augmentation_recipe(load_config(ROOT / RECIPES[0].config, args.common).data.augment)
    known = {r.name: r for r in [*RECIPES, augment]}
    for name, config, *overrides in args.add:
        known[name] = Recipe(name, rel(config), tuple(overrides))
    chosen = args.recipes if args.recipes is not None else [n for n in known if n != DEFAULT]
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise SystemExit(f"evidence: unknown recipe(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[DEFAULT], *(known[n] for n in dict.fromkeys(chosen) if n != DEFAULT)], augment, note


def main() -> int:
    args = parse_args()
    warn_outside_loopback(TAG)
    recipes, augment, augment_note = choose_recipes(args)
    started = time.perf_counter()
    records, finals, sfts, descriptions = [], {}, {}, {}
    total = len(args.seeds) * len(recipes)
    for seed in args.seeds:
        default_run = None
        for recipe in recipes:
            run, sft_label = plan_run(recipe, seed, args.runs, args.common, default_run)
            records.append(execute(run, args.runs, args.skip_existing, f"{len(records) + 1}/{total}"))
            sfts.setdefault(recipe.name, {})[seed] = (read_report(args.runs / (run.sft_from or run.name), sft_label)
                                                      if sft_label else None)
            finals.setdefault(recipe.name, {})[seed] = read_report(args.runs / run.name, run.stages[-1])
            descriptions[recipe.name] = describe(recipe, run)
            default_run = run if recipe.name == DEFAULT else default_run
    pairs = {name: {s: (sfts[name][s], finals[name][s]) for s in args.seeds if sfts[name][s] is not None}
             for name in finals}
    evidence = {
        "commit": commit(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seeds": args.seeds,
        "command": "deploy/loopback.sh " + shlex.join(["python", "bench/evidence.py", *sys.argv[1:]]),
        "json": rel(args.json), "notes": notes(augment_note if augment in recipes else None, args.quick),
        "runs": records,
        "recipes": {r.name: {"config": r.config, "overrides": list(r.overrides), "description": descriptions[r.name],
                             "metrics": recipe_figures(pairs[r.name])} for r in recipes},
        "comparisons": comparisons(finals, pairs[DEFAULT], augment.name),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(evidence, indent=1) + "\n")
    write_section(args.doc, TAG, render_section(evidence))
    ran = sum(not r["reused"] for r in records)
    print(f"[{TAG}] {len(records)} runs ({ran} run, {len(records) - ran} reused) over seeds {args.seeds} in "
          f"{time.perf_counter() - started:.0f} s; figures: {rel(args.json)}; tables: {rel(args.doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
