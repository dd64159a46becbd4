"""How an RL step's cost grows with model size and response length: time, throughput, peak memory.

For each model preset (small ~1M, medium ~4M, large20m ~20M params) and each response length, runs
`cosmo train configs/tiny-cpu.yaml train.stages=[rl]` in a subprocess for a few steps (random-init
model, so responses run to the length limit; no eval), in one invocation, and reports per config:
the median step time and its parts (rollout, reward, train, weight sync; step 1 excluded as warm-up),
rollout and learner tokens/s, and the RSS high-water mark (VmHWM) of the learner-rank and rollout-actor
processes, read from /proc while the run goes. Writes scaling.csv, scaling.md and scaling.png to --out.
Ray needs the loopback-only namespace; run it alone on the machine (other load skews every figure):

    deploy/loopback.sh .venv/bin/python bench/scaling.py --out runs/bench-scaling
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import threading
import time
from pathlib import Path

import psutil
from launch import ROOT, start_train
from metrics import rl_steps

PRESETS = ("small", "medium", "large20m")
# Ray titles each actor's worker process "ray::<Class>[.<method>]"
ROLES = {"learner": "ray::LearnerRank", "rollout": "ray::RolloutWorker"}
# ~20M params (19.8M: text 6 x 384, vision 4 x 256), for this bench until cosmo.models.tiny ships a
# "large20m" preset of its own; only this process builds it.
LARGE20M = {
    "text": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6, num_key_value_heads=2,
                 intermediate_size=1536, mrope_section=[8, 12, 12]),
    "vision": dict(depth=4, hidden_size=256, num_heads=4, intermediate_size=1024, fullatt_block_indexes=[1, 3]),
    "params_range": (18e6, 22e6),
}


class PeakRss(threading.Thread):
    """Polls the process tree under `root` and keeps each actor process's VmHWM (the kernel's RSS
    high-water mark, so a peak between two polls is not missed while the process lives)."""

    def __init__(self, root: int, every_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.root, self.every_s = root, every_s
        self.peaks: dict[int, tuple[str, int]] = {}  # pid -> (role, VmHWM bytes)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            try:
                children = psutil.Process(self.root).children(recursive=True)
            except psutil.NoSuchProcess:
                return
            for proc in children:
                try:
                    title = " ".join(proc.cmdline())
                    role = next((r for r, prefix in ROLES.items() if title.startswith(prefix)), None)
                    if role is not None:
                        self.peaks[proc.pid] = (role, max(self.peaks.get(proc.pid, (role, 0))[1], vm_hwm(proc.pid)))
                except (psutil.Error, OSError):  # the process ended between listing and reading
                    continue

    def peak(self, role: str) -> int:
        """The largest high-water mark among this role's processes (one rank or one engine), bytes."""
        return max((b for r, b in self.peaks.values() if r == role), default=0)


def vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def build_assets(out: Path) -> dict[str, Path]:
    """The built-in dataset (small) and one random-init checkpoint per preset, built once under `out`."""
    from cosmo.data import build_dataset, corpus_texts
    from cosmo.models import PRESETS as MODEL_PRESETS
    from cosmo.models import build_tiny_model

    if not (out / "data" / "train.jsonl").is_file():
        build_dataset(out / "data", seed=0, train_per_task=40, eval_per_task=5)
    MODEL_PRESETS.setdefault("large20m", LARGE20M)
    models = {}
    for preset in PRESETS:
        path = out / f"model-{preset}"
        if not (path / "config.json").is_file():
            build_tiny_model(path, preset=preset, seed=0, corpus=corpus_texts())
        models[preset] = path
    return models


def summarize(records: list[dict]) -> dict:
    """Per-step medians: on a shared machine one step slowed by another process moves a mean, not a median."""

    def median(key: str) -> float:
        return statistics.median(r[key] for r in records)

    return {
        "steps_measured": len(records), "response_len": median("response/length_mean"), "step_s": median("time/step"),
        "rollout_s": median("time/rollout_wait"), "reward_s": median("time/reward"), "train_s": median("time/train"),
        "sync_s": median("time/sync"), "rollout_tok_s": median("rollout/tokens_per_s"),
        # response tokens the learner trained on (all ranks) per second of the train call
        "learner_tok_s": statistics.median(r["train/tokens"] / r["time/train"] for r in records),
    }


