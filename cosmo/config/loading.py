"""Recipes and overrides into a validated `CosmoConfig`, and back to YAML.

A recipe (YAML) and the command line's overrides are merged onto the dataclass defaults by
OmegaConf, which rejects unknown keys and wrong types; `load_config` turns those failures and
our own range checks into a `ConfigError` that names the key's full path and where it came from.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cosmo.config.checks import validate
from cosmo.config.sections import ConfigError, CosmoConfig


def _value_for_section(schema: type, value: Any, prefix: str = "") -> tuple[str, Any] | None:
    """The first key where `value` (a plain dict) puts a non-mapping in place of a section, and that value:
    OmegaConf's merge error names no key then."""
    if not isinstance(value, dict):
        return None
    hints = typing.get_type_hints(schema)
    for name, given in value.items():
        kinds = typing.get_args(hints.get(name)) or (hints.get(name),)
        section = next((t for t in kinds if dataclasses.is_dataclass(t)), None)
        if section is None or given is None:
            continue
        if not isinstance(given, dict):
            return f"{prefix}{name}", given
        found = _value_for_section(section, given, f"{prefix}{name}.")
        if found is not None:
            return found
    return None


def _merge(base: DictConfig, other: Any, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        msg = (getattr(exc, "msg", None) or str(exc)).splitlines()[0]  # one line: the key is named already
        if key == "?":
            plain = OmegaConf.to_container(other, resolve=False) if isinstance(other, DictConfig) else other
            found = _value_for_section(CosmoConfig, plain)
            if found is not None:
                key, msg = found[0], f"expected a section (a mapping of keys), got {found[1]!r}"
        raise ConfigError(f"{source}: key '{key}': {msg}") from None


def _parse_overrides(overrides: list[str]) -> DictConfig:
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"command line: override '{item}' is not of the form key=value")
        try:  # one at a time, so that an unparsable value is named (YAML errors are not OmegaConf's)
            OmegaConf.from_dotlist([item])
        except Exception as exc:  # noqa: BLE001
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"command line: override '{item}': value is not valid YAML ({problem})") from None
    return OmegaConf.from_dotlist(list(overrides))


def _merge_recipe(cfg: DictConfig, path: Path, chain: tuple[Path, ...] = ()) -> DictConfig:
    """Merge a YAML recipe onto `cfg`; a top-level `base: OTHER.yaml` (relative to the recipe) is
    merged first, so a variant states only what it changes."""
    if not path.is_file():
        where = f" (the base of {chain[-1]})" if chain else ""
        raise ConfigError(f"config file {path} does not exist{where}")
    if path.resolve() in chain:
        raise ConfigError(f"{path}: `base` chain loops: {' -> '.join(map(str, (*chain, path.resolve())))}")
    try:
        recipe = OmegaConf.load(path)
    except Exception as exc:  # YAML syntax errors come from several libraries' types
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        detail = problem or " ".join(str(exc).split())
        raise ConfigError(f"{path}: not valid YAML{where}: {detail}") from None
    if not isinstance(recipe, DictConfig):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    if "base" in recipe:
        base = recipe.pop("base")
        if not isinstance(base, str):
            raise ConfigError(f"{path}: key 'base': expected the path of another recipe, got {base!r}")
        cfg = _merge_recipe(cfg, path.parent / base, (*chain, path.resolve()))
    return _merge(cfg, recipe, str(path))


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> CosmoConfig:
    """Defaults <- YAML recipe (after its `base`, if any) <- `key=value` overrides, then validation."""
    cfg = OmegaConf.structured(CosmoConfig)
    if path is not None:
        cfg = _merge_recipe(cfg, Path(path))
    cfg = _merge(cfg, _parse_overrides(list(overrides)), "command line")
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"required keys have no value: {', '.join(missing)} (set them in the recipe or as key=value)")
    typed: CosmoConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    validate(typed)
    return typed


def to_yaml(cfg: CosmoConfig) -> str:
    """The resolved config as YAML (what the run directory keeps; it holds no secrets by design)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
