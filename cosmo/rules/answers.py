"""Answer correctness for verifiable tasks (reasoning, knowledge).

Rule, in order (any hit -> match):
1. normalised exact match, case-insensitive: `\\boxed{}` / `$…$` / quotes / brackets unwrapped,
   trailing punctuation and a leading article ("the", "a", "an") dropped, spaces collapsed,
   number words zero…twenty read as digits ("three" matches "3");
2. multiple choice: a one-letter reference (A–J) matches "B", "(B)", "B)", "B.", "(B) text";
3. math: when the reference contains a digit or LaTeX, `math_verify.parse` + `verify` compare
   values ("3" == "3.0" == "\\boxed{3}" == "$3$", "0.5" == "1/2"). math_verify extracts the last
   number of free text, so "I count 3" matches "3". Word references never go through it, so
   unrelated words cannot compare equal as symbol products.
4. a sentence that names a word reference: a chat model answers "The capital of Ireland is Dublin." A
   reference with a letter (not a choice letter) matches when its normalised words occur as whole words in
   the normalised prediction (at most 300 characters) and not in the question (`prompt`), so that echoing
   the question earns nothing. A list of guesses would also name it: the reference's weight is the only
   guard, and a run's answers are read for it (docs/rewards.md). Numbers never match this way: restating a
   word problem repeats its numbers, so a number is read by rule 3 (the last one given).
Garbage, None and empty predictions give False; nothing here raises.
"""

from __future__ import annotations

import re
import threading

from math_verify import parse, verify

_NUMBER_WORDS = dict(
    zero="0", one="1", two="2", three="3", four="4", five="5", six="6", seven="7", eight="8", nine="9",
    ten="10", eleven="11", twelve="12", thirteen="13", fourteen="14", fifteen="15", sixteen="16",
    seventeen="17", eighteen="18", nineteen="19", twenty="20",
)  # fmt: skip
_BOXED = re.compile(r"\\boxed\s*\{(.*)\}", re.DOTALL)
_CHOICE = re.compile(r"\(?([a-j])(?:\)|\.|:|\)?$)(?:\s.*)?", re.DOTALL)
_MAX_MATH_CHARS = 300  # longer "answers" are not final answers; also bounds math_verify's work


def _normalise(text: str) -> str:
    text = text.strip()
    boxed = _BOXED.search(text)
    if boxed:
        text = boxed.group(1)
    text = text.strip().strip("$").strip()
    text = re.sub(r"\s+", " ", text.lower())
    text = text.rstrip(".!?;: ").strip("\"'`").strip()
    text = re.sub(r"^(the|a|an) ", "", text)
    return _NUMBER_WORDS.get(text, text)


def _choice_letter(text: str) -> str | None:
    match = _CHOICE.fullmatch(text.strip().lower())
    return match.group(1) if match else None


def _math_equal(predicted: str, reference: str) -> bool:
    # math_verify's timeout uses signal.alarm, which only works in the main thread.
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    gold = parse(reference, parsing_timeout=timeout)
    pred = parse(predicted, parsing_timeout=timeout)
    if not gold or not pred:
        return False
    return bool(verify(gold, pred, timeout_seconds=timeout))


def _names(predicted: str, reference: str, prompt: str) -> bool:
    """Rule 4: the reference's words occur in the prediction as whole words, and not in the question."""
    ref = _normalise(reference)
    if not re.search(r"[a-z]", ref) or re.search(r"[0-9]", ref) or len(ref) < 2:
        return False
    words = re.compile(r"(?<![a-z0-9])" + re.escape(ref) + r"(?![a-z0-9])")
    return bool(words.search(_normalise(predicted))) and not words.search(_normalise(prompt))


def answers_match(predicted: str | None, reference: str, prompt: str = "") -> bool:
    """True when the predicted final answer equals the reference, or (a sentence) names it while the
    question `prompt` does not (see the module rule)."""
    if not isinstance(predicted, str) or not isinstance(reference, str):
        return False
    if not predicted.strip() or not reference.strip():
        return False
    try:
        pred_n, ref_n = _normalise(predicted), _normalise(reference)
        if pred_n == ref_n:
            return True
        if len(ref_n) == 1 and ref_n.isalpha():
            ref_letter = _choice_letter(reference)
            if ref_letter is not None:
                return _choice_letter(predicted) == ref_letter
        if len(predicted) > _MAX_MATH_CHARS:
            return False
        if re.search(r"[0-9\\]", reference):
            return _math_equal(predicted, reference)
        return _names(predicted, reference, prompt if isinstance(prompt, str) else "")
    except Exception:  # math_verify / sympy can fail in many ways on model output
        return False
