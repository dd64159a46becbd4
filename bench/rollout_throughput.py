"""Rollout tokens/s: the vLLM engine the rollout actors use vs HF `generate`, same prompts, same lengths.

Both sample at temperature 1 with the vision tokens blocked and are forced to emit exactly
--max-new-tokens tokens per response (vLLM: ignore_eos; HF: min_new_tokens), so they do the same
work. Run it alone on the machine: another busy process skews either side.

    .venv/bin/python bench/rollout_throughput.py --model runs/assets/model-small --data runs/assets/data/train.jsonl
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=8, help="responses per prompt (the RL group size)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    from transformers import GenerationConfig
    from vllm import LLM, SamplingParams

    from cosmo.data import load_images, load_jsonl
    from cosmo.models import blocked_token_ids, chat_prompt, encode_prompts, load_model

    rows = load_jsonl(args.data)[: args.prompts]
    lm = load_model(args.model)
    images = [load_images(r) for r in rows]
    n, t = args.samples, args.max_new_tokens
    total_tokens = len(rows) * n * t

    llm = LLM(args.model, dtype="float32", enforce_eager=True, max_model_len=512, seed=0,
              limit_mm_per_prompt={"image": 1, "video": 0})
    params = SamplingParams(n=n, temperature=1.0, max_tokens=t, ignore_eos=True,
                            logit_bias={i: -100.0 for i in blocked_token_ids(lm.tokenizer)})
    requests = []
    for row, imgs in zip(rows, images, strict=True):
        request = {"prompt": chat_prompt(lm, row.prompt, len(imgs))}
        if imgs:
            request["multi_modal_data"] = {"image": imgs[0]}
        requests.append(request)
    llm.generate(requests, params, use_tqdm=False)  # warm-up

    config = GenerationConfig(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=t,
                              min_new_tokens=t, suppress_tokens=blocked_token_ids(lm.tokenizer),
                              pad_token_id=lm.tokenizer.pad_token_id)
    batch = encode_prompts(lm, [r.prompt for r in rows], images)
    expanded = {k: v.repeat_interleave(n, dim=0) if k in ("input_ids", "attention_mask", "mm_token_type_ids")
                else v for k, v in batch.items()}
    if "pixel_values" in batch:  # each prompt's patches repeated n times, in prompt order
        per_image = (batch["image_grid_thw"].prod(-1)).tolist()
        chunks = torch.split(batch["pixel_values"], per_image)
        expanded["pixel_values"] = torch.cat([c for c in chunks for _ in range(n)])
        expanded["image_grid_thw"] = batch["image_grid_thw"].repeat_interleave(n, dim=0)

    vllm_s, hf_s = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        llm.generate(requests, params, use_tqdm=False)
        vllm_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        with torch.no_grad():
            lm.model.generate(**expanded, generation_config=config)
        hf_s.append(time.perf_counter() - start)
    v, h = min(vllm_s), min(hf_s)
    print(f"{len(rows)} prompts x {n} samples x {t} tokens = {total_tokens} tokens, best of {args.repeats}")
    print(f"vLLM         {v:7.2f} s  {total_tokens / v:9.0f} tok/s")
    print(f"HF generate  {h:7.2f} s  {total_tokens / h:9.0f} tok/s")
    print(f"ratio vLLM / HF tokens/s: {h / v:.2f}x (target >= 5x)")


if __name__ == "__main__":
    main()
