"""The data that flows between rollout actors, reward workers and the learner.

Plain dataclasses so that `actors/`, `rewards/` and `learner/` share them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Trajectory:
    """One sampled response to one training row, as the rollout engine produced it."""

    sample_index: int  # row index in the training file
    sample_id: str
    prompt_ids: list[int]  # expanded prompt (image placeholders included), as the engine saw it
    response_ids: list[int]
    logprobs: list[float]  # behaviour policy's log-prob of each response token
    text: str
    finish_reason: str
    version: int  # policy version (learner step) of the weights that produced it


@dataclass
class LearnerItem:
    """One trajectory as the learner trains on it (the driver's batch, one per sampled response)."""

    sample_index: int  # row index in the training file (every learner rank reads the same file)
    response_ids: list[int]
    logprobs: list[float]  # behaviour policy's log-prob of each response token
    advantage: float
    exclude: bool = False  # scoring failed: kept for the batch's fixed shape, every token masked out of the loss
    kl_weight: float = 1.0  # scale of its reference-KL term (algorithm.kl_rows=must_refuse: 0 on rows left free)


@dataclass
class Scored:
    """A trajectory with its reward per objective and combined; `error` set when scoring failed."""

    trajectory: Trajectory
    task: str
    rewards: dict[str, float] = field(default_factory=dict)
    total: float | None = None
    error: str | None = None
