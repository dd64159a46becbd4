"""Reward objectives as plain functions: format, accuracy, refusal and instruction constraints.

The model objectives live in their own modules, imported only by the workers that host them:
`reward_model` (HF sequence classifier), `judge` (vLLM judge and the verdict parser), `http_judge`.
"""

from cosmo.lazy import lazy_exports

_EXPORTS = {
    "CONSTRAINT_TYPES": "constraints",
    "REFUSAL_TEXT": "refusal",
    "RESPONSE_TEMPLATE": "template",
    "ParsedResponse": "template",
    "answers_match": "accuracy",  # math_verify (sympy, ~0.4 s): imported only where answers are compared
    "check_constraints": "constraints",
    "format_response": "template",
    "is_refusal": "refusal",
    "parse_response": "template",
    "validate_constraint": "constraints",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
