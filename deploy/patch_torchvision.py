"""Make PyPI's (CUDA-built) torchvision importable beside a CPU-only torch.

torchvision registers fake kernels for `torchvision::nms` and `torchvision::qnms`
unconditionally; when its compiled ops do not load (CPU torch), that registration raises
`operator torchvision::nms does not exist`, which breaks `from vllm import LLM` and the
Qwen2-VL processors. We guard the two decorators with `_has_ops()`. Idempotent.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

_PATTERN = re.compile(r'^@torch\.library\.register_fake\("torchvision::(q?nms)"\)', re.MULTILINE)
_REPLACEMENT = (
    r'@(torch.library.register_fake("torchvision::\1") '
    r"if torchvision.extension._has_ops() else (lambda f: f))"
)


def main() -> int:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        print("torchvision is not installed: nothing to patch")
        return 0
    target = Path(spec.origin).parent / "_meta_registrations.py"
    text = target.read_text()
    patched, count = _PATTERN.subn(_REPLACEMENT, text)
    if count == 0:
        state = "already patched" if "_has_ops() else (lambda f: f)" in text else "pattern not found"
        print(f"{target}: {state}")
        return 0 if state == "already patched" else 1
    target.write_text(patched)
    print(f"{target}: guarded {count} fake-op registrations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
