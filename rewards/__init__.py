"""Reward workers and objectives.

`rewards.objectives` holds the scoring rules as plain, pure Python functions (format, accuracy,
refusal, instruction constraints) so they can be unit-tested and reused by data generation and
evaluation; the Ray worker pool only wraps them later.
"""
