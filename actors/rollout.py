"""A rollout worker: one vLLM engine that turns training rows into sampled, log-prob'd trajectories.

Plain Python (the Ray wrapper lives in `actors.group`). Prompts go to vLLM *unexpanded* (one image
placeholder per image, plus the images as multi_modal_data); vLLM expands them, and the expanded
ids it reports are what the learner recomputes log-probs on. Weight updates apply in place through
the worker's `reload_weights` (no engine restart) and bump the policy version.
"""

from __future__ import annotations

import os
import time
import zlib

from cosmo.config import CosmoConfig, RolloutConfig
from cosmo.data import Sample, load_images, load_jsonl
from cosmo.logs import current_level
from cosmo.models import blocked_token_ids, chat_prompt, load_preprocessing
from cosmo.trajectory import Trajectory
from learner.weights import digest, unpack


def _reload_in_worker(worker, blob: bytes) -> None:
    """Runs inside vLLM's worker: load packed weights through the model runner's reload path
    (it re-runs the CPU backend's weight repacking, which a plain load_weights skips)."""
    worker.reload_weights(weights_iterator=iter(unpack(blob).items()))


def request_seed(seed: int, version: int, sample_index: int) -> int:
    """A per-request sampling seed: the same run, step and row always sample the same responses."""
    return zlib.crc32(f"{seed}:{version}:{sample_index}".encode()) & 0x7FFFFFFF


def open_engine(model_path: str, r: RolloutConfig, *, on_gpu: bool, seed: int, max_images: int):
    """A vLLM engine on the policy, as rollout actors and evaluation use it: fp32 on CPU (bf16 is
    ~17x slower there), bf16 on GPU with the rollout section's memory and tensor-parallel settings."""
    from vllm import LLM  # noqa: PLC0415 - heavy; only processes that generate import it

    gpu = {"gpu_memory_utilization": r.gpu_memory_utilization, "tensor_parallel_size": r.tensor_parallel_size}
    return LLM(
        model=model_path,
        dtype="bfloat16" if on_gpu else "float32",  # "auto" would silently run an fp32 checkpoint in bf16
        enforce_eager=r.enforce_eager,
        max_model_len=r.max_model_len,
        seed=seed,
        limit_mm_per_prompt={"image": max(1, max_images), "video": 0},
        use_tqdm_on_load=current_level() == "verbose",  # vLLM's weight-loading bar (cosmo.logs)
        **(gpu if on_gpu else {}),
    )


def vllm_request(prep, row: Sample) -> dict:
    """A row as vLLM takes it: the chat prompt with one *unexpanded* placeholder per image, and the
    images as multi_modal_data (vLLM expands them itself)."""
    request: dict = {"prompt": chat_prompt(prep, row.prompt, len(row.images))}
    if row.images:
        imgs = load_images(row)
        request["multi_modal_data"] = {"image": imgs if len(imgs) > 1 else imgs[0]}
    return request


class RolloutWorker:
    """Hosts one vLLM engine on the policy; every public method is one RPC."""

    def __init__(self, model_path: str, train_file: str, cfg: CosmoConfig, index: int, version: int = 0) -> None:
        started = time.perf_counter()
        self.cfg, self.index = cfg, index
        self.prep = load_preprocessing(model_path)
        self.rows: list[Sample] = load_jsonl(train_file)
        self.llm = open_engine(model_path, cfg.rollout, on_gpu=cfg.device == "cuda", seed=cfg.seed + index,
                               max_images=max((len(s.images) for s in self.rows), default=1))
        self.bias = {t: -100.0 for t in blocked_token_ids(self.prep.tokenizer)}
        self.version = version
        self.start_s = time.perf_counter() - started

    def info(self) -> dict:
        import ray  # noqa: PLC0415

        return {"index": self.index, "version": self.version, "start_s": round(self.start_s, 2), "pid": os.getpid(),
                "host": ray.util.get_node_ip_address()}

    def generate(self, indices: list[int], n: int, version: int) -> list[Trajectory]:
        """`n` sampled responses per row; raises if the engine's weights are not at `version`."""
        from vllm import SamplingParams  # noqa: PLC0415

        if version != self.version:
            raise RuntimeError(f"rollout worker {self.index} holds policy version {self.version}, asked for {version}")
        r = self.cfg.rollout
        requests, params = [], []
        for i in indices:
            requests.append(vllm_request(self.prep, self.rows[i]))
            params.append(SamplingParams(
                n=n, temperature=r.temperature, top_p=r.top_p, max_tokens=r.max_new_tokens, logprobs=0,
                logit_bias=self.bias, seed=request_seed(self.cfg.seed, version, i),
            ))
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        trajectories = []
        for i, out in zip(indices, outputs, strict=True):
            for c in out.outputs:
                logprobs = [step[token].logprob for token, step in zip(c.token_ids, c.logprobs, strict=True)]
                trajectories.append(Trajectory(
                    sample_index=i, sample_id=self.rows[i].id, prompt_ids=list(out.prompt_token_ids),
                    response_ids=list(c.token_ids), logprobs=logprobs, text=c.text,
                    finish_reason=str(c.finish_reason), version=version,
                ))
        return trajectories

    def update_weights(self, blob: bytes, version: int) -> dict:
        """Load new policy weights in place, clear caches that hold old activations, set the version."""
        started = time.perf_counter()
        self.llm.collective_rpc(_reload_in_worker, args=(blob,))
        # prefix/encoder/multimodal caches hold results computed with the old weights
        self.llm.reset_prefix_cache()
        self.llm.reset_mm_cache()
        self.llm.llm_engine.reset_encoder_cache()
        self.version = version
        return {"index": self.index, "version": version, "digest": digest(blob),
                "load_s": time.perf_counter() - started}
