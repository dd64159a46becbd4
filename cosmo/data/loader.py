"""Read and validate COSMO JSONL files (and write them back).

Every row is checked up front so that a bad row fails at load time with its file, line and
field, not hours later inside a rollout worker.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from cosmo.data.schema import REFUSE_BY_DEFAULT, TASKS, DataError, Sample
from cosmo.rules.constraints import validate_constraint
from cosmo.rules.template import parse_response

REQUIRED_FIELDS = ("id", "task", "prompt")
OPTIONAL_FIELDS = ("images", "answer", "should_refuse", "constraints", "response", "meta")
ALL_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
ANSWER_TASKS = frozenset({"reasoning", "knowledge"})  # scored by answers_match: need a reference
CONSTRAINT_TASKS = frozenset({"instruction"})  # scored by check_constraints: need constraints


def _describe(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, float) else repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    kind = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )
    return f"{kind} {text}"


def _validate_row(row: object, where: dict, base: Path) -> Sample:
    """Turn one decoded JSON value into a Sample, raising DataError(**where, field=...) on problems."""
    if not isinstance(row, dict):
        raise DataError(f"expected a JSON object per line, found {_describe(row)}", **where)
    row_id = row.get("id") if isinstance(row.get("id"), str) else None
    where = {**where, "row_id": row_id}

    def fail(field: str, problem: str) -> DataError:
        return DataError(problem, field=field, **where)

    def expect(field: str, ok: bool, expected: str) -> None:
        if not ok:
            raise fail(field, f"expected {expected}, found {_describe(row[field])}")

    for name in row:
        if name not in ALL_FIELDS:
            raise fail(name, f"unknown field; valid fields: {', '.join(ALL_FIELDS)}")
    for name in REQUIRED_FIELDS:
        if name not in row:
            raise fail(name, "missing required field")
    expect("id", isinstance(row["id"], str) and row["id"].strip() != "", "a non-empty string")
    expect("task", isinstance(row["task"], str), "a string")
    if row["task"] not in TASKS:
        raise fail("task", f"expected one of {', '.join(TASKS)}, found {_describe(row['task'])}")
    expect("prompt", isinstance(row["prompt"], str) and row["prompt"].strip() != "", "a non-empty string")
    task = row["task"]

    images = row.get("images", [])
    if "images" in row:
        expect("images", isinstance(images, list), "an array of image paths")
    abs_images = []
    for i, rel in enumerate(images):
        if not isinstance(rel, str) or not rel.strip():
            raise fail(f"images[{i}]", f"expected a non-empty path string, found {_describe(rel)}")
        path = os.path.normpath(base / rel)
        if not os.path.isfile(path):
            raise fail(f"images[{i}]", f"image file not found: {rel!r} (resolved to {path})")
        abs_images.append(path)

    for name in ("answer", "response"):
        if name in row:
            expect(name, row[name] is None or isinstance(row[name], str), "a string or null")
    answer = row.get("answer")
    if task in ANSWER_TASKS and (answer is None or not answer.strip()):
        raise fail("answer", f"task {task!r} needs a non-empty reference answer")
    response = row.get("response")
    if response is not None and not parse_response(response).well_formed:
        raise fail("response", "expected a response in the form <think>…</think><answer>…</answer>")

    should_refuse = row.get("should_refuse", task in REFUSE_BY_DEFAULT)
    if "should_refuse" in row:
        expect("should_refuse", isinstance(should_refuse, bool), "true or false")

    constraints = row.get("constraints", [])
    if "constraints" in row:
        expect("constraints", isinstance(constraints, list), "an array of constraint objects")
    for i, c in enumerate(constraints):
        try:
            validate_constraint(c)
        except ValueError as exc:
            raise fail(f"constraints[{i}]", str(exc)) from None
    if task in CONSTRAINT_TASKS and not constraints:
        raise fail("constraints", f"task {task!r} needs at least one constraint")

    meta = row.get("meta", {})
    if "meta" in row:
        expect("meta", isinstance(meta, dict), "an object")

    return Sample(
        id=row["id"],
        task=task,
        prompt=row["prompt"],
        images=tuple(abs_images),
        answer=answer,
        should_refuse=should_refuse,
        constraints=tuple(constraints),
        response=response,
        meta=meta,
        source=f"{where['path']}:{where['line']}",
    )


def load_jsonl(path: str | Path) -> list[Sample]:
    """Load and validate every row of a JSONL file; image paths come back absolute.

    Blank lines are skipped; an empty file, bad JSON, a bad row, a missing image or a repeated id
    raises DataError naming the file, the 1-based line, the row id and the field.
    """
    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise DataError("file not found", path=name)
    base = path.parent.absolute()
    samples: list[Sample] = []
    first_line: dict[str, int] = {}
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            where = {"path": name, "line": line_no}
            try:
                text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"not valid UTF-8 ({exc.reason})", **where) from None
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"invalid JSON: {exc.msg} at column {exc.colno}", **where) from None
            sample = _validate_row(row, where, base)
            if sample.id in first_line:
                raise DataError(
                    f"duplicate id (first used on line {first_line[sample.id]})",
                    field="id",
                    row_id=sample.id,
                    **where,
                )
            first_line[sample.id] = line_no
            samples.append(sample)
    if not samples:
        raise DataError("empty file: no rows", path=name)
    return samples


def load_images(sample: Sample) -> list[Image.Image]:
    """Open a sample's images as RGB; a missing or unreadable file raises DataError."""
    images = []
    for path in sample.images:
        try:
            with Image.open(path) as img:
                img.load()
                images.append(img.convert("RGB"))
        # PIL reports corrupt files as any of these; DecompressionBombError: more than twice
        # Image.MAX_IMAGE_PIXELS (about 179 million pixels by default)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            where = sample.source or "<memory>"
            raise DataError(
                f"cannot read image {path}: {exc}", path=where, row_id=sample.id, field="images"
            ) from None
    return images


def sample_to_row(sample: Sample, base_dir: str | Path) -> dict:
    """The JSON object for a sample, image paths made relative to base_dir (the JSONL's folder)."""
    base = os.path.abspath(base_dir)
    return {
        "id": sample.id,
        "task": sample.task,
        "prompt": sample.prompt,
        "images": [Path(os.path.relpath(p, base)).as_posix() for p in sample.images],
        "answer": sample.answer,
        "should_refuse": sample.should_refuse,
        "constraints": list(sample.constraints),
        "response": sample.response,
        "meta": sample.meta,
    }


def write_jsonl(samples: Iterable[Sample], path: str | Path) -> Path:
    """Write samples as JSONL (one row a line, fixed key order) so that load_jsonl reads them back; through a
    temporary file renamed at the end, so that a killed writer never leaves a partial file under `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(sample_to_row(s, path.parent), ensure_ascii=False) + "\n" for s in samples]
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8", newline="\n") as f:
        f.writelines(lines)
    os.replace(partial, path)
    return path
