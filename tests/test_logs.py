"""Console output levels: library notices without an action are dropped at `info`, everything shows at `verbose`.

Each case runs in a fresh interpreter: the filters and switches are process-wide, as they are in a real run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cosmo import logs

ROOT = Path(__file__).resolve().parents[1]

# Prints what reaches the console for a sample of the real messages (vLLM's per-request thread warning,
# DeepSpeed's per-rank accelerator line, a vLLM INFO line, a torch FutureWarning) and for messages that
# must always pass (another warning from the same vLLM logger, COSMO's own lines, a FutureWarning from
# the user's own code), then the environment a child process inherits.
PROBE = """
import json, logging, os, sys, warnings
from cosmo import logs
logging.basicConfig(stream=sys.stdout, format="%(name)s|%(levelname)s|%(message)s")
logs.setup(sys.argv[1])
logging.getLogger("vllm.v1.worker.cpu_worker").warning(
    "CPU backend doesn't allow to use `torch.set_num_threads` after the thread binding, skip it.")
logging.getLogger("vllm.v1.worker.cpu_worker").warning("KV cache too small for 2 sequences")
logging.getLogger("DeepSpeed").warning(
    "Setting accelerator to CPU. If you have GPU or other accelerator, we were unable to detect it.")
logging.getLogger("vllm.config.model").info("Resolved architecture: Qwen2_5_VLForConditionalGeneration")
logging.getLogger("cosmo").info("[rl] step 1/2")
for module in ("torch.distributed.c10d_logger", "my_recipe"):
    warnings.warn_explicit("reduce_op is deprecated", FutureWarning, module + ".py", 1, module=module)
sys.stderr.flush()
print("ENV " + json.dumps({k: os.environ.get(k) for k in ("COSMO_LOG_LEVEL", "VLLM_LOGGING_LEVEL",
                                                             "HF_HUB_DISABLE_PROGRESS_BARS", "TORCH_CPP_LOG_LEVEL")}))
"""


def _clean_env() -> dict[str, str]:
    """This process's environment without the switches `logs.setup` exports (an earlier test in the same
    pytest process may have run the CLI, which sets them)."""
    return {k: v for k, v in os.environ.items() if k not in ("COSMO_LOG_LEVEL", "VLLM_LOGGING_LEVEL",
                                                             "HF_HUB_DISABLE_PROGRESS_BARS", "TORCH_CPP_LOG_LEVEL")}


def _probe(level: str, **env: str) -> tuple[list[str], str, dict]:
    out = subprocess.run([sys.executable, "-c", PROBE, level], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**_clean_env(), **env})
    lines = out.stdout.splitlines()
    return lines[:-1], out.stderr, json.loads(lines[-1].removeprefix("ENV "))


def test_info_drops_library_notices_and_keeps_warnings_that_need_an_action():
    lines, err, env = _probe("info")
    assert lines == ["vllm.v1.worker.cpu_worker|WARNING|KV cache too small for 2 sequences",
                     "cosmo|INFO|[rl] step 1/2"]
    assert "my_recipe.py:1: FutureWarning" in err and "c10d_logger" not in err
    # vLLM's level is not set here: its engines get it with the rest of their environment (cosmo.vllm_env)
    assert env == {"COSMO_LOG_LEVEL": "info", "VLLM_LOGGING_LEVEL": None, "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                   "TORCH_CPP_LOG_LEVEL": "ERROR"}


def test_verbose_shows_everything_and_sets_no_library_switch():
    lines, err, env = _probe("verbose")
    assert len(lines) == 5  # every record above, the vLLM INFO line included
    assert "torch.distributed.c10d_logger.py:1: FutureWarning" in err and "my_recipe.py:1" in err
    assert env == {"COSMO_LOG_LEVEL": "verbose", "VLLM_LOGGING_LEVEL": None, "HF_HUB_DISABLE_PROGRESS_BARS": None,
                   "TORCH_CPP_LOG_LEVEL": None}


def test_quiet_keeps_only_warnings():
    lines, _, _ = _probe("quiet")
    assert lines == ["vllm.v1.worker.cpu_worker|WARNING|KV cache too small for 2 sequences"]


def test_a_switch_the_user_set_keeps_the_users_value():
    _, _, env = _probe("info", VLLM_LOGGING_LEVEL="DEBUG")
    assert env["VLLM_LOGGING_LEVEL"] == "DEBUG" and env["TORCH_CPP_LOG_LEVEL"] == "ERROR"


def test_ray_runtime_env_carries_the_level_and_a_hook_that_imports():
    code = ("import json, os; os.environ['TORCH_CPP_LOG_LEVEL'] = 'WARNING'\n"
            "from cosmo import logs; logs.setup('info'); print(json.dumps(logs.ray_runtime_env()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env=_clean_env())
    runtime_env = json.loads(out.stdout)
    # TORCH_CPP_LOG_LEVEL was the user's: left out, so a job submitted with --env TORCH_CPP_LOG_LEVEL does not
    # conflict with the driver's runtime_env (Ray refuses the same variable from both)
    assert runtime_env["env_vars"] == {"COSMO_LOG_LEVEL": "info", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    module, _, name = runtime_env["worker_process_setup_hook"].rpartition(".")
    assert getattr(__import__(module, fromlist=[name]), name) is logs.quiet_worker


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="quiet, info, verbose"):
        logs.setup("loud")


def test_vllm_engines_get_their_environment_from_one_place(monkeypatch):
    from cosmo.vllm_env import vllm_env

    monkeypatch.setenv("COSMO_LOG_LEVEL", "info")
    assert vllm_env() == {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_LOGGING_LEVEL": "ERROR"}
    assert vllm_env(weight_reload=True)["VLLM_ALLOW_INSECURE_SERIALIZATION"] == "1"
    monkeypatch.setenv("COSMO_LOG_LEVEL", "verbose")  # --verbose: vLLM's own INFO lines too
    assert vllm_env() == {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
