"""Shared fixtures: a tiny built-in dataset, a tiny model, and a local Ray cluster (loopback only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def builtin_data(tmp_path_factory) -> dict[str, Path]:
    """A small copy of the built-in multitask set: 8 train and 4 eval rows per task."""
    from cosmo.data import build_dataset

    return build_dataset(tmp_path_factory.mktemp("data"), seed=0, train_per_task=8, eval_per_task=4)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The `tiny` preset built offline with the built-in data's tokenizer corpus."""
    from cosmo.data import corpus_texts
    from cosmo.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny", preset="tiny", seed=0, corpus=corpus_texts())


@pytest.fixture(scope="session")
def ray_cluster():
    """A 2-CPU local Ray cluster. Ray listens on many ports and on every interface, so the tests that
    use it must run inside the loopback-only namespace that `make test` (deploy/loopback.sh) sets up."""
    if "COSMO_LOOPBACK" not in os.environ:
        pytest.fail("tests that start Ray must run through deploy/loopback.sh (as `make test` does): "
                    "deploy/loopback.sh .venv/bin/python -m pytest ...")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, namespace="cosmo-tests", log_to_driver=False,
             _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()
