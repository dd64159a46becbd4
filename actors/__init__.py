"""Rollout actors: Ray actors that host a vLLM engine each and turn prompts into trajectories.

`actors.rollout.RolloutWorker` owns one engine (sampling, in-place weight loads); `actors.group.RolloutGroup`
splits each step's prompts over the actors and restarts one that dies or hangs. Evaluation opens its
engine through `actors.rollout.open_engine`.
"""
