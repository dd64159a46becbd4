"""IFEval (Zhou et al., 2023): prompts with verifiable instructions ("answer in under 300 words").

Source: `instruction_following_eval/data/input_data.jsonl` of github.com/google-research/google-research,
one object per line: key, prompt, instruction_id_list, kwargs (one object per instruction). Each
instruction becomes a COSMO constraint (cosmo/rules/constraints.py) through `MAPPING`; a prompt
with an instruction COSMO cannot check is left out (scoring the rest would inflate prompt-level
accuracy), and the import reports every such instruction kind with its count.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from cosmo.benchmarks.base import ImportResult, RowWriter, find_file, read_jsonl, text_field
from cosmo.data import DataError
from cosmo.rules.constraints import validate_constraint

LICENCE = "Apache-2.0"


def _less_or_more(below: str, at_least: str, key: str) -> Callable[[dict], dict]:
    """IFEval's `less than N` is COSMO's at most N - 1; `at least N` is at least N."""
    def convert(kw: dict) -> dict:
        n = kw[key]
        return {"type": below, "n": n - 1} if kw["relation"] == "less than" else {"type": at_least, "n": n}
    return convert


# IFEval instruction id -> its kwargs turned into one COSMO constraint
MAPPING: dict[str, Callable[[dict], dict]] = {
    "change_case:english_lowercase": lambda kw: {"type": "lowercase"},
    "change_case:english_capital": lambda kw: {"type": "uppercase"},
    "change_case:capital_word_frequency": lambda kw: {"type": "capital_words", "relation": kw["capital_relation"],
                                                      "n": kw["capital_frequency"]},
    "punctuation:no_comma": lambda kw: {"type": "no_commas"},
    "detectable_format:json_format": lambda kw: {"type": "json"},
    "detectable_format:title": lambda kw: {"type": "title"},
    "detectable_format:number_bullet_lists": lambda kw: {"type": "num_bullets", "n": kw["num_bullets"]},
    "detectable_format:number_highlighted_sections": lambda kw: {"type": "min_highlights", "n": kw["num_highlights"]},
    "detectable_format:multiple_sections": lambda kw: {"type": "min_sections", "splitter": kw["section_spliter"],
                                                       "n": kw["num_sections"]},
    "detectable_content:number_placeholders": lambda kw: {"type": "min_placeholders", "n": kw["num_placeholders"]},
    "detectable_content:postscript": lambda kw: {"type": "postscript", "marker": kw["postscript_marker"]},
    "keywords:existence": lambda kw: {"type": "include_keywords", "keywords": kw["keywords"]},
    "keywords:forbidden_words": lambda kw: {"type": "exclude_keywords", "keywords": kw["forbidden_words"]},
    "keywords:frequency": lambda kw: {"type": "keyword_count", "keyword": kw["keyword"], "relation": kw["relation"],
                                      "n": kw["frequency"]},
    "keywords:letter_frequency": lambda kw: {"type": "letter_count", "letter": kw["letter"],
                                             "relation": kw["let_relation"], "n": kw["let_frequency"]},
    "length_constraints:number_words": _less_or_more("max_words", "min_words", "num_words"),
    "length_constraints:number_sentences": _less_or_more("max_sentences", "min_sentences", "num_sentences"),
    "length_constraints:number_paragraphs": lambda kw: {"type": "num_paragraphs", "n": kw["num_paragraphs"]},
    "startend:end_checker": lambda kw: {"type": "end_with", "phrase": kw["end_phrase"]},
    "startend:quotation": lambda kw: {"type": "quotation"},
    "combination:two_responses": lambda kw: {"type": "two_responses"},
    "combination:repeat_prompt": lambda kw: {"type": "start_with", "phrase": kw["prompt_to_repeat"]},
}


def _constraint(kind: str, kwargs: object, where: dict, column: str) -> dict:
    if not isinstance(kwargs, dict):
        raise DataError(f"expected an object of arguments, found {json.dumps(kwargs)[:60]}", field=column, **where)
    given = {k: v for k, v in kwargs.items() if v is not None}  # HF copies carry every key, unused ones null
    try:
        constraint = MAPPING[kind](given)
        validate_constraint(constraint)
    except KeyError as exc:
        raise DataError(f"{kind} needs the argument {exc.args[0]!r}", field=column, **where) from None
    except (TypeError, ValueError) as exc:
        raise DataError(f"{kind}: {exc}", field=column, **where) from None
    return constraint


def import_ifeval(src: Path, out: Path) -> ImportResult:
    path = find_file(src, ("input_data.jsonl", "data/input_data.jsonl",
                           "instruction_following_eval/data/input_data.jsonl"), "IFEval's input_data.jsonl")
    writer = RowWriter(out, "ifeval", LICENCE)
    unmapped: Counter[str] = Counter()
    skipped = total = 0
    for line, record in read_jsonl(path):
        where = {"path": str(path), "line": line}
        key, prompt = text_field(record, "key", where), text_field(record, "prompt", where)
        where["row_id"] = key
        kinds, kwargs = record.get("instruction_id_list"), record.get("kwargs")
        if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) for k in kinds):
            raise DataError("expected a non-empty list of instruction ids", field="instruction_id_list", **where)
        if not isinstance(kwargs, list) or len(kwargs) != len(kinds):
            raise DataError(f"expected a list of {len(kinds)} argument objects (one per instruction)",
                            field="kwargs", **where)
        total += 1
        missing = [k for k in kinds if k not in MAPPING]
        if missing:
            unmapped.update(missing)
            skipped += 1
            continue
        constraints = [_constraint(k, kw, where, f"kwargs[{i}]") for i, (k, kw) in enumerate(zip(kinds, kwargs,
                                                                                                   strict=True))]
        writer.add(id=f"ifeval-{key}", task="instruction", prompt=prompt, constraints=constraints, original=record)
    notes = [f"{skipped} of {total} prompts left out: they use instructions COSMO cannot check yet"] if skipped else []
    notes += [f"  {kind}: {n} instruction(s)" for kind, n in unmapped.most_common()]
    report = {"prompts": total, "imported": total - skipped, "left_out": skipped, "unmapped": dict(unmapped)}
    return writer.write(notes, report)
