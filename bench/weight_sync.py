"""Weight-sync time and its share of the RL step, per transport, side by side in one run.

For each model preset (small: the default recipe's; medium: ~4x the parameters) and each transport in
`cosmo.weights.TRANSPORTS`, runs a short RL stage of the default recipe (real 2-rank learner, real
vLLM engines, real reward pool) and reads `time/sync` and `time/step` from its metrics (step 1,
the engines' warm-up, excluded). Run it alone on the machine, inside the loopback namespace:

    deploy/loopback.sh .venv/bin/python bench/weight_sync.py [--steps 5] [--repeats 1] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from cosmo.config import load_config
from cosmo.data import build_dataset, corpus_texts
from cosmo.driver.rl import run_rl
from cosmo.driver.tracking import RunTracker
from cosmo.models import build_tiny_model
from cosmo.weights import TRANSPORTS

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = "object_store"
LOGPROB_TOLERANCE = 1e-4


def run(model: Path, data: Path, out: Path, transport: str, steps: int, overrides: list[str]) -> list[dict]:
    cfg = load_config(ROOT / "configs" / "tiny-cpu.yaml", [
        f"model.path={model}", "model.build_preset=null", f"data.dir={data}", f"logging.runs_dir={out}",
        f"logging.run_name={transport}", "logging.wandb_mode=disabled", f"rl.steps={steps}",
        "logging.log_every=1000", "logging.samples_every=0", f"rollout.weight_transport={transport}", *overrides,
    ])
    tracker = RunTracker(cfg)
    try:
        run_rl(cfg, tracker, str(model), str(data / cfg.data.train_file))
    finally:
        tracker.close()
    records = [json.loads(line) for line in (tracker.dir / "metrics.jsonl").read_text().splitlines()]
    steps_ = [r for r in records if r["stage"] == "rl"]
    if not all(r["sync/digest_match"] == 1.0 for r in steps_):
        raise SystemExit(f"{transport}: an engine loaded other weights than the learner sent")
    # the engines really sample with the synced weights: the learner recomputes their log-probs
    # (tests/test_rl.py's bound; measured ~1e-7 in fp32)
    gaps = [r["train/logprob_gap"] for r in steps_]
    if not all(g < LOGPROB_TOLERANCE for g in gaps):
        raise SystemExit(f"{transport}: engine and learner log-probs differ after a sync: {gaps}")
    return steps_[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["small", "medium"])
    parser.add_argument("--steps", type=int, default=5, help="RL steps per run (the first is excluded)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per transport, order alternated")
    parser.add_argument("overrides", nargs="*", help="key=value overrides on configs/tiny-cpu.yaml")
    args = parser.parse_args()

    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False)
    table: dict[str, dict[str, dict[str, list[float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = build_dataset(Path(tmp) / "data", seed=0, train_per_task=16, eval_per_task=2)["train"].parent
        for preset in args.presets:
            model = build_tiny_model(Path(tmp) / preset, preset=preset, seed=0, corpus=corpus_texts())
            table[preset] = {t: {"sync": [], "load": [], "step": []} for t in TRANSPORTS}
            for r in range(args.repeats):
                order = sorted(TRANSPORTS) if r % 2 == 0 else sorted(TRANSPORTS, reverse=True)
                for transport in order:
                    out = Path(tmp) / f"{preset}-{transport}-{r}"
                    for rec in run(model, data, out, transport, args.steps, args.overrides):
                        cell = table[preset][transport]
                        cell["sync"].append(rec["time/sync"])
                        cell["load"].append(rec["sync/load_s"])
                        cell["step"].append(rec["time/step"])
    ray.shutdown()
    print(f"{args.steps} RL steps per run (first excluded) x {args.repeats} run(s) per transport; every "
          f"sync's digest matched in every engine, engine vs learner log-prob gap < {LOGPROB_TOLERANCE:g}")
    print(f"{'preset':8s} {'transport':13s} {'sync s':>8s} {'load s':>8s} {'step s':>8s} {'sync share':>10s}")
    for preset, cells in table.items():
        for transport, cell in cells.items():
            sync, load, step = (statistics.mean(cell[k]) for k in ("sync", "load", "step"))
            print(f"{preset:8s} {transport:13s} {sync:8.3f} {load:8.3f} {step:8.2f} {100 * sync / step:9.1f} %")
        base = statistics.mean(cells[DEFAULT]["sync"])
        for transport, cell in cells.items():
            if transport != DEFAULT:
                print(f"{preset:8s} {transport} / {DEFAULT} sync time: {statistics.mean(cell['sync']) / base:.2f}x")


if __name__ == "__main__":
    main()
