"""Sizes of the offline-built tiny Qwen2.5-VL (docs/models.md), as plain data: the CLI and the config
read them without importing torch."""

import copy

QWEN_VOCAB_SIZE = 151_936  # Qwen2.5-VL's embedding rows (its tokenizer has ~151.6k tokens)

# text: hidden/layers/heads/kv-heads/FFN, mrope_section must sum to head_dim / 2.
# vision: depth/hidden/heads/FFN; its output is projected to the text hidden size by the merger.
PRESETS: dict[str, dict] = {
    # Test model (cpu-stack.md): ~0.82M params, fastest to build/run; not meant to learn anything.
    "tiny": {
        "text": dict(
            hidden_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=256,
            mrope_section=[4, 6, 6],
        ),
        "vision": dict(depth=2, hidden_size=64, num_heads=2, intermediate_size=128, fullatt_block_indexes=[1]),
        "params_range": (0.75e6, 0.90e6),
    },
    # docs/results.md "xs": ~1.07M params; learns the built-in tasks in minutes on 2 CPU cores.
    "small": {
        "text": dict(
            hidden_size=96,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            intermediate_size=384,
            mrope_section=[6, 9, 9],
        ),
        "vision": dict(depth=2, hidden_size=96, num_heads=2, intermediate_size=384, fullatt_block_indexes=[1]),
        "params_range": (1.0e6, 1.15e6),
    },
    # docs/results.md "s": ~4.1M params, ~2.7x slower per sample; for longer budgets or a GPU.
    "medium": {
        "text": dict(
            hidden_size=192,
            num_hidden_layers=4,
            num_attention_heads=3,
            num_key_value_heads=1,
            intermediate_size=768,
            mrope_section=[8, 12, 12],
        ),
        "vision": dict(
            depth=4, hidden_size=128, num_heads=2, intermediate_size=512, fullatt_block_indexes=[1, 3]
        ),
        "params_range": (3.9e6, 4.3e6),
    },
    # ~20M params for the scaling bench (bench/scaling.py): a text stack 6 x 384 wide, a 4-block vision tower.
    "large20m": {
        "text": dict(
            hidden_size=384,
            num_hidden_layers=6,
            num_attention_heads=6,
            num_key_value_heads=2,
            intermediate_size=1536,
            mrope_section=[8, 12, 12],
        ),
        "vision": dict(
            depth=4, hidden_size=256, num_heads=4, intermediate_size=1024, fullatt_block_indexes=[1, 3]
        ),
        "params_range": (18e6, 22e6),
    },
}
# "tiny" with Qwen2.5-VL's real vocabulary size: the embedding / LM head have 151,936 rows (the
# tokenizer keeps its 2048 tokens; the other rows are never produced by it). For learner memory
# benches: the [tokens, vocab] logits dominate as in the real model. Not meant for sampling.
PRESETS["tiny-vocab"] = {**copy.deepcopy(PRESETS["tiny"]), "vocab_size": QWEN_VOCAB_SIZE,
                         "params_range": (19.5e6, 20.5e6)}

