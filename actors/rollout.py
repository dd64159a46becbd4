"""A rollout worker: one vLLM engine that turns training rows into sampled, log-prob'd trajectories.

Plain Python (the Ray wrapper lives in `actors.group`). Prompts go to vLLM *unexpanded* (one image
placeholder per image, plus the images as multi_modal_data); vLLM expands them, and the expanded
ids it reports are what the learner recomputes log-probs on. Weight updates apply in place through
the worker's `reload_weights` (no engine restart) and bump the policy version.
"""

from __future__ import annotations

import os
import re
import time
import zlib

from cosmo.config import ConfigError, CosmoConfig, RolloutConfig
from cosmo.data import Sample, load_images, load_jsonl
from cosmo.logs import current_level
from cosmo.models import blocked_token_ids, chat_prompt, load_preprocessing
from cosmo.trajectory import Trajectory
from cosmo.weights import get_transport, receive


def _reload_in_worker(worker, transport: str, payload) -> str:
    """Runs inside vLLM's worker: load the payload through the model runner's reload path (it re-runs
    the CPU backend's weight repacking, which a plain load_weights skips); returns what it loaded's digest."""
    return receive(get_transport(transport), payload, lambda tensors: worker.reload_weights(weights_iterator=tensors))


def request_seed(seed: int, version: int, sample_index: int) -> int:
    """A per-request sampling seed: the same run, step and row always sample the same responses."""
    return zlib.crc32(f"{seed}:{version}:{sample_index}".encode()) & 0x7FFFFFFF


def open_engine(model_path: str, r: RolloutConfig, *, on_gpu: bool, seed: int, max_images: int):
    """A vLLM engine on the policy, as rollout actors and evaluation use it: fp32 on CPU (bf16 is
    ~17x slower there), bf16 on GPU with the rollout section's memory and tensor-parallel settings.

    On CPU, vLLM reads `gpu_memory_utilization` as the share of the node's memory to reserve (default
    0.92: it refuses to start beside other work), so the rollout section's CPU share and KV cache size
    are passed; an engine that cannot get that memory fails with a ConfigError naming the keys."""
    from vllm import LLM  # noqa: PLC0415 - heavy; only processes that generate import it

    if on_gpu:
        memory = {"gpu_memory_utilization": r.gpu_memory_utilization, "tensor_parallel_size": r.tensor_parallel_size}
    else:
        memory = {"gpu_memory_utilization": r.cpu_memory_utilization}
        if r.cpu_kv_cache_gib is not None:
            memory["kv_cache_memory_bytes"] = int(r.cpu_kv_cache_gib * 2**30)
    try:
        return LLM(
            model=model_path,
            dtype="bfloat16" if on_gpu else "float32",  # "auto" would silently run an fp32 checkpoint in bf16
            enforce_eager=r.enforce_eager,
            max_model_len=r.max_model_len,
            seed=seed,
            limit_mm_per_prompt={"image": max(1, max_images), "video": 0},
            use_tqdm_on_load=current_level() == "verbose",  # vLLM's weight-loading bar (cosmo.logs)
            **memory,
        )
    except ValueError as exc:
        if on_gpu or "Available memory on node" not in str(exc):
            raise
        found = re.search(r"\(([\d.]+/[\d.]+ GiB)\)", str(exc))
        short = f"vLLM engine on CPU: not enough free memory ({found.group(1) if found else 'see the log'} free) for "
        if os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            fix = (f"a KV cache of VLLM_CPU_KVCACHE_SPACE={os.environ['VLLM_CPU_KVCACHE_SPACE']} GiB (this environment "
                   "variable overrides rollout.cpu_kv_cache_gib); lower or unset it, or free memory")
        elif r.cpu_kv_cache_gib is not None:
            fix = (f"a KV cache of rollout.cpu_kv_cache_gib={r.cpu_kv_cache_gib} GiB; lower it (cosmo eval: "
                   "--kv-cache-gib), or free memory")
        else:
            fix = (f"rollout.cpu_memory_utilization={r.cpu_memory_utilization} of the node's memory; lower it (cosmo "
                   "eval: --cpu-memory-utilization), size the KV cache directly with rollout.cpu_kv_cache_gib "
                   "(--kv-cache-gib), or free memory")
        raise ConfigError(short + fix) from None


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
        import ray  # noqa: PLC0415 - the worker itself is plain Python, testable without Ray

        return {"index": self.index, "version": self.version, "start_s": round(self.start_s, 2), "pid": os.getpid(),
                "host": ray.util.get_node_ip_address()}

    def generate(self, indices: list[int], n: int, version: int) -> list[Trajectory]:
        """`n` sampled responses per row; raises if the engine's weights are not at `version`."""
        from vllm import SamplingParams  # noqa: PLC0415 - vLLM: only processes that generate

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

    def update_weights(self, payload, version: int) -> dict:
        """Load new policy weights in place (a payload of `rollout.weight_transport`), clear caches that
        hold old activations, set the version; report the digest of what every worker loaded."""
        started = time.perf_counter()
        digests = self.llm.collective_rpc(_reload_in_worker, args=(self.cfg.rollout.weight_transport, payload))
        # prefix/encoder/multimodal caches hold results computed with the old weights
        self.llm.reset_prefix_cache()
        self.llm.reset_mm_cache()
        self.llm.llm_engine.reset_encoder_cache()
        self.version = version
        # tensor-parallel workers each load the whole payload: one digest when they all agree
        digest = digests[0] if len(set(digests)) == 1 else f"workers disagree: {sorted(set(digests))}"
        return {"index": self.index, "version": version, "digest": digest, "load_s": time.perf_counter() - started}
