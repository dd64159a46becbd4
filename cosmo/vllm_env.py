"""The environment of every vLLM engine COSMO starts (rollout actors, evaluation, judges): set here only."""

from __future__ import annotations

import os

from cosmo.logs import current_level


def vllm_env(*, weight_reload: bool = False) -> dict[str, str]:
    """Variables vLLM reads at import. `weight_reload`: the engine loads new weights through
    collective_rpc (the rollout actors), which needs vLLM's pickle-based serialization."""
    env = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}  # the engine in the calling process: 2.5 s start, not 20-30 s
    if weight_reload:
        env["VLLM_ALLOW_INSECURE_SERIALIZATION"] = "1"
    if current_level() != "verbose":
        # INFO lines per request and WARNINGs per weight reload (modules without weights, LD_PRELOAD hints)
        # would bury the run's progress lines; errors still show (`logging.level=verbose` shows everything)
        env["VLLM_LOGGING_LEVEL"] = "ERROR"
    return env


def use_vllm_env_here() -> None:
    """For an engine in this process (call before importing vllm); variables the user set are kept."""
    for name, value in vllm_env().items():
        os.environ.setdefault(name, value)
