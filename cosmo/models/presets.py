"""Sizes of the offline-built tiny Qwen2.5-VL (docs/models.md), as plain data: the CLI and the config
read them without importing torch."""

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
}
