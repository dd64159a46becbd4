"""Moving the policy's weights from the learner into every rollout engine: one seam, one file per transport.

A sync, in order (the driver calls `sync_weights`):
  1. pack     learner rank 0 (all ranks gather under ZeRO-3) names its full weights as in an HF
              checkpoint (`checkpoint_name`) and hands them to `transport.pack`, with their `digest`;
  2. deliver  the payload is the learner actor's return value: Ray carries it by object reference
              to every rollout actor (the driver never fetches it);
  3. load     each engine's worker takes `transport.unpack(payload)` into vLLM's `reload_weights`
              (`receive` hashes what it loads on the way);
  4. verify   every engine reports the digest of what it loaded and its new policy version;
              `SyncReport` compares them with the learner's.

Learner and actors both import this package (they never import each other); it is plain Python
(torch, numpy, safetensors: no Ray). `TRANSPORTS` maps `rollout.weight_transport` to a transport.
"""

from __future__ import annotations

from cosmo.weights.base import (
    SyncReport,
    WeightTransport,
    checkpoint_name,
    digest,
    pack_weights,
    receive,
    sync_weights,
)
from cosmo.weights.object_store import SafetensorsBytes
from cosmo.weights.zero_copy import NumpyArrays

TRANSPORTS: dict[str, type[WeightTransport]] = {t.name: t for t in (SafetensorsBytes, NumpyArrays)}


def get_transport(name: str) -> WeightTransport:
    """The transport `rollout.weight_transport` names (the config validates the name at start)."""
    try:
        return TRANSPORTS[name]()
    except KeyError:
        raise ValueError(f"rollout.weight_transport: expected one of {sorted(TRANSPORTS)}, got {name!r}") from None


__all__ = ["TRANSPORTS", "SyncReport", "WeightTransport", "checkpoint_name", "digest", "get_transport",
           "pack_weights", "receive", "sync_weights"]
