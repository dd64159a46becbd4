"""Reward workers and objectives (docs/rewards.md).

`rewards.objectives` holds the rule objectives as plain, pure Python functions (format, accuracy,
refusal, instruction constraints) so they can be unit-tested and reused by data generation and
evaluation, and the model objectives (`reward_model`, `judge`, `http_judge`) as classes a reward worker
hosts; `rewards.registry` names them all with their ranges; `rewards.combine` routes them per task into
one reward; `rewards.pool` runs the workers as Ray actors.
"""
