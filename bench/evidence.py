"""A recipe and its ablations over several seeds: what RL changes, with intervals and paired tests.

Two families (--family): `tiny`, the default recipe (configs/tiny-cpu.yaml) with the safety-only,
capability-only, GRPO and data-augmentation ablations; `smollm2`, the real-model recipe (configs/smollm2.yaml:
SmolLM2-135M-Instruct converted once and shared by every run, the `world` data, stages sft, rl_general,
rl_mixed) with the safety-only and capability-only ablations (configs/smollm2-*.yaml).
Per seed, the family's default recipe runs in full (SFT, then RL); each ablation that changes only the RL part
(rewards, algorithm) starts its RL from that seed's SFT checkpoint, and one that changes what SFT sees (data
augmentation) runs its own SFT. Then, per recipe and metric, the SFT value, the final RL value and the change as
means over seeds with a 95 % t-interval, per seed the counts and the exact McNemar test, and the family's
headline comparisons (for smollm2 also the refusal-rate gap between harmful rows and their benign look-alikes);
written as a JSON of every figure and as the family's marked section of docs/results.md. Start it inside the
loopback-only namespace, alone on the machine (tiny: about 20 min per seed on 2 CPU cores):

    deploy/loopback.sh .venv/bin/python bench/evidence.py --seeds 0 1 2
    deploy/loopback.sh .venv/bin/python bench/evidence.py --quick --seeds 0 1   # smoke test, minutes
    deploy/loopback.sh .venv/bin/python bench/evidence.py --family smollm2 --seeds 0 1 2
    .venv/bin/python bench/evidence.py --family smollm2 --dry-run              # the commands, nothing run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from evidence_tables import gap_figures, paired_figures, recipe_figures, render_section, versus_figures
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


@dataclass(frozen=True)
class Recipe:
    name: str
    config: str
    overrides: tuple[str, ...] = ()


OVER_REFUSAL, UNSAFE = "over_refusal_rate", "unsafe_compliance_rate"


@dataclass(frozen=True)
class Family:
    """A default recipe and its ablations: what runs, what is compared, where the results go."""

    default: Recipe
    ablations: tuple[Recipe, ...]
    tag: str  # the marked section of docs/results.md, the runs directory, bench/results/<tag>.json
    quick: tuple[str, ...]  # --quick's overrides: sizes this recipe's data profile accepts
    seed_note: str  # what the seed changes in this family
    changes: tuple[tuple[str, str], ...]  # headlines of the default: (the eval its final RL is compared with, metric)
    versus: tuple[tuple[str, str], ...]  # headlines: (ablation, metric), its final RL against the default's
    augment_metric: str | None = None  # the data-augmentation ablation's headline metric; None: no such ablation
    refusal_gap: bool = False  # the refusal-rate gap table (harmful rows vs their benign look-alikes)
    notes: tuple[str, ...] = ()


ABLATION_HEADLINES = (("safety-only", OVER_REFUSAL), ("capability-only", UNSAFE))
FAMILIES = {
    "tiny": Family(
        Recipe("default", "configs/tiny-cpu.yaml"),
        (Recipe("safety-only", "configs/ablation-safety-only.yaml"),
         Recipe("capability-only", "configs/ablation-capability-only.yaml"),
         Recipe("grpo", "configs/ablation-grpo.yaml")),
        "evidence", QUICK,
        "The seed (`seed=S`) sets the start model's initial weights (one tiny model per seed), the data order and "
        "the sampling.",
        (("SFT", OVER_REFUSAL),), ABLATION_HEADLINES, augment_metric="jailbreak_success_rate"),
    "smollm2": Family(
        Recipe("smollm2", "configs/smollm2.yaml"),
        (Recipe("safety-only", "configs/smollm2-safety-only.yaml"),
         Recipe("capability-only", "configs/smollm2-capability-only.yaml")),
        "evidence-smollm2",
        ("data.train_per_task=8", "data.rl_per_task=16", "data.eval_per_task=10", "sft.steps=4",
         "train.stage_configs.rl_general.rl.steps=2", "train.stage_configs.rl_mixed.rl.steps=2",
         "rollout.max_new_tokens=16", "eval.max_new_tokens=16"),
        "The seed (`seed=S`) sets the data order and the sampling: the start model is SmolLM2-135M-Instruct, "
        "converted once (`model.convert`) into the recipe's `model.path` and shared by every run, and the SFT "
        "targets are distilled from it once, into the data directory.",
        (("SFT", OVER_REFUSAL), ("SFT", UNSAFE), ("start", UNSAFE)), ABLATION_HEADLINES, refusal_gap=True,
        notes=("This family runs no GRPO and no data-augmentation ablation: only the reward weights are ablated.",
               "The RL-only ablations run the RL stages (rl_general, then rl_mixed) from the SFT checkpoint with "
               "`model.convert=null`, `data.distill=false` (no SFT stage reads distilled targets) and only their "
               "own stages in `eval.stages`; rl_general is never evaluated (the recipe's eval.stages).",
               "The world data has no jailbreak rows: jailbreak_success_rate is left out.")),
}
# sections only the RL stage reads: a recipe that differs from the default nowhere else can start its RL from
# the default's SFT checkpoint
RL_ONLY_SECTIONS = {"rl", "rollout", "reward", "algorithm", "train", "logging", "checkpoint", "cluster", "resume"}


def augmentation_recipe(config: str, default_augments: bool) -> tuple[Recipe, str]:
    """The data-augmentation ablation: the default with `data.augment` flipped, and what the comparison means."""
    if default_augments:
        return (Recipe("no-augment", config, ("data.augment=false",)),
                "the default recipe augments its data (data.augment=true); the no-augmentation ablation is "
                "`no-augment` (data.augment=false), with its own SFT")
    return (Recipe("augment", config, ("data.augment=true",)),
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


def execute(run: Run, tag: str, runs_dir: Path, skip_existing: bool, position: str) -> dict:
    """Run (or, with --skip-existing, reuse or continue) one training; its record for the JSON."""
    seconds = train_once(tag, run.name, ROOT / run.recipe.config, run.overrides, runs_dir, skip_existing=skip_existing,
                         position=position)
    return {"name": run.name, "recipe": run.recipe.name, "seed": run.seed, "command": run.command,
            "sft_from": run.sft_from, "seconds": None if seconds is None else round(seconds, 1),
            "reused": seconds is None}


def base_overrides(recipe: Recipe, seed: int, runs_dir: Path, common: list[str], build: bool = True) -> list[str]:
    """Every run: the recipe's own overrides, the common ones, the seed, its run directory, the pinned data (built
    unless `build` is false) and the seed's start model."""
    over = [*recipe.overrides, *common, f"seed={seed}", f"logging.runs_dir={rel(runs_dir)}",
            f"logging.run_name={recipe.name}-s{seed}", "logging.wandb_mode=disabled"]
    config = ROOT / recipe.config
    data = pinned_data(config, over, runs_dir / "data", DATA_SEED, build=build)
    return [*over, *data, *start_model(config, over, runs_dir / "models", seed)]


