"""Held-out evaluation through vLLM: all rows in one `generate` call against calls of 100 rows, side by side.

The evaluation used to hand the engine 100 rows at a time (for a progress line after each call); every call
ends with a few long answers decoding alone. Now the rows go in one call and the progress line comes from
vLLM's progress hook. This bench times both on the same engine settings and rows, alternating the order over
repeats, checks that greedy outputs are identical, and prints rows/s and the ratio. Run it alone on the
machine (2 cores: anything else running skews it):

    .venv/bin/python bench/eval_batching.py --model runs/assets/smollm2 --eval runs/assets/world2/eval.jsonl
"""

from __future__ import annotations

import argparse
import statistics
import time

from cosmo.config import RolloutConfig
from cosmo.data import load_jsonl
from cosmo.evaluation.heldout import generate_vllm, select_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a model folder (HF checkpoint)")
    ap.add_argument("--eval", required=True, help="held-out rows (JSONL)")
    ap.add_argument("--per-task", type=int, default=60, help="rows per task (default 60)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--max-model-len", type=int, default=384)
    ap.add_argument("--kv-cache-gib", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    rows = select_rows(load_jsonl(args.eval), args.per_task)
    rollout = RolloutConfig(max_model_len=args.max_model_len, max_new_tokens=args.max_new_tokens,
                            cpu_kv_cache_gib=args.kv_cache_gib)
    modes = {"calls of 100 rows": 100, "one call": None}
    seconds: dict[str, list[float]] = {m: [] for m in modes}
    outputs: dict[str, list[str]] = {}
    for r in range(args.repeats):
        for mode in (list(modes) if r % 2 == 0 else list(reversed(modes))):
            started = time.perf_counter()
            outputs[mode] = generate_vllm(args.model, rows, max_new_tokens=args.max_new_tokens, temperature=0.0,
                                          on_gpu=False, rollout=rollout, rows_per_call=modes[mode])
            seconds[mode].append(time.perf_counter() - started)
            print(f"repeat {r + 1}: {mode}: {len(rows)} rows in {seconds[mode][-1]:.1f} s", flush=True)
    a, b = (outputs[m] for m in modes)
    same = sum(x == y for x, y in zip(a, b, strict=True))
    print(f"\n{len(rows)} rows, {args.max_new_tokens} new tokens, median of {args.repeats} (engine start included)")
    for mode, secs in seconds.items():
        print(f"  {mode:>18}: {statistics.median(secs):6.1f} s  {len(rows) / statistics.median(secs):5.2f} rows/s")
    first, one = (statistics.median(seconds[m]) for m in modes)
    print(f"  one call / calls of 100: {one / first:.2f}x the time; "
          f"greedy outputs identical on {same}/{len(rows)} rows")


if __name__ == "__main__":
    main()
