"""Learner memory and time of one RL micro-batch: full-vocabulary logits (the former path) vs
response-only chunked log-probs (the learner's path), and fixed-count vs token-budget micro-batches.

    .venv/bin/python bench/learner_memory.py [--rows 2] [--response 1024]

Part 1, on the `tiny-vocab` preset (Qwen2.5-VL's 151,936-row LM head, tiny elsewhere), `--rows`
responses of `--response` tokens: each path runs forward + backward of the CPGD loss in its own
subprocess, which reports its peak RSS (the high-water mark of the process, what a learner rank
needs) and the step's CPU time (process time: robust to other processes on a shared machine); the
two never share an allocator. Part 2, on the `large20m` preset (big enough that time follows the
token count rather than per-operation overhead), 16
responses of mixed lengths: padding fraction and step time of fixed-count micro-batches (4 rows,
in order) vs micro-batches packed up to a token budget. Part 3, where the default recipe runs
(configs/tiny-cpu.yaml: its preset, rl.micro_batch_size responses of rollout.max_new_tokens tokens, its
learner.logprob_chunk_tokens): the CPU time of a micro-batch on both paths, alternated `--repeats` times in
one process, medians side by side.
The last line is the peak-RSS ratio of part 1.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from cosmo.algorithms import policy_loss
from cosmo.algorithms.microbatch import fixed_count, pack_by_tokens, padding_fraction, token_weights
from cosmo.config import LearnerConfig, load_config
from cosmo.data import corpus_texts
from cosmo.models import build_tiny_model, load_model
from learner.forward import response_logprobs

PROMPT = 32
RECIPE = Path(__file__).resolve().parents[1] / "configs" / "tiny-cpu.yaml"
CHUNK = LearnerConfig().logprob_chunk_tokens


def _batch(lengths: list[int], seed: int) -> tuple[dict, torch.Tensor]:
    """Right-padded text-only rows: a PROMPT-token prompt, then a response of each length."""
    gen = torch.Generator().manual_seed(seed)
    width = PROMPT + max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    attn = torch.zeros_like(ids)
    for r, n in enumerate(lengths):
        row = torch.randint(20, 2000, (PROMPT + n,), generator=gen)
        ids[r, : PROMPT + n], attn[r, : PROMPT + n] = row, 1
        labels[r, PROMPT : PROMPT + n] = row[PROMPT:]
    return {"input_ids": ids, "attention_mask": attn}, labels


def full_logits_logprobs(model, batch: dict, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The former learner path: every position's logits, log-softmax over the whole vocabulary."""
    logp_all = torch.log_softmax(model(**batch).logits[:, :-1].float(), dim=-1)
    chosen = logp_all.gather(-1, labels[:, 1:].clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return chosen, -(logp_all.exp() * logp_all).sum(-1)


def _step(model, batch: dict, labels: torch.Tensor, path: str, weights: torch.Tensor | None = None,
          chunk: int = CHUNK) -> None:
    if path == "old":
        logprobs, _ = full_logits_logprobs(model, batch, labels)
    else:
        logprobs, _ = response_logprobs(model, batch, labels, chunk=chunk)
    mask = labels[:, 1:] != -100
    adv = torch.linspace(-1, 1, len(labels))
    loss, _ = policy_loss("cpgd", logprobs, logprobs.detach() - 0.01, None, adv, mask, weights=weights)
    loss.backward()


def child(path: str, model_dir: str, rows: int, response: int) -> None:
    """One variant in this process: peak RSS and time of a forward + backward."""
    model = load_model(model_dir).model.train()
    batch, labels = _batch([response] * rows, seed=0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()
    _step(model, batch, labels, path)
    seconds = time.process_time() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"peak_mib": peak / 1024, "before_mib": before / 1024, "step_s": seconds}))


