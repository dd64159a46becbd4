"""Checkable instruction constraints (IFEval-style) and their checker.

A constraint is a flat dict: {"type": <name>, <param>: <value>, ...}, e.g.
{"type": "max_words", "n": 20}. `CONSTRAINT_TYPES` maps each name to its parameters, a checker and
a short description (the data generator uses the description in its reference reasoning).
Checks look at the <answer> part when the response is well formed, else at the whole text, so a
malformed response is judged on everything it says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cosmo.rules.template import ParsedResponse, parsed


@dataclass(frozen=True)
class ConstraintType:
    params: dict[str, str]  # param name -> kind: "count" (int >= 0), "phrase", "keywords", "relation"
    check: Callable[[str, dict], bool]
    describe: Callable[[dict], str]  # "use at most 10 words"


_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")
_BULLET = re.compile(r"^\s*[-*] \S", re.MULTILINE)
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


def count_words(text: str) -> int:
    """Words are runs of letters/digits, apostrophes and hyphens inside words allowed."""
    return len(_WORD.findall(text))


def count_sentences(text: str) -> int:
    """Sentences end at . ! ? followed by whitespace or the end; a trailing fragment counts too."""
    return sum(1 for part in _SENTENCE_END.split(text) if _WORD.search(part))


def _has_word(text: str, keyword: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(keyword.lower()) + r"(?!\w)", text.lower()) is not None


def _is_json(text: str) -> bool:
    text = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1)
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


_HIGHLIGHT = re.compile(r"\*\*[^\n*]+\*\*|\*[^\n*]+\*")
RELATIONS = ("at least", "less than")


def _compare(count: int, c: dict) -> bool:
    """IFEval's relations: `at least` n (count >= n) or `less than` n (count < n)."""
    return count >= c["n"] if c["relation"] == "at least" else count < c["n"]


def _word_matches(text: str, word: str) -> list[str]:
    return re.findall(r"(?<!\w)" + re.escape(word.lower()) + r"(?!\w)", text.lower())


def _paragraphs(text: str) -> int:
    """Paragraphs split by the markdown divider ***; an empty paragraph inside the text makes it -1."""
    parts = re.split(r"\s?\*\*\*\s?", text)
    count = len(parts)
    for i, part in enumerate(parts):
        if not part.strip():
            if 0 < i < len(parts) - 1:
                return -1
            count -= 1
    return count


def _two_responses(text: str) -> bool:
    parts = [p.strip() for p in text.split("******")]
    if parts and not parts[0]:
        parts = parts[1:]
    if parts and not parts[-1]:
        parts = parts[:-1]
    return len(parts) == 2 and all(parts) and parts[0] != parts[1]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _quoted(words: Sequence[str]) -> str:
    return " and ".join(f'"{w}"' for w in words)


