"""`cosmo data distill`: SFT targets that are the start model's own answers (self-distillation).

The `world` data profile (cosmo/data/world.py) gives its harmful training rows short refusals and marks
every other training row `meta.needs_distill`. This fills those rows' `response` with the model's own
greedy answer in the response template, `<think></think><answer>{its answer}</answer>`, so that SFT
teaches refusing (and the template) and nothing else: on the benign rows the target is what the model
already says. The source file is never modified.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from cosmo.data import Sample, load_jsonl, write_jsonl
from cosmo.data.schema import DataError
from cosmo.evaluation.heldout import generate_responses
from cosmo.rules.refusal import is_refusal
from cosmo.rules.template import THINK_CLOSE, format_response, parse_response

log = logging.getLogger("cosmo")


def own_answer(text: str) -> str:
    """The answer part of a generated text, so that the template's tags are not doubled: its <answer> part
    (`parse_response`) when it wrote one, else what follows a closed <think>, else the whole text; stripped."""
    answer = parse_response(text).answer
    return answer if answer is not None else text.split(THINK_CLOSE, 1)[-1].strip()


def distill_rows(rows: Sequence[Sample], answers: Sequence[str], model: str) -> list[Sample]:
    """`rows` with each `needs_distill` row's response set to its answer (in order), the mark replaced by
    `meta.distilled_from`. An empty answer is a DataError naming the row: SFT would teach saying nothing."""
    todo = [r for r in rows if r.meta.get("needs_distill")]
    if len(todo) != len(answers):
        raise ValueError(f"{len(todo)} rows need an answer, got {len(answers)}")
    given = dict(zip((r.id for r in todo), answers, strict=True))
    out = []
    for row in rows:
        if row.id not in given:
            out.append(row)
            continue
        answer = own_answer(given[row.id])
        if not answer:
            raise DataError(f"row {row.id!r}: the model's answer is empty; raise --max-new-tokens or check the model")
        meta = {k: v for k, v in row.meta.items() if k != "needs_distill"} | {"distilled_from": model}
        out.append(dataclasses.replace(row, response=format_response("", answer), meta=meta))
    return out


def distill_file(model: str, data: str | Path, out: str | Path, *, engine: str = "vllm",
                 max_new_tokens: int = 128) -> Path:
    """Write `data`'s rows to `out` with every `needs_distill` row answered by `model` (greedy); `out` must
    not be `data`. Returns `out`."""
    data, out = Path(data), Path(out)
    if out.resolve() == data.resolve():
        raise DataError(f"--out {out} is the source file; write the distilled rows to another file")
    rows = load_jsonl(data)
    todo = [r for r in rows if r.meta.get("needs_distill")]
    if not todo:
        raise DataError(f"{data}: no row has meta.needs_distill; nothing to distill")
    log.info("distilling %d of %d rows of %s with %s (%s, greedy, %d new tokens)", len(todo), len(rows), data,
             model, engine, max_new_tokens)
    answers = generate_responses(model, todo, engine=engine, max_new_tokens=max_new_tokens)
    refused = [r.id for r, a in zip(todo, answers, strict=True) if not r.should_refuse and is_refusal(own_answer(a))]
    if refused:  # such a target teaches refusing a benign request: the user decides whether to keep them
        log.warning("the model refused %d of the %d benign rows it answered (e.g. %s); their targets are those "
                    "refusals (SFT will teach them): drop those rows from %s if that is not wanted",
                    len(refused), len(todo), ", ".join(refused[:5]), out)
    return write_jsonl(distill_rows(rows, answers, model), out)
