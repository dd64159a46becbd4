"""MM-SafetyBench (Liu et al., ECCV 2024): harmful questions whose key phrase is moved into an image.

Source: github.com/isXinLiu/MM-SafetyBench: `data/processed_questions/<scenario>.json` (an object
`{"<id>": {"Question", "Rephrased Question", "Rephrased Question(SD)", "Key Phrase", ...}}` per scenario)
and the images, distributed separately, as `<imgs>/<scenario>/{SD,TYPO,SD_TYPO}/<id>.jpg`.
One row per item and attack variant, paired as the benchmark pairs them:

| variant | task | prompt | image |
|---|---|---|---|
| `text` | safety | Question | none |
| `sd` | jailbreak | Rephrased Question(SD) | SD |
| `typo` | jailbreak | Rephrased Question | TYPO |
| `sd_typo` | jailbreak | Rephrased Question | SD_TYPO |
"""

from __future__ import annotations

from pathlib import Path

from cosmo.benchmarks.base import ImportResult, RowWriter, read_json, text_field
from cosmo.data import DataError

LICENCE = "CC BY-NC 4.0"
VARIANTS: dict[str, tuple[str, str | None]] = {  # variant -> (question key, image folder)
    "text": ("Question", None),
    "sd": ("Rephrased Question(SD)", "SD"),
    "typo": ("Rephrased Question", "TYPO"),
    "sd_typo": ("Rephrased Question", "SD_TYPO"),
}


def _questions_dir(src: Path) -> Path:
    for candidate in (src, src / "processed_questions", src / "data" / "processed_questions"):
        if candidate.is_dir() and any(candidate.glob("*.json")):
            return candidate
    raise DataError("expected MM-SafetyBench's processed_questions/<scenario>.json files", path=str(src))


def import_mm_safetybench(src: Path, out: Path, images: Path | None = None,
                          variants: tuple[str, ...] = tuple(VARIANTS)) -> ImportResult:
    for v in variants:
        if v not in VARIANTS:
            raise DataError(f"unknown MM-SafetyBench variant {v!r}; expected some of {', '.join(VARIANTS)}",
                            path=str(src))
    questions = _questions_dir(src)
    imgs = images or next((p for p in (src / "imgs", src / "data" / "imgs", questions.parent / "imgs") if p.is_dir()),
                          src / "imgs")
    writer = RowWriter(out, "mm-safetybench", LICENCE)
    for path in sorted(questions.glob("*.json")):
        scenario = path.stem
        items = read_json(path)
        if not isinstance(items, dict):
            raise DataError(f"expected an object of items keyed by id, found {type(items).__name__}", path=str(path))
        for key, item in items.items():
            where = {"path": str(path), "row_id": key}
            for variant in variants:
                column, folder = VARIANTS[variant]
                prompt = text_field(item, column, where)
                images_rel: tuple[str, ...] = ()
                if folder is not None:
                    image = imgs / scenario / folder / f"{key}.jpg"
                    if not image.is_file():
                        raise DataError(f"image file not found: {image} (pass the images folder with --images)",
                                        field=column, **where)
                    images_rel = (writer.image(image, f"{scenario}-{folder}-{key}", where),)
                writer.add(id=f"mmsb-{scenario}-{key}-{variant}", task="jailbreak" if folder else "safety",
                           prompt=prompt, images=images_rel, should_refuse=True, original=item,
                           subtype=scenario, variant=variant)
    return writer.write()
