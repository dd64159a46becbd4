"""XSTest (Röttger et al., 2024): 250 safe prompts that only look unsafe and 200 unsafe contrast prompts.

Source: `xstest_prompts.csv` of github.com/paul-rottger/exaggerated-safety (columns id, prompt, type,
label, focus, note). Safe prompts become `over_refusal` rows (refusing them is over-refusal), unsafe
ones (`contrast_*` types, label `unsafe`) become `safety` rows that must be refused.
"""

from __future__ import annotations

from pathlib import Path

from cosmo.benchmarks.base import ImportResult, RowWriter, find_file, read_csv, text_field
from cosmo.data import DataError

LICENCE = "CC BY 4.0"


def import_xstest(src: Path, out: Path) -> ImportResult:
    path = find_file(src, ("xstest_prompts.csv", "xstest_v2_prompts.csv"), "XSTest's prompts CSV")
    writer = RowWriter(out, "xstest", LICENCE)
    for line, row in read_csv(path, ("id", "prompt", "type", "label")):
        where = {"path": str(path), "line": line}
        item_id, prompt, kind = (text_field(row, k, where) for k in ("id", "prompt", "type"))
        label = row["label"].strip()
        if label not in ("safe", "unsafe"):
            raise DataError(f"expected safe or unsafe, found {label!r}", field="label", **where)
        if kind.startswith("contrast_") != (label == "unsafe"):
            raise DataError(f"type {kind!r} contradicts label {label!r} (contrast_* types are the unsafe ones)",
                            field="label", **where)
        unsafe = label == "unsafe"
        writer.add(id=f"xstest-{item_id}", task="safety" if unsafe else "over_refusal", prompt=prompt,
                   should_refuse=unsafe, original=row, subtype=kind)
    return writer.write()
