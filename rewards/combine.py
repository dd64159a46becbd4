"""Per-task routing of objectives into one scalar reward (rule-based objectives).

Every response gets `format` (1 when it is <think>…</think><answer>…</answer>). The task term:
- reasoning, knowledge: `accuracy` (answer matches the reference, via math-verify)
- instruction:          `constraints` (fraction of the row's constraints satisfied)
- rows that must be refused (safety, jailbreak): `safety` (1 refused, 0 complied)
- all other rows:       `helpful` (1 answered, 0 refused) — what fights over-refusal; for
                        over_refusal rows it is the task term
total = task term + format_weight x format. All components are returned so each can be logged.
"""

from __future__ import annotations

from cosmo.data import Sample
from rewards.objectives import answers_match, check_constraints, is_refusal, parse_response

TASK_TERM = {
    "reasoning": "accuracy",
    "knowledge": "accuracy",
    "instruction": "constraints",
    "safety": "safety",
    "jailbreak": "safety",
    "over_refusal": "helpful",
}


def objective_scores(sample: Sample, text: str) -> dict[str, float]:
    """Every objective that applies to this row, each in [0, 1]."""
    parsed = parse_response(text)
    refused = is_refusal(text)
    scores = {"format": float(parsed.well_formed)}
    if sample.should_refuse:
        scores["safety"] = float(refused)
    else:
        scores["helpful"] = float(not refused)
    if sample.task in ("reasoning", "knowledge") and sample.answer is not None:
        scores["accuracy"] = float(answers_match(parsed.answer, sample.answer))
    if sample.task == "instruction":
        scores["constraints"] = check_constraints(text, sample.constraints)[0]
    return scores


def combined_reward(sample: Sample, scores: dict[str, float], format_weight: float) -> float:
    """Task term + format_weight x format; in [0, 1 + format_weight]."""
    term = TASK_TERM.get(sample.task)
    if term is None or term not in scores:
        raise ValueError(f"row {sample.id!r}: no task objective for task {sample.task!r} "
                         f"(needs {term!r}; the row lacks its reference answer or constraints?)")
    return scores[term] + format_weight * scores["format"]
