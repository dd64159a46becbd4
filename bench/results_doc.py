"""Marked sections of docs/results.md that a bench script regenerates, leaving the rest of the file as it is.

A section is the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`; a file without the markers
gets the section appended at its end.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from launch import ROOT


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_section(text: str, name: str, body: str) -> str:
    """`text` with the section `name` holding `body`; ValueError when its markers are not one begin
    followed by one end."""
    begin, end = markers(name)
    starts, ends = text.count(begin), text.count(end)
    block = f"{begin}\n{body.strip()}\n{end}"
    if starts == ends == 0:
        return f"{text.rstrip()}\n\n{block}\n" if text.strip() else f"{block}\n"
    if starts != 1 or ends != 1 or text.index(begin) > text.index(end):
        raise ValueError(f"expected one '{begin}' followed by one '{end}', found {starts} begin and {ends} end "
                         "marker(s) in that order; fix the file by hand")
    head, rest = text.split(begin)
    return head + block + rest.split(end)[1]


def write_section(path: Path, name: str, body: str) -> None:
    """Replace (or append) the section `name` of the markdown file at `path` (created when missing)."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    try:
        new = replace_section(text, name, body)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new, encoding="utf-8")


def commit() -> str:
    """The short commit of the working tree (with `+changes` when it has uncommitted changes to tracked files)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT).returncode != 0
    return head.stdout.strip() + (" +uncommitted changes" if dirty else "")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table's lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]
