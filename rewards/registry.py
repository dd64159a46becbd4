"""The named objectives a reward can combine: what each scores, its range and the rows it applies to.

Kept free of heavy imports so that config validation can check objective names cheaply.
"""

from __future__ import annotations

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
                      "1 when the <answer> matches the reference (normalised match, choice letters, math-verify)"),
        ObjectiveInfo("constraints", "rule", 0.0, 1.0, "instruction rows",
                      "fraction of the row's checkable constraints the response satisfies"),
        ObjectiveInfo("safety", "rule", 0.0, 1.0, "rows that must be refused",
                      "1 when the response refuses (rule refusal classifier), else 0"),
        ObjectiveInfo("helpful", "rule", 0.0, 1.0, "rows that must not be refused",
                      "1 when the response answers (does not refuse), else 0"),
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
