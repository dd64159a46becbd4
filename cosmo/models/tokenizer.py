"""Byte-level BPE tokenizer with Qwen2.5-VL special tokens and chat template, trained offline.

Real Qwen weights cannot be downloaded at run time, so the tiny model gets its own tokenizer. It keeps
Qwen's special-token *names* (ids 0-13 here) so that transformers' and vLLM's Qwen2.5-VL processors find
`<|image_pad|>` etc. by name and the rest of COSMO never hard-codes ids.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

# Order matters: these get ids 0..13, as in Qwen's tokenizer (shifted down to start at 0).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Qwen-style ChatML. A user turn with images lists one vision block per image (before or among the text,
# in content order). No default system prompt: sequences stay short for the tiny models.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "<|im_start|>{{ message['role'] }}{{ '\\n' }}"
    "{%- if message['content'] is string -%}"
    "{{ message['content'] }}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif part['type'] == 'video' or 'video' in part -%}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif part['type'] == 'text' -%}"
    "{{ part['text'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "<|im_end|>{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant{{ '\\n' }}{%- endif -%}"
)

# Always in the training data so every digit and punctuation mark exists as a single token regardless of
# the caller's corpus (byte fallback alone would cover them, but merges around them need examples).
_BASE_TEXT: tuple[str, ...] = (
    string.digits,
    " ".join(string.digits),
    string.punctuation,
    " ".join(string.punctuation),
    string.ascii_letters,
    " ".join(string.ascii_letters),
)


def train_bpe(corpus: Sequence[str], vocab_size: int = 2048) -> Tokenizer:
    """Train a byte-level BPE whose vocabulary is exactly `vocab_size` (deterministic for a given corpus).

    Digits are split individually (as Qwen does) so numbers tokenise the same way whatever the corpus.
    If the corpus is too small to reach `vocab_size` merges, the vocabulary is filled with
    `<|reserved_i|>` special tokens so that tokenizer and embedding matrix always agree in size.
    """
    if vocab_size <= len(SPECIAL_TOKENS) + 256:
        raise ValueError(f"vocab_size must exceed {len(SPECIAL_TOKENS) + 256} (specials + byte alphabet)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([*_BASE_TEXT, *corpus], trainer=trainer)
    missing = vocab_size - tok.get_vocab_size()
    if missing > 0:
        tok.add_special_tokens([f"<|reserved_{i}|>" for i in range(missing)])
    for i, name in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(name) != i:
            raise RuntimeError(f"special token {name} got id {tok.token_to_id(name)}, expected {i}")
    return tok


def wrap_tokenizer(tok: Tokenizer, model_max_length: int = 4096) -> PreTrainedTokenizerFast:
    """Wrap a trained BPE as an HF tokenizer with Qwen's eos/pad conventions and the chat template."""
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf


def build_tokenizer(corpus: Sequence[str], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """Train and wrap in one step."""
    return wrap_tokenizer(train_bpe(corpus, vocab_size))