CONSTRAINT_TYPES: dict[str, ConstraintType] = {
    "lowercase": ConstraintType(
        {},
        lambda t, c: t == t.lower() and any(ch.isalpha() for ch in t),
        lambda c: "use only lowercase letters",
    ),
    "uppercase": ConstraintType(
        {},
        lambda t, c: t == t.upper() and any(ch.isalpha() for ch in t),
        lambda c: "use only capital letters",
    ),
    "max_words": ConstraintType(
        {"n": "count"},
        lambda t, c: count_words(t) <= c["n"],
        lambda c: f"use at most {_plural(c['n'], 'word')}",
    ),
    "min_words": ConstraintType(
        {"n": "count"},
        lambda t, c: count_words(t) >= c["n"],
        lambda c: f"use at least {_plural(c['n'], 'word')}",
    ),
    "num_bullets": ConstraintType(
        {"n": "count"},
        lambda t, c: len(_BULLET.findall(t)) == c["n"],
        lambda c: f"write exactly {_plural(c['n'], 'bullet point')}",
    ),
    "num_sentences": ConstraintType(
        {"n": "count"},
        lambda t, c: count_sentences(t) == c["n"],
        lambda c: f"write exactly {_plural(c['n'], 'sentence')}",
    ),
    "include_keywords": ConstraintType(
        {"keywords": "keywords"},
        lambda t, c: all(_has_word(t, k) for k in c["keywords"]),
        lambda c: f"use the word {_quoted(c['keywords'])}",
    ),
    "exclude_keywords": ConstraintType(
        {"keywords": "keywords"},
        lambda t, c: not any(_has_word(t, k) for k in c["keywords"]),
        lambda c: f"not use the word {_quoted(c['keywords'])}",
    ),
    "start_with": ConstraintType(
        {"phrase": "phrase"},
        lambda t, c: t.strip().lower().startswith(c["phrase"].strip().lower()),
        lambda c: f'start with "{c["phrase"]}"',
    ),
    "end_with": ConstraintType(
        {"phrase": "phrase"},
        lambda t, c: t.strip().lower().endswith(c["phrase"].strip().lower()),
        lambda c: f'end with "{c["phrase"]}"',
    ),
    "json": ConstraintType({}, lambda t, c: _is_json(t), lambda c: "reply in valid JSON"),
    "no_commas": ConstraintType({}, lambda t, c: "," not in t, lambda c: "use no commas"),
    # the kinds below cover IFEval's common instructions (cosmo/benchmarks/ifeval.py maps them)
    "min_sentences": ConstraintType(
        {"n": "count"},
        lambda t, c: count_sentences(t) >= c["n"],
        lambda c: f"write at least {_plural(c['n'], 'sentence')}",
    ),
    "max_sentences": ConstraintType(
        {"n": "count"},
        lambda t, c: count_sentences(t) <= c["n"],
        lambda c: f"write at most {_plural(c['n'], 'sentence')}",
    ),
    "keyword_count": ConstraintType(
        {"keyword": "phrase", "relation": "relation", "n": "count"},
        lambda t, c: _compare(len(_word_matches(t, c["keyword"])), c),
        lambda c: f'use the word "{c["keyword"]}" {c["relation"]} {_plural(c["n"], "time")}',
    ),
    "letter_count": ConstraintType(
        {"letter": "phrase", "relation": "relation", "n": "count"},
        lambda t, c: _compare(t.lower().count(c["letter"].lower()), c),
        lambda c: f'use the letter "{c["letter"]}" {c["relation"]} {_plural(c["n"], "time")}',
    ),
    "capital_words": ConstraintType(
        {"relation": "relation", "n": "count"},
        lambda t, c: _compare(sum(1 for w in _WORD.findall(t) if w.isupper()), c),
        lambda c: f"write {c['relation']} {_plural(c['n'], 'word')} in capital letters",
    ),
    "min_placeholders": ConstraintType(
        {"n": "count"},
        lambda t, c: len(re.findall(r"\[[^\[\]\n]+\]", t)) >= c["n"],
        lambda c: f"include at least {_plural(c['n'], 'placeholder')} in square brackets like [name]",
    ),
    "min_highlights": ConstraintType(
        {"n": "count"},
        lambda t, c: len([h for h in _HIGHLIGHT.findall(t) if h.strip("*").strip()]) >= c["n"],
        lambda c: f"highlight at least {_plural(c['n'], 'section')} with markdown, like *this*",
    ),
    "min_sections": ConstraintType(
        {"splitter": "phrase", "n": "count"},
        lambda t, c: len(re.split(r"\s?" + re.escape(c["splitter"]) + r"\s?\d+\s?", t)) - 1 >= c["n"],
        lambda c: f"write at least {_plural(c['n'], 'section')}, each starting with \"{c['splitter']} X\"",
    ),
    "num_paragraphs": ConstraintType(
        {"n": "count"},
        lambda t, c: _paragraphs(t) == c["n"],
        lambda c: f"write exactly {_plural(c['n'], 'paragraph')} separated by the markdown divider ***",
    ),
    "postscript": ConstraintType(
        {"marker": "phrase"},
        lambda t, c: re.search(r"^\s*" + re.escape(c["marker"].lower()), t.lower(), re.MULTILINE) is not None,
        lambda c: f'end with a postscript starting with "{c["marker"]}"',
    ),
    "title": ConstraintType(
        {},
        lambda t, c: any(m.strip() for m in re.findall(r"<<([^\n]+?)>>", t)),
        lambda c: "give a title wrapped in double angular brackets, like <<title>>",
    ),
    "quotation": ConstraintType(
        {},
        lambda t, c: len(t.strip()) > 1 and t.strip()[0] == t.strip()[-1] == '"',
        lambda c: "wrap the whole reply in double quotation marks",
    ),
    "two_responses": ConstraintType(
        {},
        lambda t, c: _two_responses(t),
        lambda c: "give two different replies separated by six asterisks ******",
    ),
}

_KIND_CHECKS: dict[str, tuple[Callable[[object], bool], str]] = {
    "count": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"),
    "phrase": (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string"),
    "relation": (lambda v: v in RELATIONS, f"one of {', '.join(repr(r) for r in RELATIONS)}"),
    "keywords": (
        lambda v: isinstance(v, list) and len(v) > 0 and all(isinstance(k, str) and k.strip() for k in v),
        "a non-empty list of non-empty strings",
    ),
}


def validate_constraint(c: dict) -> None:
    """Raise ValueError naming the bad key (or unknown type, listing the valid ones)."""
    valid = ", ".join(sorted(CONSTRAINT_TYPES))
    if not isinstance(c, dict):
        raise ValueError(
            f'a constraint must be an object like {{"type": "max_words", "n": 20}}, found {type(c).__name__}'
        )
    if "type" not in c:
        raise ValueError(f"missing key 'type'; valid types: {valid}")
    ctype = c["type"]
    if not isinstance(ctype, str) or ctype not in CONSTRAINT_TYPES:
        raise ValueError(f"key 'type': unknown constraint type {ctype!r}; valid types: {valid}")
    params = CONSTRAINT_TYPES[ctype].params
    for key in c:
        if key != "type" and key not in params:
            allowed = ", ".join(repr(p) for p in params) or "none"
            raise ValueError(f"key {key!r}: not a parameter of {ctype!r} (parameters: {allowed})")
    for key, kind in params.items():
        if key not in c:
            raise ValueError(f"key {key!r}: missing, {ctype!r} needs it")
        ok, expected = _KIND_CHECKS[kind]
        if not ok(c[key]):
            raise ValueError(f"key {key!r}: expected {expected}, found {c[key]!r}")


def check_constraints(response: str | ParsedResponse, constraints: Sequence[dict]) -> tuple[float, list[bool]]:
    """Fraction of constraints satisfied (1.0 when there are none) and the per-constraint results.

    Invalid constraints raise ValueError: they are data bugs, not model failures.
    """
    for c in constraints:
        validate_constraint(c)
    if not constraints:
        return 1.0, []
    p = parsed(response if isinstance(response, str | ParsedResponse) else "")
    target = p.answer if p.well_formed and p.answer is not None else p.text
    results = [bool(CONSTRAINT_TYPES[c["type"]].check(target, c)) for c in constraints]
    return sum(results) / len(results), results
