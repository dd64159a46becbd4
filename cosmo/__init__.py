"""COSMO: mixed multimodal, multitask, multiobjective RL post-training of reasoning VLMs."""

__version__ = "0.1.0"
