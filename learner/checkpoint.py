"""HF-format checkpoints from a DeepSpeed engine: loadable by transformers and vLLM as they are.

A checkpoint is written into a hidden temporary directory next to its final place; the completion
marker, holding a SHA-256 manifest of every file, is written last and the directory renamed, so a
crash mid-save never leaves a half-written `step_<N>/` behind and a corrupted one is detected.
Besides the HF model it holds the learner ranks' training state and the driver's state, which is
what `resume` needs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path

import torch

from cosmo.files import sha256_file

COMPLETE_MARKER = "cosmo_checkpoint.json"
TRAIN_STATE = "train_state"  # per-rank optimizer, schedule, counters and RNG (learner/train_state.py)
DRIVER_STATE = "driver_state.json"  # data position, step, policy version, tracker id (cosmo/driver/stage.py)
# Files that save_pretrained or the checkpoint itself writes; everything else in the source model dir
# (tokenizer, chat template, processor and image-processor configs) is copied over unchanged.
_NOT_COPIED = {"config.json", "generation_config.json", "model.safetensors.index.json", COMPLETE_MARKER, DRIVER_STATE}

log = logging.getLogger("cosmo")


def gathered_parameters(module: torch.nn.Module, zero_stage: int):
    """Under ZeRO-3 parameters are partitioned: gather them on every rank for the duration."""
    if zero_stage != 3:
        return contextlib.nullcontext()
    import deepspeed  # noqa: PLC0415 - heavy; only learner processes

    return deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None)


def staging_dir(out_dir: Path) -> Path:
    """Where a checkpoint is written before the rename that completes it."""
    return out_dir.parent / f".tmp-{out_dir.name}"


def model_side_files(source_dir: str | Path) -> dict[str, bytes]:
    """The source model's files a checkpoint carries over unchanged (tokenizer, chat template, processor configs),
    read when the learner starts, so that a save does not depend on the source directory still being there (an
    earlier stage's checkpoint pruned or deleted mid-stage would otherwise lose the stage's training)."""
    return {item.name: item.read_bytes() for item in sorted(Path(source_dir).iterdir())
            if item.is_file() and item.suffix != ".safetensors" and item.name not in _NOT_COPIED}


def write_hf_model(module: torch.nn.Module, *, side_files: dict[str, bytes], tmp: Path, zero_stage: int,
                   rank: int) -> None:
    """Collective under ZeRO-3: every rank calls it; rank 0 writes the HF model files (the weights and config, and
    `side_files` from `model_side_files`) into `tmp`."""
    with gathered_parameters(module, zero_stage):
        if rank != 0:
            return
        for name, data in side_files.items():
            (tmp / name).write_bytes(data)
        module.save_pretrained(tmp, safe_serialization=True)


def finalize_checkpoint(tmp: Path, out_dir: Path, meta: dict) -> Path:
    """Checksum every file, write the completion marker (with the manifest) last, flush, rename.

    A crash before the rename leaves only the hidden staging directory; a crash after it leaves a
    complete checkpoint. Either way `latest_checkpoint` never picks a half-written one.
    """
    files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
    marker = tmp / COMPLETE_MARKER
    marker.write_text(json.dumps({**meta, "files": files}, indent=2, sort_keys=True))
    with marker.open("rb") as f:
        os.fsync(f.fileno())
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


def verify_checkpoint(path: Path) -> str | None:
    """None when `path` is a complete checkpoint whose files match its manifest, else what is wrong."""
    if not path.is_dir():
        return "no such directory" if not path.exists() else "not a directory"
    marker = path / COMPLETE_MARKER
    if not marker.is_file():
        return f"no {COMPLETE_MARKER} (incomplete)"
    try:
        meta = json.loads(marker.read_text())
        files = meta["files"]
    except (ValueError, KeyError, TypeError) as exc:
        return f"{COMPLETE_MARKER} is unreadable ({exc})"
    if not isinstance(files, dict) or not all(
        isinstance(name, str) and isinstance(digest, str) and not Path(name).is_absolute()
        and ".." not in Path(name).parts for name, digest in files.items()
    ):
        return f"{COMPLETE_MARKER} is unreadable ('files' must map relative file names to SHA-256 digests)"
    for name, expected in files.items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if sha256_file(file) != expected:
            return f"{name} does not match its checksum"
    return None


def latest_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The newest `step_<N>` checkpoint that verifies; broken newer ones are skipped with a warning."""
    candidates = sorted((p for p in checkpoints_dir.glob("step_*") if p.name[5:].isdigit()),
                        key=lambda p: int(p.name[5:]), reverse=True)
    for path in candidates:
        problem = verify_checkpoint(path)
        if problem is None:
            return path
        log.warning("skipping checkpoint %s: %s", path, problem)
    return None


def prune_checkpoints(checkpoints_dir: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` complete `step_<N>` checkpoints; returns what was removed."""
    root = Path(checkpoints_dir)
    done = sorted(
        (p for p in root.glob("step_*") if (p / COMPLETE_MARKER).is_file() and p.name[5:].isdigit()),
        key=lambda p: int(p.name[5:]),
    )
    removed = done[: max(0, len(done) - keep_last)]
    for path in removed:
        shutil.rmtree(path)
    return removed