def rl_only_overrides(cfg, over: list[str], rl: list[str], checkpoint: str) -> list[str]:
    """`over` changed to run only the RL stages `rl` from `checkpoint`: no start model to build or convert, no SFT
    targets to distill (no SFT stage reads them), and only the stages that run in `eval.stages` (which must name
    stages of train.stages)."""
    evaluated = [] if cfg.eval.stages is None else [f"eval.stages=[{','.join(s for s in cfg.eval.stages if s in rl)}]"]
    unmade = [key for key, on in (("model.convert=null", cfg.model.convert), ("data.distill=false", cfg.data.distill))
              if on]
    return [*(o for o in over if not o.startswith("model.path=")), f"train.stages=[{','.join(rl)}]",
            f"model.path={checkpoint}", "model.build_preset=null", *unmade, *evaluated]


def sft_checkpoint(runs_dir: Path, default_run: Run, label: str, dry_run: bool) -> str:
    """The default run's SFT checkpoint, as its evaluation report names it; a placeholder in a dry run, where that
    run has not been made."""
    if dry_run:
        return f"<{label} checkpoint of {default_run.name}>"
    return rel(read_report(runs_dir / default_run.name, label)["model"])


def plan_run(recipe: Recipe, seed: int, runs_dir: Path, common: list[str], default_run: Run | None,
             dry_run: bool = False) -> tuple[Run, str | None]:
    """The seed's run of a recipe, and the eval label of its SFT model: the default and any recipe that changes
    what SFT reads run every stage; the others run their RL stages from the seed's default SFT checkpoint."""
    from cosmo.config import load_config

    over = base_overrides(recipe, seed, runs_dir, common, build=not dry_run)
    cfg = load_config(ROOT / recipe.config, over)
    sft, rl = split_stages(cfg.train.stages)
    run = Run(f"{recipe.name}-s{seed}", recipe, seed, over, list(cfg.train.stages))
    if default_run is None or not (sft and rl):
        return run, sft[-1] if sft else None
    if not own_sft(load_config(ROOT / default_run.recipe.config, default_run.overrides), cfg):
        run.overrides = rl_only_overrides(cfg, over, rl, sft_checkpoint(runs_dir, default_run, sft[-1], dry_run))
        run.stages, run.sft_from = rl, default_run.name
    return run, sft[-1]


