"""Per-task routing of objectives into one scalar reward, the safety gate, and the model objectives' setup.

Objectives (cosmo/rules/registry.py; docs/rewards.md): the rule objectives `format`, `accuracy`,
`constraints`, `safety` (must-refuse rows: a full refusal, cosmo/rules/refusal.py), `helpful` (other rows: a
full compliance that says something beyond promises of help and the question's own words), `visual_focus`
(image rows whose meta says what the image shows:
does the <think> state it), computed for every row they apply to by `objective_scores`; the model
objectives `reward_model`, `judge`, `http_judge`, computed by the reward worker only for rows whose task
weights them (or when the gate needs them).

total = Σ_o w[task][o] · score_o, with w[task] = reward.weights[task], w[task]["format"] defaulting
to reward.format_weight and w[task]["visual_focus"] to reward.visual_focus_weight. An objective weighted
on a row where it does not apply by design (`helpful` on a must-refuse row, `safety` on a benign one,
`visual_focus` on a row without an image fact) is skipped; any other weighted objective the row cannot
have (`accuracy` without a reference answer) is an error for that trajectory, never a 0.
Safety gate (reward.gate): on a must-refuse row whose gate objective scores below the threshold (unsafe
compliance), total = min(total, cap).
Defaults: reasoning/knowledge accuracy, instruction constraints, safety/jailbreak safety,
over_refusal helpful, each + 0.5 x format.
"""

from __future__ import annotations

from collections.abc import Mapping

from cosmo.config import GateConfig, RewardConfig
from cosmo.data import Sample
from cosmo.rules.answers import answers_match
from cosmo.rules.constraints import check_constraints
from cosmo.rules.refusal import refusal_outcome, substantive
from cosmo.rules.registry import MODEL_OBJECTIVES, ROW_GATED, task_weights
from cosmo.rules.template import final_answer, parse_response
from rewards.objectives.visual_focus import visual_facts, visual_focus_score


def objective_scores(sample: Sample, text: str) -> dict[str, float]:
    """Every rule objective that applies to this row, each in [0, 1]."""
    response = parse_response(text)  # once: every check below reads this
    outcome = refusal_outcome(response)
    scores = {"format": float(response.well_formed)}
    if sample.should_refuse:  # a partial refusal gave the content: no safety reward
        scores["safety"] = float(outcome == "refusal")
    else:  # a partial refusal declined: no helpful reward; nor an empty, "ok" or promise-only answer
        scores["helpful"] = float(outcome == "compliance" and substantive(response, sample.prompt))
    if sample.task in ("reasoning", "knowledge") and sample.answer is not None:
        scores["accuracy"] = float(answers_match(final_answer(response), sample.answer, sample.prompt))
    if sample.task == "instruction":
        scores["constraints"] = check_constraints(response, sample.constraints)[0]
    focus = visual_focus_score(sample, response)
    if focus is not None:
        scores["visual_focus"] = focus
    return scores


def skipped_by_row(sample: Sample, objective: str) -> bool:
    """True for an objective that does not apply to this row by design (helpful/safety on the wrong side,
    visual_focus on a row without an image fact to check)."""
    if objective == "visual_focus":
        return visual_facts(sample) is None
    return objective in ROW_GATED and ROW_GATED[objective] != sample.should_refuse


def model_objectives_for(sample: Sample, cfg: RewardConfig) -> list[str]:
    """The model objectives the worker must compute for this row: weighted ones, plus the gate's."""
    w = task_weights(sample.task, cfg.weights, cfg.format_weight)
    names = [n for n in MODEL_OBJECTIVES if w.get(n, 0.0) != 0.0]
    if cfg.gate is not None and sample.should_refuse and cfg.gate.objective in MODEL_OBJECTIVES:
        names = names + [cfg.gate.objective] if cfg.gate.objective not in names else names
    return names


def gate_fires(sample: Sample, scores: Mapping[str, float], gate: GateConfig | None) -> bool:
    """Unsafe compliance: a must-refuse row whose gate objective scores below the gate's threshold."""
    if gate is None or not sample.should_refuse:
        return False
    if gate.objective not in scores:
        raise ValueError(f"row {sample.id!r}: the safety gate needs objective {gate.objective!r}, not computed")
    return scores[gate.objective] < gate.threshold


def combined_reward(sample: Sample, scores: Mapping[str, float], format_weight: float = 0.5,
                    weights: Mapping[str, Mapping[str, float]] | None = None, gate: GateConfig | None = None,
                    visual_focus_weight: float = 0.0) -> float:
    """Σ weight x objective over the row's task weights (module rule), capped by the gate when it fires."""
    total, used = 0.0, 0
    for name, w in task_weights(sample.task, weights, format_weight, visual_focus_weight).items():
        if w == 0.0:
            continue
        if name in scores:
            total += w * scores[name]
            used += name != "format"
        elif not skipped_by_row(sample, name):
            raise ValueError(f"row {sample.id!r}: no task objective {name!r} for task {sample.task!r} (weight {w:g}; "
                             "the row lacks its reference answer or constraints, or the objective was not computed)")
    if gate_fires(sample, scores, gate):
        total = min(total, gate.cap)  # type: ignore[union-attr]
    return total


def combine(sample: Sample, scores: dict[str, float], cfg: RewardConfig) -> float:
    """The configured total of one row; with a gate, records `gated` (1 fired, 0 not) in `scores` on
    must-refuse rows (logged as reward/gated: the unsafe-compliance rate the gate saw)."""
    total = combined_reward(sample, scores, cfg.format_weight, cfg.weights, cfg.gate, cfg.visual_focus_weight)
    if cfg.gate is not None and sample.should_refuse:
        scores["gated"] = float(gate_fires(sample, scores, cfg.gate))
    return total


def build_model_objectives(cfg: RewardConfig, device: str = "cpu", seed: int = 0) -> dict:
    """The model objectives some task weights (or the gate uses), each loaded once; name -> objective."""
    used = {n for w in cfg.weights.values() for n, v in w.items() if v != 0.0 and n in MODEL_OBJECTIVES}
    if cfg.gate is not None and cfg.gate.objective in MODEL_OBJECTIVES:
        used.add(cfg.gate.objective)
    built: dict = {}
    for name in MODEL_OBJECTIVES:  # a fixed order: reward model, local judge, remote judge
        if name not in used:
            continue
        section = getattr(cfg, name)
        if section is None:
            raise ValueError(f"reward.weights uses objective {name!r} but reward.{name} is not configured")
        if name == "reward_model":
            from rewards.objectives.reward_model import RewardModelObjective  # noqa: PLC0415 - a model objective: only the worker hosting it

            built[name] = RewardModelObjective(section, device)
        elif name == "judge":
            from rewards.objectives.judge import VLLMJudge  # noqa: PLC0415 - a model objective: only the worker hosting it

            built[name] = VLLMJudge(section, device, seed)
        else:
            from rewards.objectives.http_judge import HttpJudge  # noqa: PLC0415 - a model objective: only the worker hosting it

            built[name] = HttpJudge(section)
    return built
