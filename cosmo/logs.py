"""What the console shows: COSMO's own lines, and only the library messages that ask something of the user.

The one place that decides it (docs/install.md, "Console output"). Three levels, from `--quiet` /
`--verbose` or the config's `logging.level`:
- `info` (default): COSMO's phase and progress lines, every warning and error; the library notices listed in
  NOISE, vLLM's INFO lines, FutureWarnings raised inside libraries and their progress bars are
  dropped, because none of them carries an action for the user (each is named below with why).
- `quiet`: warnings and errors only, filtered as above.
- `verbose`: everything, unfiltered, as the libraries print it.

Much of the output comes from other processes (Ray workers hosting vLLM and the DeepSpeed ranks), so the
level travels as the COSMO_LOG_LEVEL environment variable, with the libraries' own switches (`quiet_env`),
and each Ray worker applies the same filters at start (`quiet_worker`, Ray's `worker_process_setup_hook`).
Plain standard library: every layer may import it.
"""

from __future__ import annotations

import logging
import os
import warnings

LEVELS = ("quiet", "info", "verbose")
LEVEL_ENV = "COSMO_LOG_LEVEL"

# Library notices with nothing for the user to do, by the logger that prints them (start of the message
# template). vLLM on CPU: a warning per request about thread binding it handles itself (hundreds per eval),
# its seed/eager/Triton/SSM settings notes for the choices this project makes on purpose (fp32, eager, no
# Triton on CPU), and the LD_PRELOAD tuning tip (allocator libraries this project does not ship). DeepSpeed:
# "Setting accelerator to CPU", from every rank, on a machine without GPUs, where CPU is the only choice.
NOISE: dict[str, tuple[str, ...]] = {
    "vllm.v1.worker.cpu_worker": ("CPU backend doesn't allow to use `torch.set_num_threads`",
                                  "%s is not found in LD_PRELOAD"),
    "vllm.engine.arg_utils": ("The global random seed is set to",),
    "vllm.config.vllm": ("Enforce eager set", "Inductor compilation was disabled", "Model Runner V2 requires Triton"),
    "vllm.platforms.cpu": ("Triton is not installed", "Reset SSM cache type"),
    "torch._library.triton": ("Triton not available",),
    "DeepSpeed": ("Setting accelerator to CPU",),
}
# FutureWarnings raised inside these libraries concern their own internals (e.g. torch.distributed's
# deprecated collective names that DeepSpeed calls), not code a COSMO user writes.
LIBRARY_MODULES = r"(torch|vllm|transformers|deepspeed|ray|accelerate|huggingface_hub)(\.|$)"


class _DropNoise(logging.Filter):
    """Drops a logger's records whose message template starts with one of the prefixes."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


_filters: dict[str, _DropNoise] = {name: _DropNoise(prefixes) for name, prefixes in NOISE.items()}
_exported: dict[str, str] = {}  # what `setup` put in os.environ (not what the user had set)


def quiet_env(level: str) -> dict[str, str]:
    """Environment for processes COSMO starts, so that libraries read their switches at import: no Hugging
    Face progress bars, no C++ warnings from torch's runtime (NUMA binding notes). vLLM's level is set with
    the rest of its environment (cosmo.vllm_env)."""
    env = {LEVEL_ENV: level}
    if level != "verbose":
        env.update(HF_HUB_DISABLE_PROGRESS_BARS="1", TORCH_CPP_LOG_LEVEL="ERROR")  # vLLM's: cosmo/vllm_env.py
    return env


def current_level() -> str:
    """The level this process runs at (set by `setup`, or inherited by a worker); `info` when unset."""
    level = os.environ.get(LEVEL_ENV, "info")
    return level if level in LEVELS else "info"


def setup(level: str) -> None:
    """Apply `level` to this process and to the processes it will start (they inherit os.environ).

    Call once, before importing torch, vLLM or Ray: some switches are read once at import. A variable the
    user set already keeps the user's value."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    for name, value in quiet_env(level).items():
        if name == LEVEL_ENV or name not in os.environ:
            os.environ[name] = _exported[name] = value
    logging.getLogger().setLevel(logging.WARNING if level == "quiet" else logging.INFO)
    _filter_libraries(level)


def quiet_worker() -> None:
    """Ray's worker_process_setup_hook: the driver's level and filters in every worker process."""
    _filter_libraries(current_level())


def ray_runtime_env() -> dict:
    """The runtime_env for `ray.init`: what `setup` exported, for workers on every node (variables the user
    had set are left out: Ray refuses a driver that sets a variable its job submission sets too), and the
    hook that filters in every worker."""
    return {"env_vars": dict(_exported), "worker_process_setup_hook": f"{__name__}.quiet_worker"}


def _filter_libraries(level: str) -> None:
    """Logger filters survive the libraries' own logging setup (vLLM reapplies a dictConfig to its root
    logger; that resets handlers and levels, not the filters of the loggers below it)."""
    if level == "verbose":
        return
    for name, noise in _filters.items():
        logging.getLogger(name).addFilter(noise)  # a no-op when already there
    # vLLM's INFO lines restate the engine arguments COSMO chose; its dictConfig later sets the same level
    # from VLLM_LOGGING_LEVEL, this covers what it logs while still importing.
    logging.getLogger("vllm").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning, module=LIBRARY_MODULES)