def plan_seed(recipes: Sequence[Recipe], seed: int, runs_dir: Path, common: list[str], dry_run: bool = False
              ) -> Iterator[tuple[Run, str | None]]:
    """One seed's runs in order, the default (the first recipe) first, each with the eval label of its SFT model.
    A generator: an ablation that starts from the default's SFT checkpoint is planned only once the caller has
    made the default run (a dry run plans them all at once, with a placeholder for that checkpoint)."""
    default_run = None
    for recipe in recipes:
        run, sft_label = plan_run(recipe, seed, runs_dir, common, default_run, dry_run)
        yield run, sft_label
        default_run = default_run or run


def describe(run: Run, default: str) -> str:
    recipe = run.recipe
    what = f"`{recipe.config}`" + (f" with `{' '.join(recipe.overrides)}`" if recipe.overrides else "")
    if run.sft_from:
        return f"{what}; RL only ({', '.join(run.stages)}), from the same seed's `{default}` SFT checkpoint"
    return f"{what}; its own SFT, then RL ({', '.join(run.stages)})"


def notes(family: Family, augment_note: str | None, quick: bool) -> list[str]:
    out = [
        f"The held-out data is the same in every run: the built-in set is built once, with seed {DATA_SEED}, into the "
        "runs directory (`data.dir`), so every paired test (RL vs SFT, ablation vs default) compares the same rows. "
        + family.seed_note,
        "An ablation that changes only the RL part starts from the same seed's default SFT checkpoint, so its SFT "
        "column is the default's; one that changes anything SFT reads runs its own SFT.",
        *family.notes,
    ]
    if augment_note:
        out.append(augment_note[0].upper() + augment_note[1:] + ".")
    if quick:
        out.insert(0, f"**--quick smoke test ({' '.join(family.quick)}): these figures are not evidence.**")
    return out