def memory_part(rows: int, response: int, tmp: Path) -> float:
    model_dir = build_tiny_model(tmp / "tiny-vocab", preset="tiny-vocab", seed=0, corpus=corpus_texts())
    print(f"== peak memory of one learner micro-batch: tiny-vocab (vocab 151,936), {rows} x {response}-token "
          f"responses, chunk {CHUNK} positions")
    print(f"{'path':28s} {'peak RSS MiB':>13s} {'step MiB':>9s} {'CPU s':>7s}")
    result = {}
    for path, label in (("old", "full logits (former)"), ("new", "response-only chunked (now)")):
        out = subprocess.run([sys.executable, __file__, "--child", path, "--model", str(model_dir),
                              "--rows", str(rows), "--response", str(response)],
                             capture_output=True, text=True, check=True)
        result[path] = json.loads(out.stdout.strip().splitlines()[-1])
        r = result[path]
        print(f"{label:28s} {r['peak_mib']:13.0f} {r['peak_mib'] - r['before_mib']:9.0f} {r['step_s']:7.2f}")
    return result["new"]["peak_mib"] / result["old"]["peak_mib"]


def packing_part(tmp: Path) -> None:
    model_dir = build_tiny_model(tmp / "large20m", preset="large20m", seed=0, corpus=corpus_texts())
    model = load_model(model_dir).model.train()
    lengths = [PROMPT + n for n in (480, 24, 300, 60, 12, 200, 400, 40, 96, 16, 350, 8, 150, 32, 250, 70)]
    budget = 2 * max(lengths)
    print(f"== micro-batches of 16 responses of mixed lengths ({min(lengths)}-{max(lengths)} tokens), large20m preset")
    print(f"{'micro-batches':34s} {'count':>5s} {'padding':>8s} {'CPU s':>7s}")
    for label, split in (("fixed count (4 rows, in order)", fixed_count(len(lengths), 4)),
                         (f"token budget ({budget} tokens)", pack_by_tokens(lengths, budget))):
        parts = [_batch([lengths[i] - PROMPT for i in rows], seed=7) for rows in split]
        weights = token_weights([labels[:, 1:] != -100 for _, labels in parts], "token_mean")
        model.zero_grad()
        started = time.process_time()
        for (batch, labels), w in zip(parts, weights, strict=True):
            _step(model, batch, labels, "new", w)
        seconds = time.process_time() - started
        print(f"{label:34s} {len(split):5d} {padding_fraction(lengths, split):8.1%} {seconds:7.2f}")


def default_recipe_part(tmp: Path, repeats: int) -> None:
    cfg = load_config(RECIPE)
    rows, response = cfg.rl.micro_batch_size, cfg.rollout.max_new_tokens
    model_dir = build_tiny_model(tmp / cfg.model.build_preset, preset=cfg.model.build_preset, seed=0,
                                 corpus=corpus_texts())
    model = load_model(model_dir).model.train()
    batch, labels = _batch([response] * rows, seed=0)
    times: dict[str, list[float]] = {"old": [], "new": []}
    for _ in range(repeats + 1):  # the first round warms both paths up and is not counted
        for path, seconds in times.items():
            model.zero_grad()
            started = time.process_time()
            _step(model, batch, labels, path, chunk=cfg.learner.logprob_chunk_tokens)
            seconds.append(time.process_time() - started)
    old, new = (statistics.median(times[p][1:]) for p in ("old", "new"))
    print(f"== the default recipe's micro-batch: preset {cfg.model.build_preset}, {rows} x {response}-token "
          f"responses, learner.logprob_chunk_tokens={cfg.learner.logprob_chunk_tokens}, median CPU s of {repeats}")
    print(f"{'full logits (former)':28s} {old:7.3f}\n{'response positions only (now)':28s} {new:7.3f}")
    print(f"step time new/old on the default recipe: {new / old:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2)
    parser.add_argument("--response", type=int, default=1024)
    parser.add_argument("--child", choices=("old", "new"))
    parser.add_argument("--model")
    parser.add_argument("--repeats", type=int, default=20, help="part 3: timed rounds per path")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.child:
        child(args.child, args.model, args.rows, args.response)
        return
    with tempfile.TemporaryDirectory() as tmp:
        packing_part(Path(tmp))
        default_recipe_part(Path(tmp), args.repeats)
        ratio = memory_part(args.rows, args.response, Path(tmp))
    print(f"memory ratio new/old: {ratio:.3f}")


if __name__ == "__main__":
    main()
