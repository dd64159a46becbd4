"""Ray's zero-copy numpy path: each tensor's raw bytes as a numpy array, put in the object store once.

Ray stores numpy arrays out of band; a process on the same node reads them straight from the shared
object store (no copy, no decode), and other nodes receive them by Ray's object transfer like any
object. The engine's `reload_weights` then makes the one copy into its own parameters. The arrays
are read-only: the tensors built on them must only be read (vLLM's loader copies them).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping

import numpy as np
import torch

from cosmo.weights.base import WeightTransport

# (name, dtype as torch spells it, shape, raw bytes); numpy has no bfloat16, so every dtype travels as bytes
Entry = tuple[str, str, tuple[int, ...], np.ndarray]


class NumpyArrays(WeightTransport):
    name = "zero_copy"

    def pack(self, tensors: Mapping[str, torch.Tensor]) -> list[Entry]:
        return [(n, str(t.dtype).removeprefix("torch."), tuple(t.shape), t.reshape(-1).view(torch.uint8).numpy())
                for n, t in tensors.items()]

    def unpack(self, payload: list[Entry]) -> Iterable[tuple[str, torch.Tensor]]:
        with warnings.catch_warnings():  # the arrays live in the read-only object store: read, never written
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return [(name, torch.from_numpy(raw).view(getattr(torch, dtype)).reshape(shape))
                    for name, dtype, shape, raw in payload]