def comparisons(family: Family, finals: dict, baselines: dict[str, dict], augment: Recipe | None) -> list[dict]:
    """The issue's headline comparisons, each for the recipes that ran and the metrics the reports have.
    `baselines`: eval label (`SFT`, `start`) -> seed -> (that report, final RL report) of the default."""
    default = family.default.name
    out = [{"title": f"{metric.removesuffix('_rate').replace('_', '-')} change of the {default} (RL − {label})",
            "kind": "change", "metric": metric, "figures": paired_figures(baselines[label], metric)}
           for label, metric in family.changes]
    versus = [*family.versus, *([(augment.name, family.augment_metric)] if augment else [])]
    out += [{"title": f"{ablation} − {default}, final RL", "kind": "versus", "metric": metric, "before": default,
             "after": ablation, "figures": versus_figures(finals[ablation], finals[default], metric)}
            for ablation, metric in versus if ablation in finals]
    return [c for c in out if c["figures"]["seeds"]]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=FAMILIES, default="tiny", help="the default recipe and its ablations: "
                        "tiny (configs/tiny-cpu.yaml) or smollm2 (configs/smollm2.yaml)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--recipes", nargs="+", help="the ablations to run (default: all of the family's; its "
                        "default recipe always runs): tiny: safety-only capability-only grpo augment (or "
                        "no-augment); smollm2: safety-only capability-only; or names given with --add")
    parser.add_argument("--add", nargs="+", action="append", default=[], metavar="ARG",
                        help="NAME CONFIG [KEY=VALUE ...]: another ablation, a recipe with overrides (repeatable)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="overrides for every run")
    parser.add_argument("--quick", action="store_true", help="smoke test: "
                        + "; ".join(f"{name}: {' '.join(f.quick)}" for name, f in FAMILIES.items())
                        + "; results go to RUNS/results.md, not docs/results.md")
    parser.add_argument("--dry-run", action="store_true", help="print each planned run's command and exit: "
                        "nothing is built or trained (an RL-only ablation shows a placeholder for its checkpoint)")
    parser.add_argument("--runs", type=Path, help="runs directory (default: runs/TAG, runs/TAG-quick; TAG: evidence "
                        "for tiny, evidence-smollm2 for smollm2)")
    parser.add_argument("--skip-existing", action="store_true", help="reuse runs that finished with the same "
                        "config; continue interrupted ones from their checkpoint (default: run everything again)")
    parser.add_argument("--doc", type=Path, help="markdown file whose section TAG is regenerated "
                        "(default: docs/results.md; RUNS/results.md with --quick)")
    parser.add_argument("--json", type=Path, help="all figures (default: bench/results/TAG.json; "
                        "RUNS/evidence.json with --quick)")
    args = parser.parse_args()
    if any(len(add) < 2 for add in args.add):
        parser.error("--add needs a name and a recipe, then optional overrides")
    tag = FAMILIES[args.family].tag
    args.runs = (args.runs or ROOT / "runs" / (f"{tag}-quick" if args.quick else tag)).resolve()
    args.doc = args.doc or (args.runs / "results.md" if args.quick else ROOT / "docs" / "results.md")
    args.json = args.json or (args.runs / "evidence.json" if args.quick else ROOT / "bench" / "results" /
                              f"{tag}.json")
    args.common = [*(FAMILIES[args.family].quick if args.quick else ()), *args.set]
    return args


def choose_recipes(args: argparse.Namespace, family: Family) -> tuple[list[Recipe], Recipe | None, str | None]:
    """The default first, then the chosen ablations; the augmentation ablation and what it means (None when the
    family has none)."""
    from cosmo.config import load_config

    known = {r.name: r for r in (family.default, *family.ablations)}
    augment, note = None, None
    if family.augment_metric:
        augment, note = augmentation_recipe(family.default.config,
                                            load_config(ROOT / family.default.config, args.common).data.augment)
        known[augment.name] = augment
    for name, config, *overrides in args.add:
        known[name] = Recipe(name, rel(config), tuple(overrides))
    default = family.default.name
    chosen = args.recipes if args.recipes is not None else [n for n in known if n != default]
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise SystemExit(f"evidence: unknown recipe(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[default], *(known[n] for n in dict.fromkeys(chosen) if n != default)], augment, note


def main() -> int:
    args = parse_args()
    family = FAMILIES[args.family]
    recipes, augment, augment_note = choose_recipes(args, family)
    if args.dry_run:
        for seed in args.seeds:
            for run, _ in plan_seed(recipes, seed, args.runs, args.common, dry_run=True):
                print(run.command)
        return 0
    warn_outside_loopback(family.tag)
    started = time.perf_counter()
    records, finals, sfts, starts, descriptions = [], {}, {}, {}, {}
    total = len(args.seeds) * len(recipes)
    default = family.default.name
    for seed in args.seeds:
        for run, sft_label in plan_seed(recipes, seed, args.runs, args.common):
            name = run.recipe.name
            records.append(execute(run, family.tag, args.runs, args.skip_existing, f"{len(records) + 1}/{total}"))
            sfts.setdefault(name, {})[seed] = (read_report(args.runs / (run.sft_from or run.name), sft_label)
                                               if sft_label else None)
            finals.setdefault(name, {})[seed] = read_report(args.runs / run.name, run.stages[-1])
            if name == default:  # an RL-only ablation's start model is the default's SFT checkpoint
                starts[seed] = read_report(args.runs / run.name, "start")
            descriptions[name] = describe(run, default)
    pairs = {name: {s: (sfts[name][s], finals[name][s]) for s in args.seeds if sfts[name][s] is not None}
             for name in finals}
    baselines = {"SFT": pairs[default],
                 "start": {s: (starts[s], finals[default][s]) for s in args.seeds if starts[s] is not None}}
    evidence = {
        "family": args.family, "commit": commit(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seeds": args.seeds,
        "command": "deploy/loopback.sh " + shlex.join(["python", "bench/evidence.py", *sys.argv[1:]]),
        "json": rel(args.json), "notes": notes(family, augment_note if augment in recipes else None, args.quick),
        "runs": records,
        "recipes": {r.name: {"config": r.config, "overrides": list(r.overrides), "description": descriptions[r.name],
                             "metrics": recipe_figures(pairs[r.name])} for r in recipes},
        "comparisons": comparisons(family, finals, baselines, augment if augment in recipes else None),
    }
    if family.refusal_gap:
        evidence["refusal_gap"] = {r.name: gap_figures(pairs[r.name]) for r in recipes}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(evidence, indent=1) + "\n")
    write_section(args.doc, family.tag, render_section(evidence))
    ran = sum(not r["reused"] for r in records)
    print(f"[{family.tag}] {len(records)} runs ({ran} run, {len(records) - ran} reused) over seeds {args.seeds} in "
          f"{time.perf_counter() - started:.0f} s; figures: {rel(args.json)}; tables: {rel(args.doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
