"""Can the frozen SmolLM2 read a word it is handed as pieces? The ceiling of issue #25's alignment on held-out words.

A vision tower that feeds a frozen language model can only hand it input embeddings. For a word the tower never saw
rendered, the embeddings it can learn to emit are those of pieces it did see (characters, or short pieces shared with
training words), not the word's own token (250 of the probe's 307 held-out words are one token of SmolLM2's
vocabulary, met by the tower only if that word was rendered in training). This bench asks the frozen model to repeat
each held-out word of `bench/reading_probe.py`'s split given as: its own tokens (the tokenizer's pieces: the control),
pieces of at most 3 and 2 characters, and single characters (what the probe's tower emits), the pieces taken
longest-first from SmolLM2's vocabulary. A word counts as read when the greedy answer contains it. No image and no
tower are involved: a tower that emitted every piece's embedding exactly would reach these figures with this
prompt; the control shows what the prompt itself costs.

    .venv/bin/python bench/lm_reading.py [--model runs/assets/smollm2] [--data runs/assets/world]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).parent))
from reading_probe import profile_words  # noqa: E402 - the probe's held-out words, by the same split

from cosmo.stats import wilson_interval  # noqa: E402

ASK = "<|im_start|>user\nRepeat exactly this word:"
TURN = "<|im_end|>\n<|im_start|>assistant\n"
SPACE = "Ġ"  # byte-level BPE's mark of a leading space


def pieces(word: str, longest: int, vocab: dict[str, int]) -> list[int]:
    """`word` (with its leading space) cut into vocabulary tokens of at most `longest` characters, longest match
    first; every single character is in SmolLM2's byte-level vocabulary, so any word can be cut."""
    ids, start, spaced = [], 0, False
    while start < len(word):
        for size in range(min(longest, len(word) - start), 0, -1):
            piece = ("" if spaced or start else SPACE) + word[start:start + size]
            if piece in vocab:
                ids.append(vocab[piece])
                start += size
                break
        else:
            if start or spaced:
                raise ValueError(f"lm_reading: {word[start]!r} of {word!r} is not a token of the vocabulary")
            ids.append(vocab[SPACE])  # no "Ġx" token: the space as a piece of its own
            spaced = True
    return ids


def read_rate(model, tokenizer, words: list[str], cut) -> tuple[int, list[tuple[str, str]]]:
    """How many of `words`, handed to the model as `cut(word)` token ids, the greedy answer repeats."""
    ask = tokenizer(ASK, add_special_tokens=False)["input_ids"]
    turn = tokenizer(TURN, add_special_tokens=False)["input_ids"]
    hits, answers = 0, []
    for word in words:
        ids = torch.tensor([ask + cut(word) + turn])
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                                 pad_token_id=tokenizer.eos_token_id)
        answer = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
        hits += word in answer.lower()
        answers.append((word, answer))
    return hits, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("runs/assets/smollm2"))
    parser.add_argument("--data", type=Path, default=Path("runs/assets/world"))
    parser.add_argument("--words", type=int, default=0, help="first N held-out words only (0: all)")
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    vocab = tokenizer.get_vocab()
    _, held = profile_words(args.data)
    words = held[: args.words] if args.words else held
    single = sum(len(tokenizer(" " + w, add_special_tokens=False)["input_ids"]) == 1 for w in words)
    print(f"{len(words)} held-out words of the probe's split, {single} of them one token of SmolLM2's vocabulary",
          flush=True)
    cuts = {"its own tokens (control)": lambda w: tokenizer(" " + w, add_special_tokens=False)["input_ids"],
            "pieces of <= 3 characters": lambda w: pieces(w, 3, vocab),
            "pieces of <= 2 characters": lambda w: pieces(w, 2, vocab),
            "single characters (the probe's tower)": lambda w: pieces(w, 1, vocab)}
    for name, cut in cuts.items():
        hits, answers = read_rate(model, tokenizer, words, cut)
        low, high = wilson_interval(hits, len(words))
        shown = "; ".join(f"{w} -> {a!r}" for w, a in answers[:3])
        print(f"{name:40s} {hits:4d}/{len(words)} = {hits / len(words):.2f} [{low:.2f}, {high:.2f}]   {shown}",
              flush=True)


if __name__ == "__main__":
    main()
