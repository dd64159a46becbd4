"""Launching `cosmo train` from a bench script, shared by scaling.py, evidence.py and stability.py.

Each run is its own subprocess (its own Ray cluster, so one run's leftovers cannot slow the next) with its
output in a log file. The commands are printed as they would be typed from the repository root, so that a
results table can quote them. Start the bench script inside the loopback-only namespace
(`deploy/loopback.sh`), alone on the machine.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# as the Makefile's local runs: no hub downloads, no usage stats, Ray token auth off for the single-node
# local cluster, a small vLLM KV cache on CPU
LOCAL_ENV = {"HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
             "VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
# --quick: a smoke test of a bench script end to end, minutes instead of an hour; its figures mean nothing
QUICK = ("sft.steps=10", "rl.steps=3", "data.train_per_task=40", "data.eval_per_task=10")
# the seed the built-in data of every bench run is built with: one held-out split, so that every paired test
# (RL vs SFT, one recipe vs another, one seed vs another) sees the same rows
DATA_SEED = 0


def rel(path: str | Path) -> str:
    """`path` relative to the repository root when it lies under it (the runs' working directory), else absolute."""
    full = Path(path).resolve()
    return str(full.relative_to(ROOT)) if full.is_relative_to(ROOT) else str(full)


def train_command(config: str | Path, overrides: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "cosmo", "train", rel(config), *overrides]


def shown(command: Sequence[str]) -> str:
    """A command as typed from the repository root (the interpreter as `python`)."""
    return shlex.join(["python" if c == sys.executable else c for c in command])


def start_train(config: str | Path, overrides: Sequence[str], log_path: Path, append: bool = False
                ) -> subprocess.Popen:
    """`cosmo train CONFIG OVERRIDES...` in a subprocess run from the repository root, output to `log_path`
    (after what it holds with `append`, e.g. the failed launch a retry follows)."""
    env = {**LOCAL_ENV, **os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a" if append else "w") as log:
        return subprocess.Popen(train_command(config, overrides), cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)


def run_train(tag: str, name: str, config: str | Path, overrides: Sequence[str], log_path: Path,
              append: bool = False) -> float:
    """Run one training to its end with a progress line when it starts and when it ends; its wall seconds.
    RuntimeError (naming the log and quoting its last line) when it fails."""
    print(f"[{tag}] start {name}: {shown(train_command(config, overrides))}", flush=True)
    started = time.perf_counter()
    rc = start_train(config, overrides, log_path, append).wait()
    seconds = time.perf_counter() - started
    if rc != 0:
        last = next((line for line in reversed(log_path.read_text(errors="replace").splitlines()) if line.strip()), "")
        raise RuntimeError(f"{name}: `cosmo train` exited {rc} after {seconds:.0f} s ({last.strip()[:200]}); "
                           f"see {log_path}")
    print(f"[{tag}] done  {name} in {seconds:.0f} s", flush=True)
    return seconds


def warn_outside_loopback(tag: str) -> None:
    if os.environ.get("COSMO_LOOPBACK") != "1":
        print(f"[{tag}] WARNING: not inside deploy/loopback.sh: Ray may listen on every interface", flush=True)


def split_stages(stages: Sequence[str]) -> tuple[list[str], list[str]]:
    """A recipe's `train.stages` as (SFT stages, RL stages): every stage that is not `sft` counts as RL.
    The one place that knows how stages are named, so that a new stage list needs one change here."""
    return [s for s in stages if s == "sft"], [s for s in stages if s != "sft"]


def pinned_data(config: str | Path, overrides: Sequence[str], data_dir: Path, seed: int, build: bool = True
                ) -> list[str]:
    """The overrides that make every run read the same built-in data of the recipe's `data.profile`: built once
    into `data_dir` with `seed` (the built-in set depends on the seed, and a paired test needs the same held-out
    rows in every run); with `build=False` (a dry run) only the overrides. A recipe with its own data
    (`data.build_if_missing=false`) keeps it: no overrides."""
    from cosmo.config import load_config

    cfg = load_config(config, [*overrides, f"data.dir={data_dir.resolve()}", f"seed={seed}"])
    if not cfg.data.build_if_missing:
        return []
    if build and not (data_dir / cfg.data.train_file).is_file():
        from cosmo.driver.assets import build_data  # imports torch: only when there is data to build

        print(f"building the built-in {cfg.data.profile} data (seed {seed}) in {rel(data_dir)}", flush=True)
        build_data(cfg)
    return [f"data.dir={rel(data_dir)}", "data.build_if_missing=false"]


def start_model(config: str | Path, overrides: Sequence[str], models_dir: Path, seed: int) -> list[str]:
    """A recipe that builds its tiny start model gets one per seed under `models_dir` (the seed sets its
    initial weights, and a shared path would hold whichever seed built it first); a recipe that names a
    checkpoint, or converts one (`model.convert`: the same weights whatever the seed), keeps its `model.path`:
    no overrides, so every run shares the one model that the first run converts."""
    from cosmo.config import load_config

    cfg = load_config(config, overrides)
    if not cfg.model.build_preset:
        return []
    return [f"model.path={rel(models_dir / f'{cfg.model.build_preset}-s{seed}')}"]


def read_report(run_dir: Path, label: str) -> dict | None:
    """A run's eval/<label>.json, None when it has none."""
    path = run_dir / "eval" / f"{label}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def finished(run_dir: Path, stages: Sequence[str]) -> bool:
    """The evaluations a comparison reads are there: the SFT stage's (when the run has one) and the last stage's."""
    sft, _ = split_stages(stages)
    return all(read_report(run_dir, label) is not None for label in [*sft[-1:], stages[-1]])


def same_inputs(run_dir: Path, cfg) -> bool:
    """The run was made with this very config (`resume` aside), so a --quick run is never reused as a full one,
    and from the same start model weights (its start evaluation's fingerprint), so an ablation is not reused after
    the SFT run it starts from was made again."""
    from omegaconf import OmegaConf

    from cosmo.config import to_yaml
    from cosmo.driver.checkpoint_eval import model_fingerprint

    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return False
    a = OmegaConf.to_container(OmegaConf.load(saved))
    b = OmegaConf.to_container(OmegaConf.create(to_yaml(cfg)))
    start = read_report(run_dir, "start")  # none yet: nothing trained either
    return {**a, "resume": None} == {**b, "resume": None} and (
        start is None or start.get("model_fingerprint") == model_fingerprint(cfg.model.path))


def train_once(tag: str, name: str, config: str | Path, overrides: Sequence[str], runs_dir: Path, *,
               skip_existing: bool, position: str = "") -> float | None:
    """Run `name` (logging.run_name, under `runs_dir`) to the end of its stages and evaluations; its wall seconds.

    An earlier run directory of that name is removed first, unless `skip_existing` and it was made with the same
    config and start model: then a finished one is reused (None) and an interrupted one continues from its newest
    checkpoint (`resume=auto`, its evaluations reused). A failed launch continues once from its checkpoint (e.g.
    Ray not up in time on a loaded machine); RuntimeError when that fails too or the run ends without its
    evaluations."""
    from cosmo.config import load_config

    run_dir, cfg = runs_dir / name, load_config(config, overrides)
    label = f"{name} ({position})" if position else name
    resume = skip_existing and run_dir.exists() and same_inputs(run_dir, cfg)
    if resume and finished(run_dir, cfg.train.stages):
        print(f"[{tag}] reuse {label}: finished in {rel(run_dir)}", flush=True)
        return None
    if run_dir.exists() and not resume:
        if skip_existing:
            print(f"[{tag}] {label}: {rel(run_dir)} was made with another config or start model; running it again",
                  flush=True)
        shutil.rmtree(run_dir)
    log = runs_dir / f"{name}.log"
    try:
        seconds = run_train(tag, label, config, [*overrides, *(["resume=auto"] if resume else [])], log)
    except RuntimeError as exc:
        print(f"[{tag}] {exc}; continuing it once (resume=auto)", flush=True)
        seconds = run_train(tag, label, config, [*overrides, "resume=auto"], log, append=True)
    if not finished(run_dir, cfg.train.stages):
        raise RuntimeError(f"{name}: ended without the evaluations to compare (keep eval.enabled=true); see {log}")
    return seconds
