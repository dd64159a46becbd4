"""Visual focus: does the reasoning state what the image shows?

The paper's fourth reward component rewards reasoning grounded in the image. On rows whose `meta`
records what their image holds, the `<think>` part is checked against it:
- shape counts (`meta.shape` + `meta.count`, or `meta.counts` {shape: n}): each shape counts when the
  think states a number of it ("3 circles", "three circles") and every number it states for that
  shape is the true one; the score is the share of shapes stated right;
- a digit (`meta.digit`): 1 when the think states that digit and no other number (digits 0-9 as
  figures), else 0;
- text typed in the image (`meta.phrase` on an image row: the request of a typed or FigStep image):
  the share of the phrase's words that the think repeats.
Rows without images, or whose meta records none of these, have no visual-focus score (None): the
objective does not apply to them. A response without a closed `<think>` scores 0 on rows it applies to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cosmo.rules.template import parse_response

if TYPE_CHECKING:  # cosmo.data imports rewards.objectives to build its references
    from cosmo.data import Sample

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_WORD = re.compile(r"[a-z0-9']+")


def visual_facts(sample: Sample) -> dict | None:
    """What the row's meta says its image shows: {"counts": {shape: n}} | {"digit": d} | {"text": phrase};
    None for a text-only row or an image row whose meta records none of these."""
    if not sample.images:
        return None
    meta: Mapping = sample.meta
    if "counts" in meta:
        counts = meta["counts"]
        if not isinstance(counts, Mapping) or not counts:
            raise ValueError(f"row {sample.id!r}: meta.counts: expected a non-empty object shape -> count, "
                             f"found {counts!r}")
        return {"counts": {str(k): _integer(sample, f"counts.{k}", v) for k, v in counts.items()}}
    if "shape" in meta and "count" in meta:
        return {"counts": {str(meta["shape"]): _integer(sample, "count", meta["count"])}}
    if "digit" in meta:
        return {"digit": _integer(sample, "digit", meta["digit"])}
    phrase = meta.get("phrase")
    if isinstance(phrase, str) and _WORD.search(phrase.lower()):
        return {"text": phrase}
    return None


def _integer(sample: Sample, key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"row {sample.id!r}: meta.{key}: expected an integer >= 0, found {value!r}")
    return value


def _stated_counts(think: str, shape: str) -> set[int]:
    """Every number the think puts before the shape's name ('3 circles', 'one square')."""
    pattern = rf"\b(\d+|{'|'.join(NUMBER_WORDS)})\s+{re.escape(shape)}s?\b"
    return {int(n) if n.isdigit() else NUMBER_WORDS.index(n) for n in re.findall(pattern, think)}


def visual_focus_score(sample: Sample, text: str) -> float | None:
    """The visual-focus score of a response in [0, 1], or None where the objective does not apply."""
    facts = visual_facts(sample)
    if facts is None:
        return None
    think = (parse_response(text).think or "").lower()
    if "counts" in facts:
        right = sum(_stated_counts(think, shape) == {n} for shape, n in facts["counts"].items())
        return right / len(facts["counts"])
    if "digit" in facts:
        return float(set(re.findall(r"\b\d+\b", think)) == {str(facts["digit"])})
    words = set(_WORD.findall(facts["text"].lower()))
    return len(words & set(_WORD.findall(think))) / len(words)
