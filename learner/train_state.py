"""A learner rank's training state beyond the weights: optimizer, LR schedule, step counters, RNG.

Written per rank as `rank_<r>.safetensors` (every tensor: AdamW moments, the fp32 master
partitions that ZeRO keeps, RNG states) plus `rank_<r>.json` (hyper-parameters, counters,
schedule). No pickle: a resumed run reads only safetensors and JSON, so a checkpoint from
elsewhere cannot execute code. Restoring it into a freshly built engine whose weights were loaded
from the same checkpoint gives back the exact state of the engine that saved it.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

_COUNTERS = ("global_steps", "global_samples", "micro_steps", "skipped_steps")


def base_optimizer(engine) -> torch.optim.Optimizer:
    """DeepSpeed's ZeRO optimizers wrap the torch optimizer as `.optimizer`; without ZeRO it is bare."""
    opt = engine.optimizer
    return opt.optimizer if hasattr(opt, "optimizer") and isinstance(opt.optimizer, torch.optim.Optimizer) else opt


def master_partitions(engine) -> list[torch.Tensor]:
    """The fp32 master partitions ZeRO updates and copies into the model (stage 1/2, stage 3)."""
    opt = engine.optimizer
    for name in ("single_partition_of_fp32_groups", "fp32_partitioned_groups_flat"):
        if hasattr(opt, name):
            return list(getattr(opt, name))
    return []


def _write(path: Path, write) -> None:
    """Write through a callback, then fsync, so that a completed checkpoint is on disk."""
    write(path)
    with path.open("rb") as f:
        os.fsync(f.fileno())


def save_train_state(engine, out_dir: Path, rank: int) -> list[Path]:
    """Write this rank's state into `out_dir`; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sd = base_optimizer(engine).state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    for i, master in enumerate(master_partitions(engine)):
        tensors[f"master.{i}"] = master.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    np_state = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np_state[1].astype(np.int64))
    py_version, py_state, py_gauss = random.getstate()
    meta = {
        "rank": rank,
        "param_groups": sd["param_groups"],
        "optim_scalars": scalars,
        "scheduler": {k: v for k, v in engine.lr_scheduler.state_dict().items() if k != "lr_lambdas"}
        if engine.lr_scheduler is not None else None,
        "counters": {k: getattr(engine, k) for k in _COUNTERS},
        "rng": {"python": [py_version, list(py_state), py_gauss], "numpy": [np_state[0], int(np_state[2]),
                int(np_state[3]), float(np_state[4])]},
    }
    st_path, json_path = out_dir / f"rank_{rank}.safetensors", out_dir / f"rank_{rank}.json"
    _write(st_path, lambda p: save_file(tensors, str(p)))
    _write(json_path, lambda p: p.write_text(json.dumps(meta)))
    return [st_path, json_path]


def load_train_state(engine, state_dir: Path, rank: int) -> dict:
    """Restore what `save_train_state` wrote for this rank into a freshly built engine."""
    st_path, json_path = state_dir / f"rank_{rank}.safetensors", state_dir / f"rank_{rank}.json"
    for path in (st_path, json_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the checkpoint was written by a different number of "
                                    "learner ranks, or is incomplete")
    try:
        tensors = load_file(str(st_path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type, without the path
        raise ValueError(f"{st_path}: not a readable safetensors file ({exc})") from None
    try:
        meta = json.loads(json_path.read_text())
    except ValueError as exc:
        raise ValueError(f"{json_path}: not valid JSON ({exc})") from None
    optimizer = base_optimizer(engine)
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, extra in meta["optim_scalars"].items():
        state.setdefault(int(pid), {}).update(extra)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    masters = master_partitions(engine)
    for i, master in enumerate(masters):
        saved = tensors[f"master.{i}"]
        if saved.shape != master.shape:
            raise ValueError(f"{st_path}: master partition {i} has shape {tuple(saved.shape)}, this engine's "
                             f"{tuple(master.shape)} (a different learner.num_ranks or zero_stage?)")
        master.data.copy_(saved)
    if meta["scheduler"] is not None:
        engine.lr_scheduler.load_state_dict({**meta["scheduler"], "lr_lambdas": [None] * len(optimizer.param_groups)})
    for key, value in meta["counters"].items():
        setattr(engine, key, value)
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    name, pos, has_gauss, cached = meta["rng"]["numpy"]
    np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, py_state, gauss = meta["rng"]["python"]
    random.setstate((version, tuple(py_state), gauss))
    return meta["counters"]
