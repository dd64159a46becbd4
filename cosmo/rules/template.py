"""The response template every COSMO response follows, and its parser.

One parser is shared by the format reward, the accuracy/refusal/constraint checks and the data
validator, so "well formed" means the same thing everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
RESPONSE_TEMPLATE = THINK_OPEN + "{reasoning}" + THINK_CLOSE + ANSWER_OPEN + "{final}" + ANSWER_CLOSE

_WELL_FORMED = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
_TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)


@dataclass(frozen=True)
class ParsedResponse:
    think: str | None
    answer: str | None
    well_formed: bool
    text: str = ""  # the whole response (empty for non-text input): the checks fall back to it


def parsed(response: str | ParsedResponse) -> ParsedResponse:
    """A response parsed once: the reward's checks take either form, so each score parses it one time."""
    return response if isinstance(response, ParsedResponse) else parse_response(response)


def format_response(reasoning: str, final: str) -> str:
    """Put a reasoning and a final answer into the template (no whitespace between tags)."""
    return RESPONSE_TEMPLATE.format(reasoning=reasoning, final=final)


def parse_response(text: str) -> ParsedResponse:
    """Split a response into its think and answer parts.

    well_formed: exactly one <think>…</think> followed by exactly one <answer>…</answer> and
    nothing but whitespace around them. answer: stripped text of the last <answer> (up to its
    </answer>, or to the end when unclosed); None when there is no <answer> tag. think: stripped
    text of the first closed <think>…</think>, else None.
    """
    if not isinstance(text, str):
        return ParsedResponse(None, None, False)
    match = _WELL_FORMED.fullmatch(text)
    if match and all(text.count(tag) == 1 for tag in _TAGS):
        return ParsedResponse(match.group(1).strip(), match.group(2).strip(), True, text)

    think = None
    t_open = text.find(THINK_OPEN)
    if t_open >= 0:
        t_close = text.find(THINK_CLOSE, t_open)
        if t_close >= 0:
            think = text[t_open + len(THINK_OPEN) : t_close].strip()

    answer = None
    a_open = text.rfind(ANSWER_OPEN)
    if a_open >= 0:
        rest = text[a_open + len(ANSWER_OPEN) :]
        a_close = rest.find(ANSWER_CLOSE)
        answer = (rest if a_close < 0 else rest[:a_close]).strip()
    return ParsedResponse(think, answer, False, text)


def final_answer(response: ParsedResponse) -> str | None:
    """The part a correctness check reads: the <answer>; a plain reply with none of the template's tags (a chat
    model's, before SFT taught it the template) is all answer. A template reply cut off before its <answer>
    has none (None): its reasoning is not an answer."""
    if response.answer is not None:
        return response.answer
    return None if any(tag in response.text for tag in _TAGS) else response.text
