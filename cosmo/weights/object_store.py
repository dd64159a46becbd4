"""Today's default transport: the weights as one safetensors byte string in Ray's object store.

Robust anywhere Ray runs (any node, any process boundary: a dict of tensors sent through vLLM's
multiprocess `collective_rpc` arrives mangled, bytes do not); costs one encode on the learner and
one decode (a copy) in every engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from cosmo.weights.base import WeightTransport


class SafetensorsBytes(WeightTransport):
    name = "object_store"

    def pack(self, tensors: Mapping[str, torch.Tensor]) -> bytes:
        return st_save(dict(tensors))

    def unpack(self, payload: bytes) -> Iterable[tuple[str, torch.Tensor]]:
        return st_load(payload).items()