def run_config(out: Path, model: Path, new_tokens: int, steps: int, prompts: int) -> dict:
    """One short RL run in its own process (its own Ray cluster); its step records and peak memory."""
    name = f"{model.name.removeprefix('model-')}-{new_tokens}"
    overrides = [
        f"model.path={model}", "model.build_preset=null", f"data.dir={out / 'data'}", "data.build_if_missing=false",
        "data.rl_per_task=0",  # the bench's own small data has no RL pool: RL draws from its train file
        f"data.max_length={new_tokens + 160}", "train.stages=[rl]", f"rl.steps={steps}",
        f"rl.prompts_per_step={prompts}", f"rl.micro_batch_size={prompts * 4}", "rl.mode=sync",
        f"rollout.max_new_tokens={new_tokens}", f"rollout.max_model_len={new_tokens + 192}", "eval.enabled=false",
        f"logging.runs_dir={out / 'runs'}", f"logging.run_name={name}", "logging.wandb_mode=disabled",
        "logging.samples_every=0", "logging.log_every=1",
    ]
    run_dir = out / "runs" / name
    (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    started = time.perf_counter()
    proc = start_train(ROOT / "configs" / "tiny-cpu.yaml", overrides, out / f"{name}.log")
    poller = PeakRss(proc.pid)
    poller.start()
    rc = proc.wait()
    poller.done.set()
    poller.join()
    if rc != 0:
        raise RuntimeError(f"{name}: `cosmo train` exited {rc}; see {out / f'{name}.log'}")
    row = summarize(rl_steps(run_dir))
    params = json.loads((model / "cosmo_model.json").read_text())["params"]["total"]
    return {"preset": model.name.removeprefix("model-"), "params_m": params / 1e6, "new_tokens": new_tokens, **row,
            "learner_peak_mib": poller.peak("learner") / 2**20, "rollout_peak_mib": poller.peak("rollout") / 2**20,
            "wall_s": time.perf_counter() - started}


COLUMNS = [("preset", "preset", "{}"), ("params_m", "params (M)", "{:.1f}"), ("new_tokens", "max new tokens", "{}"),
           ("response_len", "response tokens", "{:.0f}"), ("step_s", "step s", "{:.2f}"),
           ("rollout_s", "rollout s", "{:.2f}"), ("reward_s", "reward s", "{:.3f}"), ("train_s", "train s", "{:.2f}"),
           ("sync_s", "sync s", "{:.3f}"), ("rollout_tok_s", "rollout tok/s", "{:,.0f}"),
           ("learner_tok_s", "learner tok/s", "{:,.0f}"), ("learner_peak_mib", "learner peak RSS MiB", "{:,.0f}"),
           ("rollout_peak_mib", "rollout peak RSS MiB", "{:,.0f}"), ("wall_s", "run wall s", "{:.0f}")]


def write_table(rows: list[dict], out: Path, note: str) -> str:
    with open(out / "scaling.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[c[0] for c in COLUMNS])
        writer.writeheader()
        writer.writerows({k: r[k] for k, _, _ in COLUMNS} for r in rows)
    lines = [note, "", "| " + " | ".join(c[1] for c in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt.format(r[k]) for k, _, fmt in COLUMNS) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    (out / "scaling.md").write_text(text)
    return text


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib  # noqa: PLC0415 - only for the figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    labels = [f"{r['preset']}\n{r['params_m']:.0f}M, {r['new_tokens']} tok" for r in rows]
    x = range(len(rows))
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(17, 5))
    bottom = [0.0] * len(rows)
    for key, name in (("rollout_s", "rollout"), ("reward_s", "reward"), ("train_s", "train"), ("sync_s", "sync")):
        ax1.bar(x, [r[key] for r in rows], bottom=bottom, label=name)
        bottom = [b + r[key] for b, r in zip(bottom, rows, strict=True)]
    ax1.set(title="median RL step time by stage", ylabel="seconds")
    ax1.legend()
    width = 0.4
    ax2.bar([i - width / 2 for i in x], [r["rollout_tok_s"] for r in rows], width, label="rollout (generated)")
    ax2.bar([i + width / 2 for i in x], [r["learner_tok_s"] for r in rows], width, label="learner (trained)")
    ax2.set(title="response tokens per second", yscale="log")
    ax2.legend()
    ax3.bar([i - width / 2 for i in x], [r["learner_peak_mib"] for r in rows], width, label="learner rank")
    ax3.bar([i + width / 2 for i in x], [r["rollout_peak_mib"] for r in rows], width, label="rollout actor")
    ax3.set(title="peak RSS per process (VmHWM)", ylabel="MiB")
    ax3.legend()
    for ax in (ax1, ax2, ax3):
        ax.set_xticks(list(x), labels, fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench-scaling", help="assets, run directories and results")
    parser.add_argument("--steps", type=int, default=4, help="RL steps per config (step 1 is excluded)")
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step (x 8 samples each)")
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[48, 128], help="response lengths to compare")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--cached-only", action="store_true", help="tabulate the configs measured so far "
                        "(OUT/rows/*.json); run none")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    models = build_assets(out)
    rows = []
    for preset in args.presets:
        for tokens in args.new_tokens:
            cached = out / "rows" / f"{preset}-{tokens}.json"
            if cached.is_file():  # measured by an earlier invocation that stopped before the table
                rows.append(json.loads(cached.read_text()))
                continue
            if args.cached_only:
                continue
            try:
                row = run_config(out, models[preset], tokens, args.steps, args.prompts)
            except RuntimeError as exc:  # e.g. Ray's GCS not up in time on a loaded machine: one more try
                print(f"{exc}; retrying once", flush=True)
                row = run_config(out, models[preset], tokens, args.steps, args.prompts)
            cached.parent.mkdir(exist_ok=True)
            cached.write_text(json.dumps(row))
            rows.append(row)
            print(f"{preset} {tokens} tokens: step {row['step_s']:.2f} s ({row['wall_s']:.0f} s run)", flush=True)
    note = (f"medians over {args.steps - 1} RL steps per config (step 1 excluded), {args.prompts} prompts x 8 samples, "
            "2 learner "
            f"ranks (ZeRO-2, fp32), 2 vLLM rollout actors, sync mode, {os.cpu_count()} CPU(s), "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(write_table(rows, out, note))
    plot(rows, out)
    print(f"written: {out / 'scaling.csv'}, {out / 'scaling.md'}, {out / 'scaling.png'}")


if __name__ == "__main__":
    main()
