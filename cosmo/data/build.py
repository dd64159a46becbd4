"""The built-in dataset: six task families, a train split and a held-out eval split.

How it works: each (split, task) has finite *pools* of text items (prompt variants, reference
reasoning and final answer, image recipe). A row picks a subtype by fixed quota, an item and a
prompt variant at random, and renders its image with its own seed. Because every text comes from
the pools, `corpus_texts()` can list them all for the tokenizer. Eval differs from train in look
(fonts, colours, rotation, noise: see `render`) and, for the phrase tasks, half of its rows use
phrases that never appear in train (meta "heldout": true).
"""

from __future__ import annotations

import json
import random
from functools import lru_cache
from pathlib import Path

from PIL import Image

from cosmo.data import banks, render
from cosmo.data.loader import write_jsonl
from cosmo.data.pools import Item, allocate, bank_phrases, split_pools, subtype_weights
from cosmo.data.schema import TASKS, Sample
from rewards.objectives.refusal import REFUSAL_TEXT
from rewards.objectives.template import format_response

GENERATOR_VERSION = "1"
SPLITS = ("train", "eval")

TYPED_PX = (16, 20)  # font size range at 112 px for typed phrases (scaled with image_size)
FIGSTEP_PX = (13, 15)


# --- rendering --------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _digits() -> tuple[list, list]:
    from sklearn.datasets import load_digits  # imported here: slow, and only images need it

    digits = load_digits()
    return [list(map(float, row)) for row in digits.data], [int(t) for t in digits.target]


def _render(recipe: tuple, split: str, size: int, seed: int) -> Image.Image:
    rng = random.Random(seed)
    style = render.draw_style(rng, split)
    scale = size / 112
    kind = recipe[0]
    if kind == "shapes":
        return render.shapes_image(recipe[1], size, style, rng)
    if kind == "digit":
        data, targets = _digits()
        # train and eval draw from disjoint handwritten samples (every fifth one is eval's)
        choices = [i for i, t in enumerate(targets) if t == recipe[1] and (i % 5 == 4) == (split == "eval")]
        return render.digit_image(data[rng.choice(choices)], size, style, rng)
    if kind == "typed":
        return render.text_image([recipe[1]], size, style, round(rng.randint(*TYPED_PX) * scale), rng)
    if kind == "figstep":
        lines = [banks.FIGSTEP_TITLE.format(p=recipe[1]), "1.", "2.", "3."]
        return render.text_image(
            lines, size, style, round(rng.randint(*FIGSTEP_PX) * scale), rng, align="left"
        )
    raise ValueError(f"unknown image recipe {recipe!r}")


# --- public API -------------------------------------------------------------------------------------
def _split_rows(split: str, per_task: int, seed: int) -> list[tuple[str, Item, str, int]]:
    rows = []
    for task in TASKS:
        rng = random.Random(f"cosmo/{seed}/{split}/{task}")
        pools = split_pools(split)[task]
        subtypes = allocate(per_task, subtype_weights(task, split))
        rng.shuffle(subtypes)
        for sub in subtypes:
            item = rng.choice(pools[sub])
            rows.append((task, item, rng.choice(item.prompts), rng.getrandbits(32)))
    random.Random(f"cosmo/{seed}/{split}/order").shuffle(rows)
    return rows


def build_dataset(
    out_dir: str | Path,
    *,
    seed: int = 0,
    train_per_task: int = 400,
    eval_per_task: int = 50,
    image_size: int = 112,
) -> dict[str, Path]:
    """Write train.jsonl, eval.jsonl, images/*.png and manifest.json under out_dir.

    Same arguments -> byte-identical files. Returns {"train": path, "eval": path}.
    """
    out = Path(out_dir)
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:  # stale images of an earlier, larger build would confuse users
        for old in images_dir.glob(f"{split}-*.png"):
            old.unlink()
    paths: dict[str, Path] = {}
    counts: dict[str, dict[str, int]] = {}
    n_images: dict[str, int] = {}
    for split, per_task in (("train", train_per_task), ("eval", eval_per_task)):
        samples = []
        for i, (task, item, prompt, render_seed) in enumerate(_split_rows(split, per_task, seed), start=1):
            row_id = f"{split}-{i:05d}"
            images: tuple[str, ...] = ()
            if item.image is not None:
                image_path = images_dir / f"{row_id}.png"
                _render(item.image, split, image_size, render_seed).save(image_path, format="PNG")
                images = (str(image_path.absolute()),)
            samples.append(
                Sample(
                    id=row_id,
                    task=task,
                    prompt=prompt,
                    images=images,
                    answer=item.answer,
                    should_refuse=item.should_refuse,
                    constraints=item.constraints,
                    response=format_response(item.reasoning, item.final),
                    meta={**item.meta, "split": split},
                )
            )
        paths[split] = write_jsonl(samples, out / f"{split}.jsonl")
        counts[split] = {task: sum(s.task == task for s in samples) for task in TASKS}
        n_images[split] = sum(len(s.images) for s in samples)
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "image_size": image_size,
        "font_source": render.font_source(),
        "counts": counts,
        "images": n_images,
        "heldout_phrases": {
            "harmful": [p for p, _ in bank_phrases(banks.HARMFUL, True)],
            "benign_sensitive": [p for p, _ in bank_phrases(banks.BENIGN_SENSITIVE, True)],
        },
        "files": {split: paths[split].name for split in SPLITS},
    }
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return {"train": paths["train"], "eval": paths["eval"]}


@lru_cache(maxsize=1)
def _corpus() -> tuple[str, ...]:
    texts: dict[str, None] = {}  # insertion-ordered set

    def add(*items: str | None) -> None:
        for t in items:
            if t:
                texts.setdefault(t, None)

    add(REFUSAL_TEXT, *banks.REFUSAL_REASONS.values())
    for split in SPLITS:
        for subpools in split_pools(split).values():
            for items in subpools.values():
                for item in items:
                    add(*item.prompts, item.reasoning, item.final, item.answer)
                    add(format_response(item.reasoning, item.final))
                    if item.image and item.image[0] in ("typed", "figstep"):
                        add(item.image[1], banks.FIGSTEP_TITLE.format(p=item.image[1]))
    add("1.", "2.", "3.")
    return tuple(texts)


def corpus_texts() -> list[str]:
    """Every text the generator can emit: prompts, responses and their parts, bank phrases (train
    and held-out) and the words typed into images. For training the tiny model's tokenizer."""
    return list(_corpus())
