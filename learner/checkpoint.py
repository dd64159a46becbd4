"""HF-format checkpoints from a DeepSpeed engine: loadable by transformers and vLLM as they are.

A checkpoint is written into a hidden temporary directory next to its final place and renamed
when complete, so a crash mid-save never leaves a half-written `step_<N>/` behind.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import torch

# Files that save_pretrained writes itself; everything else in the source model dir (tokenizer,
# chat template, processor and image-processor configs) is copied over unchanged.
_WRITTEN_BY_MODEL = {"config.json", "generation_config.json", "model.safetensors.index.json"}
COMPLETE_MARKER = "cosmo_checkpoint.json"


def gathered_parameters(module: torch.nn.Module, zero_stage: int):
    """Under ZeRO-3 parameters are partitioned: gather them on every rank for the duration."""
    if zero_stage != 3:
        return contextlib.nullcontext()
    import deepspeed  # noqa: PLC0415

    return deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None)


def save_hf_checkpoint(
    module: torch.nn.Module, *, source_dir: str | Path, out_dir: str | Path, zero_stage: int, rank: int, meta: dict
) -> Path | None:
    """Collective: every rank calls it; rank 0 writes `out_dir` atomically and returns its path."""
    out_dir = Path(out_dir)
    tmp = out_dir.parent / f".tmp-{out_dir.name}"
    with gathered_parameters(module, zero_stage):
        if rank != 0:
            return None
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        for item in Path(source_dir).iterdir():
            if item.is_file() and item.suffix != ".safetensors" and item.name not in _WRITTEN_BY_MODEL:
                shutil.copy2(item, tmp / item.name)
        module.save_pretrained(tmp, safe_serialization=True)
    (tmp / COMPLETE_MARKER).write_text(json.dumps(meta, indent=2, sort_keys=True))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


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
