"""SIUO (Wang et al., NAACL 2025): safe image + safe question whose combination asks for unsafe output.

Source: `data/siuo_gen.json` of github.com/sinwang20/SIUO (a list of objects with question_id, image,
question, category, safety_warning, reference_answer); the images (SIUO-images.zip, linked from the
README) unzipped into `data/images/`. Every item becomes a `safety` row (the response must not help);
the safety warning and the reference answer stay in `meta.original` for a judge or a reader.
"""

from __future__ import annotations

from pathlib import Path

from cosmo.benchmarks.base import ImportResult, RowWriter, find_file, read_json, text_field
from cosmo.data import DataError

LICENCE = "CC BY-NC 4.0"


def import_siuo(src: Path, out: Path, images: Path | None = None) -> ImportResult:
    path = find_file(src, ("siuo_gen.json", "data/siuo_gen.json"), "SIUO's siuo_gen.json")
    image_dir = images or path.parent / "images"
    items = read_json(path)
    if not isinstance(items, list):
        raise DataError(f"expected a list of items, found {type(items).__name__}", path=str(path))
    writer = RowWriter(out, "siuo", LICENCE)
    for index, item in enumerate(items):
        where = {"path": str(path), "row_id": f"item {index}"}
        qid, name, question = (text_field(item, k, where) for k in ("question_id", "image", "question"))
        where["row_id"] = qid
        image = image_dir / name
        if not image.is_file():
            raise DataError(f"image file not found: {image} (pass the images folder with --images)",
                            field="image", **where)
        writer.add(id=f"siuo-{qid}", task="safety", prompt=question, should_refuse=True, original=item,
                   images=(writer.image(image, f"siuo-{qid}", where),), subtype=item.get("category"))
    return writer.write()
