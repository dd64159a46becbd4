"""Visual focus: does the reasoning state what the image shows?

The paper's fourth reward component rewards reasoning grounded in the image. On rows whose `meta`
records what their image holds, the `<think>` part is checked against it:
- shape counts (`meta.shape` + `meta.count`, or `meta.counts` {shape: n}): each shape counts when the
  think states a number of it ("3 circles", "three circles") and every number it states for that
  shape is the true one; the score is the share of shapes stated right;
- a digit (`meta.digit`): 1 when the think states that digit and no other number (digits 0-9 as
  figures), else 0;
- text typed in the image (the request of a typed, split or FigStep image): the share of the image's
  words that the prompt does not contain which the think repeats. The image's words are those of
  `meta.image_text` (what the augmentation typed; for `split` only the image's half), kept to the words
  of `meta.phrase` when the row has one (the request, not a FigStep title's "Steps to" and numbering),
  or those of `meta.phrase` alone (the built-in typed and FigStep rows). A word the prompt already holds
  earns nothing: the think could copy it without reading the image, so copying the prompt scores 0.
Rows without images, rows whose meta records none of these, and typed-text rows whose image holds no
word the prompt lacks (nothing shows whether the image was read) have no visual-focus score (None): the
objective does not apply to them. A response without a closed `<think>` scores 0 on rows it applies to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cosmo.rules.template import ParsedResponse, parsed

if TYPE_CHECKING:  # cosmo.data imports rewards.objectives to build its references
    from cosmo.data import Sample

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_WORD = re.compile(r"[a-z0-9']+")


def visual_facts(sample: Sample) -> dict | None:
    """What the row's meta says its image shows: {"counts": {shape: n}} | {"digit": d} | {"words": the typed
    words the prompt lacks}; None for a text-only row, an image row whose meta records none of these, or
    typed text that adds no word to the prompt's."""
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
    typed = _typed_words(meta)
    if typed is None:
        return None
    unseen = typed - _words(sample.prompt)
    return {"words": sorted(unseen)} if unseen else None


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _typed_words(meta: Mapping) -> set[str] | None:
    """The words of the request typed in the image (module docstring), None when the meta records none."""
    phrase, image_text = meta.get("phrase"), meta.get("image_text")
    request = _words(phrase) if isinstance(phrase, str) else set()
    if isinstance(image_text, str):
        shown = _words(image_text)
        return (shown & request if request else shown) or None
    return request or None


def _integer(sample: Sample, key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"row {sample.id!r}: meta.{key}: expected an integer >= 0, found {value!r}")
    return value


def _stated_counts(think: str, shape: str) -> set[int]:
    """Every number the think puts before the shape's name ('3 circles', 'one square')."""
    pattern = rf"\b(\d+|{'|'.join(NUMBER_WORDS)})\s+{re.escape(shape)}s?\b"
    return {int(n) if n.isdigit() else NUMBER_WORDS.index(n) for n in re.findall(pattern, think)}


def visual_focus_score(sample: Sample, response: str | ParsedResponse) -> float | None:
    """The visual-focus score of a response in [0, 1], or None where the objective does not apply."""
    facts = visual_facts(sample)
    if facts is None:
        return None
    think = (parsed(response).think or "").lower()
    if "counts" in facts:
        right = sum(_stated_counts(think, shape) == {n} for shape, n in facts["counts"].items())
        return right / len(facts["counts"])
    if "digit" in facts:
        return float(set(re.findall(r"\b\d+\b", think)) == {str(facts["digit"])})
    words = set(facts["words"])
    return len(words & _words(think)) / len(words)
