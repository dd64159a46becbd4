"""Where the paths of a submitted recipe lead on the cluster, decided before anything is uploaded.

A Ray job runs in its own copy of the uploaded project directory, which Ray deletes when it no longer
needs it. So a relative path in the recipe resolves inside that copy: an input there must be part of the
upload (weights and runs/ never are), or be something the job builds itself (the tiny model, the built-in
data); an output there (the run directory) would be deleted with the copy. Absolute paths are the
cluster's: shared storage such as the KubeRay volume at /checkpoints (docs/cluster.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cosmo.config import ConfigError, CosmoConfig


@dataclass(frozen=True)
class PathUse:
    """One path the job reads or writes, and what happens to it on the cluster."""

    key: str
    value: str
    writes: bool
    where: str

    def line(self) -> str:
        return f"{'writes' if self.writes else 'reads '} {self.key}={self.value}: {self.where}"


class _Key(NamedTuple):
    key: str
    value: str
    writes: bool = False
    build: str | None = None  # how the job makes it when it is missing
    hub: bool = False  # may name a Hugging Face hub id


def job_paths(cfg: CosmoConfig, root: Path, uploaded: set[Path]) -> list[PathUse]:
    """Every path the recipe makes the job read or write; a ConfigError naming each key whose path will not
    exist on the cluster (or would be deleted with the job's copy of the project)."""
    uses, problems = [], []
    for k in _keys(cfg):
        where = _where(k, root, uploaded)
        if where is None:
            problems.append(_problem(k, root))
        else:
            uses.append(PathUse(k.key, k.value, k.writes, where))
    if problems:
        raise ConfigError("; ".join(problems))
    return uses


def _keys(cfg: CosmoConfig) -> list[_Key]:
    data, reward = cfg.data, cfg.reward
    preset = cfg.model.build_preset
    keys = [
        _Key("model.path", cfg.model.path, hub=True,
             build=f"the job builds the tiny '{preset}' model there (model.build_preset)" if preset else None),
        _Key("data.dir", data.dir,
             build="the job renders the built-in data set there (data.build_if_missing)" if data.build_if_missing
             else None),
        _Key("logging.runs_dir", cfg.logging.runs_dir, writes=True),
    ]
    if data.augment and data.augment_dir:
        keys.append(_Key("data.augment_dir", data.augment_dir, build="the job fills this cache there (data.augment)"))
    if cfg.resume not in ("never", "auto"):
        keys.append(_Key("resume", cfg.resume))
    if reward.reward_model is not None:
        keys.append(_Key("reward.reward_model.path", reward.reward_model.path, hub=True))
    if reward.judge is not None:
        keys.append(_Key("reward.judge.model", reward.judge.model, hub=True))
    for name in ("judge", "http_judge"):
        section = getattr(reward, name)
        if section is not None and section.rubric != "default":
            keys.append(_Key(f"reward.{name}.rubric", section.rubric))
    return keys


def _where(k: _Key, root: Path, uploaded: set[Path]) -> str | None:
    """What the path is on the cluster, or None when the job would not find it (or would lose it)."""
    if Path(k.value).expanduser().is_absolute():
        return "absolute: on the cluster's storage, which must " + ("keep it after the job" if k.writes
                                                                      else "hold it")
    if k.hub and _hub_id(k.value, root):
        return "a hub id: the cluster downloads it (HF_HUB_OFFLINE unset there)"
    if k.writes:
        return None
    if _all_uploaded(root / k.value, root, uploaded):
        return "uploaded with the project"
    if k.build:
        local = " (your local copy is not uploaded)" if (root / k.value).exists() else ""
        return f"{k.build}, inside the job's copy of the project, deleted with it{local}"
    return None


def _problem(k: _Key, root: Path) -> str:
    if k.writes:
        return (f"{k.key}={k.value} is relative: the job would write it inside its copy of the project, which Ray "
                f"deletes afterwards: pass an absolute path on storage the cluster keeps, "
                f"e.g. {k.key}=/checkpoints/runs")
    state = ("is not uploaded (weights, runs/ and what .gitignore lists never are)" if (root / k.value).exists()
             else f"does not exist in {root}")
    return (f"{k.key}={k.value} is relative and {state}, so the job would not find it: pass an absolute path on "
            "storage the cluster sees")


def _hub_id(value: str, root: Path) -> bool:
    # the rule of cosmo.models.loading: "org/name", not a path that exists here
    return value.count("/") == 1 and not value.startswith((".", "/", "~")) and not (root / value).exists()


def _all_uploaded(path: Path, root: Path, uploaded: set[Path]) -> bool:
    """The path and, for a directory, every file in it are part of the upload."""
    path = path.resolve()
    if not path.is_relative_to(root.resolve()):
        return False
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else []
    return bool(files) and all(p.relative_to(root.resolve()) in uploaded for p in files)
