"""docs/config.md, generated from the dataclasses so that the reference matches the code."""

from __future__ import annotations

import dataclasses
import json

from omegaconf import MISSING

from cosmo.config.sections import CosmoConfig


def reference_markdown() -> str:
    """docs/config.md, generated from the dataclasses so that the reference matches the code."""
    lines = ["# Config reference", "",
             "Generated from `cosmo/config/sections.py` by `python -m cosmo.config > docs/config.md`; "
             "do not edit by hand.",
             "A recipe (YAML) sets any of these keys; `key=value` on the command line overrides the recipe.",
             "A recipe may start with `base: OTHER.yaml` (a path relative to it): the base is loaded first and "
             "the recipe states only what differs (see `configs/ablation-*.yaml`).",
             "Unknown keys and wrong types fail at start with the key's full path.", ""]
    top = [f for f in dataclasses.fields(CosmoConfig) if not dataclasses.is_dataclass(f.default_factory)]
    for f in dataclasses.fields(CosmoConfig):
        if f in top:
            continue
        section = f.default_factory
        lines += [f"## `{f.name}`", "", (section.__doc__ or "").strip(), "",
                  "| key | type | default | meaning |", "|---|---|---|---|"]
        lines += [_reference_row(f"{f.name}.{g.name}", g) for g in dataclasses.fields(section)]
        lines.append("")
    lines += ["## top level", "", "| key | type | default | meaning |", "|---|---|---|---|"]
    lines += [_reference_row(f.name, f) for f in top]
    return "\n".join(lines) + "\n"


def _reference_row(key: str, f: dataclasses.Field) -> str:
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    elif f.default is MISSING:
        value = MISSING
    else:
        value = f.default
    default = "*required*" if value is MISSING else f"`{json.dumps(value)}`"
    kind = str(f.type).replace("|", "\\|")
    return f"| `{key}` | {kind} | {default} | {f.metadata.get('help', '')} |"
