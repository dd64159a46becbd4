"""RL step time of `rl.mode=async` against `rl.mode=sync` at the same config (target: <= 0.7x).

Runs the default recipe's RL stage twice in one Ray session, sync first and async second (then
again in the other order with --repeats 2), same model, data, seed and step count, and compares
the mean wall time per step (`time/step`) over the steps after the first two (engine warm-up).
Start Ray inside the loopback-only namespace, alone on the machine:

    deploy/loopback.sh .venv/bin/python bench/async_vs_sync.py --model runs/tiny-cpu/checkpoints/sft/step_400
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 2


def run_mode(mode: str, model: str, out: Path, steps: int, overrides: list[str]) -> list[dict]:
    from cosmo.config import load_config
    from cosmo.driver.rl import run_rl
    from cosmo.driver.tracking import RunTracker

    cfg = load_config(ROOT / "configs" / "tiny-cpu.yaml", [
        f"model.path={model}", "model.build_preset=null", f"logging.runs_dir={out}", f"logging.run_name={mode}",
        "logging.wandb_mode=disabled", f"rl.steps={steps}", f"rl.mode={mode}", "logging.log_every=1000",
        *overrides,
    ])
    tracker = RunTracker(cfg)
    try:
        run_rl(cfg, tracker, model, str(Path(cfg.data.dir) / cfg.data.train_file))
    finally:
        tracker.close()
    lines = (tracker.dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["stage"] == "rl"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="an HF checkpoint, e.g. the default run's SFT checkpoint")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=1, help="2: also run async first, then sync")
    parser.add_argument("overrides", nargs="*", help="key=value overrides on configs/tiny-cpu.yaml")
    args = parser.parse_args()

    import ray

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    step_s: dict[str, list[float]] = {"sync": [], "async": []}
    parts: dict[str, dict[str, list[float]]] = {"sync": {}, "async": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            order = ("sync", "async") if r % 2 == 0 else ("async", "sync")
            for mode in order:
                records = run_mode(mode, args.model, Path(tmp) / f"{mode}{r}", args.steps, args.overrides)[WARMUP:]
                step_s[mode] += [x["time/step"] for x in records]
                for key in ("time/rollout", "time/rollout_wait", "time/reward", "time/train", "time/sync"):
                    parts[mode].setdefault(key, []).extend(x[key] for x in records)
    ray.shutdown()
    print(f"{args.steps} RL steps per run x {args.repeats} run(s) per mode; first {WARMUP} steps of each run excluded")
    print(f"{'':18s} {'sync':>8s} {'async':>8s}")
    for key in parts["sync"]:
        print(f"{key:18s} {statistics.mean(parts['sync'][key]):8.3f} {statistics.mean(parts['async'][key]):8.3f}")
    sync, overlap = statistics.mean(step_s["sync"]), statistics.mean(step_s["async"])
    print(f"{'time/step':18s} {sync:8.3f} {overlap:8.3f}")
    print(f"async / sync step time: {overlap / sync:.2f}x (target <= 0.7x)")


if __name__ == "__main__":
    main()
