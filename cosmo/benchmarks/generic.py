"""Any other benchmark in CSV, JSONL or a JSON list: COSMO fields taken from named columns.

`--map prompt=question --map answer=label --map images=image_file --map id=qid --map task=kind
--map should_refuse=harmful`, or constant values for every row with `--task` (and `--should-refuse`).
Image paths are read relative to `--images` (default: the source file's folder) and copied next to OUT.
"""

from __future__ import annotations

from pathlib import Path

from cosmo.benchmarks.base import ImportResult, RowWriter, read_csv, read_json, read_jsonl
from cosmo.data import TASKS, DataError

FIELDS = ("id", "task", "prompt", "images", "answer", "should_refuse")
TRUE, FALSE = ("true", "1", "yes", "unsafe"), ("false", "0", "no", "safe", "")


def _records(path: Path) -> list[tuple[int | None, object]]:
    if path.suffix == ".csv":
        return list(read_csv(path, ()))
    if path.suffix == ".jsonl":
        return read_jsonl(path)
    if path.suffix == ".json":
        data = read_json(path)
        if not isinstance(data, list):
            raise DataError(f"expected a JSON list of objects, found {type(data).__name__}", path=str(path))
        return [(None, r) for r in data]
    raise DataError("expected a .csv, .jsonl or .json file", path=str(path))


def _cell(record: dict, column: str, where: dict) -> str:
    if column not in record:
        raise DataError(f"missing column; the row has {', '.join(map(str, record)) or 'nothing'}", field=column,
                        **where)
    value = record[column]
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def import_generic(src: Path, out: Path, mapping: dict[str, str], task: str | None = None,
                   should_refuse: bool | None = None, images: Path | None = None, licence: str = "unknown",
                   name: str | None = None) -> ImportResult:
    """Rows from a table: `mapping` is COSMO field -> source column; `task` a constant when not mapped."""
    for key in mapping:
        if key not in FIELDS:
            raise DataError(f"--map {key}=...: not a mappable field; expected one of {', '.join(FIELDS)}",
                            path=str(src))
    if "prompt" not in mapping:
        raise DataError("--map prompt=<column> is required", path=str(src))
    if ("task" in mapping) == (task is not None):
        raise DataError("give the task either as a constant (--task) or as a column (--map task=...), not both "
                        "and not neither", path=str(src))
    if task is not None and task not in TASKS:
        raise DataError(f"--task: expected one of {', '.join(TASKS)}, found {task!r}", path=str(src))
    source = name or src.stem
    image_base = images or src.parent
    writer = RowWriter(out, source, licence)
    for index, (line, record) in enumerate(_records(src), start=1):
        where = {"path": str(src), "line": line} if line is not None else {"path": str(src), "row_id": f"item {index}"}
        if not isinstance(record, dict):
            raise DataError(f"expected an object per row, found {type(record).__name__}", **where)
        values = {f: _cell(record, col, where) for f, col in mapping.items()}
        row_task = values.get("task", task)
        if row_task not in TASKS:
            raise DataError(f"expected one of {', '.join(TASKS)}, found {row_task!r}", field=mapping["task"], **where)
        if not values["prompt"].strip():
            raise DataError("expected a non-empty prompt", field=mapping["prompt"], **where)
        refuse = should_refuse
        if "should_refuse" in mapping:
            flag = values["should_refuse"].strip().lower()
            if flag not in TRUE + FALSE:
                raise DataError(f"expected true/false, found {flag!r}", field=mapping["should_refuse"], **where)
            refuse = flag in TRUE
        row_id = f"{source}-{values.get('id') or index}"
        image_rel: tuple[str, ...] = ()
        if values.get("images"):
            image_rel = (writer.image(image_base / values["images"], f"{source}-{index}",
                                      {**where, "field": mapping["images"]}),)
        writer.add(id=row_id, task=row_task, prompt=values["prompt"], images=image_rel, should_refuse=refuse,
                   answer=values.get("answer") or None, original=record)
    return writer.write()
