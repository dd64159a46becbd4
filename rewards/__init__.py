"""Reward workers and objectives (docs/rewards.md).

The rule objectives (format, accuracy, refusal, instruction constraints) are plain functions in
`cosmo.rules`, shared with data generation and evaluation; `rewards.objectives` holds the objectives
only rewards use: `visual_focus` (a rule) and the model objectives (`reward_model`, `judge`,
`http_judge`) as classes a reward worker hosts. `rewards.combine` routes them per task into one reward;
`rewards.pool` runs the workers as Ray actors. `cosmo.rules.registry` names them all with their ranges.
"""
