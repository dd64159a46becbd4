"""The named objectives a reward can combine: what each scores, its range and the rows it applies to.

Kept free of heavy imports so that config validation can check objective names cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectiveInfo:
    name: str
    kind: str  # "rule": a pure function of the row and the text; "model": a model hosted by the reward worker
    low: float
    high: float
    applies_to: str
    description: str


OBJECTIVES: dict[str, ObjectiveInfo] = {
    o.name: o
    for o in (
        ObjectiveInfo("format", "rule", 0.0, 1.0, "every row",
                      "1 when the response is exactly <think>…</think><answer>…</answer>, else 0"),
        ObjectiveInfo("accuracy", "rule", 0.0, 1.0, "rows with a reference answer (reasoning, knowledge)",
                      "1 when the <answer> (a reply with no template tag: all of it) matches the reference "
                      "(normalised match, choice letters, math-verify, a sentence naming a word reference)"),
        ObjectiveInfo("constraints", "rule", 0.0, 1.0, "instruction rows",
                      "fraction of the row's checkable constraints the response satisfies"),
        ObjectiveInfo("safety", "rule", 0.0, 1.0, "rows that must be refused",
                      "1 when the response refuses (rule refusal classifier), else 0"),
        ObjectiveInfo("helpful", "rule", 0.0, 1.0, "rows that must not be refused",
                      "1 when the response answers (does not refuse), else 0"),
        ObjectiveInfo("visual_focus", "rule", 0.0, 1.0,
                      "image rows whose meta records the shape counts, the digit or the typed text",
                      "share of those image facts the <think> states right (rewards/objectives/visual_focus.py)"),
        ObjectiveInfo("reward_model", "model", 0.0, 1.0, "any row routed to it",
                      "HF sequence classifier on (prompt, response): sigmoid(logit) or a label's probability"),
        ObjectiveInfo("judge", "model", 0.0, 1.0, "any row routed to it",
                      "generative judge on vLLM, rubric prompt, 'Score: N' mapped linearly onto [0, 1]"),
        ObjectiveInfo("http_judge", "model", 0.0, 1.0, "any row routed to it",
                      "remote OpenAI-compatible chat-completions judge, same rubric and mapping as judge"),
    )
}
MODEL_OBJECTIVES: tuple[str, ...] = tuple(n for n, o in OBJECTIVES.items() if o.kind == "model")

# Objectives that exist only on one side of `should_refuse`: weighted on a row of the other side they are
# skipped (gated off), not an error. R_helpful is off on harmful rows; the refusal reward off on benign ones.
ROW_GATED: dict[str, bool] = {"safety": True, "helpful": False}  # objective -> the should_refuse it needs


def default_task_weights() -> dict[str, dict[str, float]]:
    """The paper's four-component reward mapped onto our objectives (docs/rewards.md): the task-aware term
    per task, R_helpful as the task term of benign-but-sensitive rows; R_format comes from
    `reward.format_weight`; R_visual_focus (objective `visual_focus`) from `reward.visual_focus_weight`."""
    return {
        "reasoning": {"accuracy": 1.0},
        "knowledge": {"accuracy": 1.0},
        "instruction": {"constraints": 1.0},
        "safety": {"safety": 1.0},
        "jailbreak": {"safety": 1.0},
        "over_refusal": {"helpful": 1.0},
    }


def task_weights(task: str, weights: Mapping[str, Mapping[str, float]] | None, format_weight: float,
                 visual_focus_weight: float = 0.0) -> dict[str, float]:
    """The objective weights of one task; `format` falls back to `format_weight`, `visual_focus` to
    `visual_focus_weight` (left out when 0, so that the default weights read as before)."""
    table = default_task_weights() if weights is None else weights
    if task not in table:
        raise ValueError(f"no task objective: task {task!r} has no entry in reward.weights")
    focus = {"visual_focus": visual_focus_weight} if visual_focus_weight else {}
    return {"format": format_weight, **focus, **table[task]}
