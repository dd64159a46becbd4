"""Per-task reward routing and the RL batch preparation, against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from cosmo.algorithms.batch import prepare_rl_batch
from cosmo.data import Sample
from cosmo.trajectory import Scored, Trajectory
from rewards.combine import combined_reward, objective_scores

REFUSE = "<think>Harmful.</think><answer>I can't help with that.</answer>"


def _row(task: str, answer: str | None = None, constraints=(), should_refuse: bool | None = None) -> Sample:
    refuse = task in ("safety", "jailbreak") if should_refuse is None else should_refuse
    return Sample(id="r", task=task, prompt="p", images=(), answer=answer, should_refuse=refuse,
                  constraints=tuple(constraints), response=None, meta={})


@pytest.mark.parametrize(
    "row, text, expected_scores, expected_total",
    [
        (_row("reasoning", "3"), "<think>3 dots</think><answer>3</answer>",
         {"format": 1.0, "helpful": 1.0, "accuracy": 1.0}, 1.5),
        (_row("reasoning", "3"), "the answer is 4", {"format": 0.0, "helpful": 1.0, "accuracy": 0.0}, 0.0),
        (_row("safety"), REFUSE, {"format": 1.0, "safety": 1.0}, 1.5),
        (_row("jailbreak"), "<think>ok</think><answer>Step 1: ...</answer>", {"format": 1.0, "safety": 0.0}, 0.5),
        (_row("over_refusal"), REFUSE, {"format": 1.0, "helpful": 0.0}, 0.5),
        (_row("instruction", constraints=[{"type": "lowercase"}, {"type": "max_words", "n": 2}]),
         "<think>x</think><answer>three small words</answer>",
         {"format": 1.0, "helpful": 1.0, "constraints": 0.5}, 1.0),
    ],
)
def test_objectives_and_total_by_task(row, text, expected_scores, expected_total):
    scores = objective_scores(row, text)
    assert scores == expected_scores
    assert combined_reward(row, scores, format_weight=0.5) == pytest.approx(expected_total)


def test_missing_task_objective_is_an_error_not_a_zero():
    row = _row("knowledge", answer=None)
    with pytest.raises(ValueError, match="no task objective"):
        combined_reward(row, objective_scores(row, "<think>x</think><answer>Paris</answer>"), 0.5)


def _scored(index: int, total: float | None, error: str | None = None) -> Scored:
    traj = Trajectory(index, f"s{index}", [1, 2], [5, 6, 7], [-0.1, -0.2, -0.3], "t", "stop", 0)
    return Scored(traj, "reasoning", {"accuracy": total or 0.0}, total, error)


def test_prepare_rl_batch_group_advantages_and_exclusion():
    # group 0: rewards 1, 0 | group 1: 2, failed -> the failure counts at the group's valid mean (2)
    scored = [_scored(0, 1.0), _scored(0, 0.0), _scored(1, 2.0), _scored(1, None, error="timeout")]
    items, stats = prepare_rl_batch(scored, group_size=2, weight="std")
    std = math.sqrt(0.5)  # unbiased std of {1, 0}
    assert [it["advantage"] for it in items] == pytest.approx([0.5 / std, -0.5 / std, 0.0, 0.0])
    assert [it["exclude"] for it in items] == [False, False, False, True]
    assert items[0]["response_ids"] == [5, 6, 7] and items[0]["logprobs"] == [-0.1, -0.2, -0.3]
    assert stats["reward/mean"] == pytest.approx(1.0) and stats["reward/failed"] == 1.0
    assert stats["reward/flat_group_frac"] == 0.5  # group 1 is flat once the failure is filled
    with pytest.raises(ValueError, match="groups of 3"):
        prepare_rl_batch(scored, group_size=3, weight="std")
