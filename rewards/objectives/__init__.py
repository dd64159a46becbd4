"""Reward objectives as plain functions: format, accuracy, refusal and instruction constraints.

The model objectives live in their own modules, imported only by the workers that host them:
`reward_model` (HF sequence classifier), `judge` (vLLM judge and the verdict parser), `http_judge`.
"""

from rewards.objectives.accuracy import answers_match
from rewards.objectives.constraints import CONSTRAINT_TYPES, check_constraints, validate_constraint
from rewards.objectives.refusal import REFUSAL_TEXT, is_refusal
from rewards.objectives.template import RESPONSE_TEMPLATE, ParsedResponse, format_response, parse_response

__all__ = [
    "CONSTRAINT_TYPES",
    "REFUSAL_TEXT",
    "RESPONSE_TEMPLATE",
    "ParsedResponse",
    "answers_match",
    "check_constraints",
    "format_response",
    "is_refusal",
    "parse_response",
    "validate_constraint",
]
