"""The DeepSpeed learner: one Ray actor per rank, SFT and policy updates, HF checkpoints."""
