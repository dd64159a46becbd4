"""Rollout actors: Ray actors that host a vLLM engine each and turn prompts into trajectories.

Empty until the RL stage lands (issue #4); evaluation generates through `cosmo.models.generate`.
"""
