"""Package exports imported on first use, so that a light import does not pay for a heavy one.

`cosmo --help` and `cosmo config` only need names (model presets, task and loss names) that live beside
torch and transformers code; importing a package's `__init__` eagerly would load those libraries (~5 s).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` (PEP 562) that imports `exports[name]` (a submodule of `package`) on first use."""

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook's required name
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
