"""What every benchmark importer shares: reading the source files with errors that name the file, row
and column, copying images next to the output, and writing rows that `cosmo.data.load_jsonl` accepts.

An importer turns a benchmark as its authors distribute it into COSMO rows (docs/data-format.md).
Every row keeps the benchmark's name, its licence and the original record in `meta`, so a result can
always be traced back to the benchmark's own item.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cosmo.data import DataError, load_jsonl


@dataclass
class ImportResult:
    """The written file, its row counts per task, and notes for the user (e.g. skipped instructions)."""

    path: Path
    rows: int
    per_task: dict[str, int]
    notes: list[str] = field(default_factory=list)
    report: dict = field(default_factory=dict)


class RowWriter:
    """Collects rows for OUT.jsonl and copies their images into OUT's sibling folder `<OUT stem>-images/`."""

    def __init__(self, out: str | Path, source: str, licence: str) -> None:
        self.out = Path(out)
        if self.out.suffix != ".jsonl":
            raise DataError("the output must be a .jsonl file", path=str(self.out))
        self.source, self.licence = source, licence
        self.image_dir = self.out.parent / f"{self.out.stem}-images"
        self.rows: list[dict] = []

    def image(self, src: Path, name: str, where: dict) -> str:
        """Copy one image and return its path relative to OUT's folder; a missing file is a DataError."""
        if not src.is_file():
            raise DataError(f"image file not found: {src}", **where)
        dest = self.image_dir / f"{name}{src.suffix.lower()}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return dest.relative_to(self.out.parent).as_posix()

    def add(self, *, id: str, task: str, prompt: str, original: dict, images: tuple[str, ...] = (),
            should_refuse: bool | None = None, constraints: list[dict] | None = None, answer: str | None = None,
            **meta: object) -> None:
        row: dict = {"id": id, "task": task, "prompt": prompt, "images": list(images)}
        if should_refuse is not None:
            row["should_refuse"] = should_refuse
        if constraints is not None:
            row["constraints"] = constraints
        if answer is not None:
            row["answer"] = answer
        row["meta"] = {"source": self.source, "licence": self.licence, **meta, "original": original}
        self.rows.append(row)

    def write(self, notes: list[str] | None = None, report: dict | None = None) -> ImportResult:
        """Write OUT.jsonl and load it back with the project's loader, so what was written is valid."""
        if not self.rows:
            raise DataError("no rows to write: the source holds no items", path=str(self.out))
        self.out.parent.mkdir(parents=True, exist_ok=True)
        with self.out.open("w", encoding="utf-8", newline="\n") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in self.rows)
        loaded = load_jsonl(self.out)
        return ImportResult(self.out, len(loaded), dict(Counter(s.task for s in loaded)), notes or [], report or {})


def read_csv(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) for every data row of a CSV with a header; a missing column fails at once."""
    if not path.is_file():
        raise DataError("file not found", path=str(path))
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        for name in required:
            if name not in columns:
                raise DataError(f"missing column; the header has {', '.join(columns) or 'nothing'}",
                                path=str(path), line=1, field=name)
        rows = []
        for row in reader:
            if None in row:  # more cells than header columns
                raise DataError(f"{len(columns) + len(row[None])} cells for {len(columns)} columns",
                                path=str(path), line=reader.line_num)
            rows.append((reader.line_num, {k: (v or "") for k, v in row.items()}))
    return rows


def read_json(path: Path) -> object:
    """A whole JSON document; invalid JSON names the file, line and column."""
    if not path.is_file():
        raise DataError("file not found", path=str(path))
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg} at column {exc.colno}", path=str(path), line=exc.lineno) from None


def read_jsonl(path: Path) -> list[tuple[int, object]]:
    """(line number, value) for every non-blank line of a JSONL file."""
    if not path.is_file():
        raise DataError("file not found", path=str(path))
    rows = []
    with path.open(encoding="utf-8-sig") as f:
        for line_no, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                rows.append((line_no, json.loads(text)))
            except json.JSONDecodeError as exc:
                raise DataError(f"invalid JSON: {exc.msg} at column {exc.colno}", path=str(path),
                                line=line_no) from None
    return rows


def text_field(record: object, key: str, where: dict) -> str:
    """record[key] as a non-empty string, else a DataError naming the column."""
    if not isinstance(record, dict):
        raise DataError(f"expected an object, found {type(record).__name__}", **where)
    value = record.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        found = "nothing" if key not in record else repr(value)[:60]
        raise DataError(f"expected a non-empty text, found {found}", field=key, **where)
    return value


def find_file(src: Path, candidates: tuple[str, ...], what: str) -> Path:
    """SRC itself when it is a file, else the first candidate below it (the benchmark's own layout)."""
    if src.is_file():
        return src
    for rel in candidates:
        if (src / rel).is_file():
            return src / rel
    raise DataError(f"expected {what} (looked for {', '.join(candidates)})", path=str(src))
