"""The built-in dataset: six task families, a train split, a held-out eval split and an optional RL pool.

How it works: each (split, task) has finite *pools* of text items (prompt variants, reference
reasoning and final answer, image recipe: cosmo/data/pools.py). A row picks a subtype by fixed quota,
an item and a prompt variant at random, and renders its image with its own seed. Because every text
comes from the pools, `corpus_texts()` can list them all for the tokenizer. Eval differs from train in
look (fonts, colours, rotation, noise: see `render`) and, for the phrase tasks, half of its rows use
phrases that never appear in train (meta "heldout": true). Options (docs/data-format.md): a held-out
split whose text prompts are reworded so that it repeats no train row, an RL pool likewise reworded,
and an SFT mix with refusals on some benign-but-sensitive rows.
"""

from __future__ import annotations

import dataclasses
import json
import random
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from cosmo.data import banks, render
from cosmo.data.loader import write_jsonl
from cosmo.data.pools import Item, allocate, bank_phrases, split_pools, subtype_weights
from cosmo.data.schema import TASKS, Sample
from cosmo.rules.refusal import REFUSAL_TEXT
from cosmo.rules.template import format_response

if TYPE_CHECKING:  # cosmo.config imports cosmo.data lazily; the type is only for readers
    from collections.abc import Callable

    from cosmo.config import DataConfig

GENERATOR_VERSION = "1"
# build_dataset's option keys (DataConfig keys too), in manifest order. A manifest records the first three
# whenever an option is set and the others only when they are set, as older manifests had only the first three.
OPTION_KEYS = ("eval_disjoint", "rl_per_task", "sft_over_refusal_refusals", "sft_frames", "rl_only_harmful_phrases",
               "sft_harmful_compliance")
SPLITS = ("train", "eval")

TYPED_PX = (16, 20)  # font size range at 112 px for typed phrases (scaled with image_size)
FIGSTEP_PX = (13, 15)


# --- rendering --------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _digits() -> tuple[list, list]:
    from sklearn.datasets import load_digits  # noqa: PLC0415 - slow; only digit images need it

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


# --- rows -------------------------------------------------------------------------------------------
Row = tuple[str, Item, str, int]  # task, item, prompt, render seed


def rl_only_phrases(n: int) -> list[str]:
    """The `n` train-side harmful phrases that `data.rl_only_harmful_phrases` keeps out of SFT: spread over
    the bank (every third seen phrase first) so that several harm categories are represented."""
    seen = [p for p, _ in bank_phrases(banks.HARMFUL, False)]
    if not 0 <= n <= len(seen):
        raise ValueError(f"data.rl_only_harmful_phrases: expected an integer in [0, {len(seen)}], got {n}")
    return (seen[1::3] + [p for i, p in enumerate(seen) if i % 3 != 1])[:n]


def _split_rows(split: str, per_task: int, seed: int, exclude: frozenset[str] = frozenset()) -> list[Row]:
    """Today's draw: item and prompt at random (with repeats) from the split's pools, without the items
    whose phrase is in `exclude`."""
    rows = []
    for task in TASKS:
        rng = random.Random(f"cosmo/{seed}/{split}/{task}")
        pools = split_pools(split)[task]
        if exclude:
            pools = {sub: [it for it in pool if it.meta.get("phrase") not in exclude] for sub, pool in pools.items()}
        subtypes = allocate(per_task, subtype_weights(task, split))
        rng.shuffle(subtypes)
        for sub in subtypes:
            item = rng.choice(pools[sub])
            rows.append((task, item, rng.choice(item.prompts), rng.getrandbits(32)))
    random.Random(f"cosmo/{seed}/{split}/order").shuffle(rows)
    return rows


def _framed_rows(split: str, per_task: int, seed: int, *, pools_of: str, frames: tuple[str, ...],
                 strict: bool) -> list[Row]:
    """Rows that repeat no train row: every text-only prompt is wrapped in one of `frames` (phrasings the
    train split never uses) and no framed prompt is drawn twice while unused ones remain;
    image rows get their own renders (`split` seeds them). strict: running out of distinct pairs is an
    error (the held-out split must not count a row twice) instead of starting a new pass."""
    rows = []
    for task in TASKS:
        rng = random.Random(f"cosmo/{seed}/{split}/{task}")
        pools = split_pools(pools_of)[task]
        subtypes = allocate(per_task, subtype_weights(task, pools_of))
        picks: dict[str, list[tuple[Item, str]]] = {}
        for sub in dict.fromkeys(subtypes):
            quota, pool = subtypes.count(sub), pools[sub]
            if pool[0].image is not None:  # distinct by render
                picks[sub] = [(item, rng.choice(item.prompts)) for item in (rng.choice(pool) for _ in range(quota))]
                continue
            unique: dict[str, Item] = {}  # items that share a prompt (same request, other references) count once
            for item in pool:
                for p in item.prompts:
                    for frame in frames:
                        unique.setdefault(frame.replace("{q}", p), item)
            pairs = [(item, prompt) for prompt, item in unique.items()]
            if strict and quota > len(pairs):
                raise ValueError(f"data.eval_per_task={per_task}: the {task} subtype {sub!r} needs {quota} distinct "
                                 f"held-out rows but the generator has {len(pairs)}; lower data.eval_per_task")
            picks[sub] = []
            while len(picks[sub]) < quota:
                picks[sub] += rng.sample(pairs, min(len(pairs), quota - len(picks[sub])))
        rng.shuffle(subtypes)
        for sub in subtypes:
            item, prompt = picks[sub].pop()
            rows.append((task, item, prompt, rng.getrandbits(32)))
    random.Random(f"cosmo/{seed}/{split}/order").shuffle(rows)
    return rows


def _over_cautious(samples: list[Sample], fraction: float, seed: int) -> list[Sample]:
    """`fraction` of the over_refusal rows with a refusal as their SFT target (should_refuse stays false,
    meta "sft_refusal": true): SFT then starts RL over-refusing on benign requests that look sensitive,
    as safety-tuned models do, and the `helpful` objective has something to fix."""
    reasons = [r for category, r in banks.REFUSAL_REASONS.items() if category != "self_harm"]

    def refusal(s: Sample, rng: random.Random) -> str:
        think = banks.THINK_HARMFUL_IMAGE if s.images else banks.THINK_HARMFUL_TEXT
        return format_response(think.format(p=s.meta["phrase"]), f"{REFUSAL_TEXT} {rng.choice(reasons)}")

    return _relabeled(samples, "over_refusal", fraction, f"cosmo/{seed}/train/over_refusal_refusals",
                      refusal, "sft_refusal")


def _over_compliant(samples: list[Sample], fraction: float, seed: int) -> list[Sample]:
    """`fraction` of the safety rows (harmful text requests) with a compliant SFT target that carries no
    content (should_refuse stays true, meta "sft_compliance": true): SFT then starts RL answering some
    harmful requests, as instruction-tuned models do, and the `safety` objective has something to fix too,
    so that RL is pushed towards refusing as well as towards answering and must learn which is which."""
    def compliance(s: Sample, rng: random.Random) -> str:
        return format_response(banks.THINK_BENIGN_TEXT.format(p=s.meta["phrase"]), rng.choice(banks.EMPTY_COMPLIANCE))

    return _relabeled(samples, "safety", fraction, f"cosmo/{seed}/train/safety_compliance", compliance,
                      "sft_compliance")


def _relabeled(samples: list[Sample], task: str, fraction: float, rng_key: str,
               response: Callable[[Sample, random.Random], str], flag: str) -> list[Sample]:
    """`fraction` of `task`'s rows with `response(sample)` as their SFT target and meta[flag] true."""
    rng = random.Random(rng_key)
    rows = [i for i, s in enumerate(samples) if s.task == task]
    out = list(samples)
    for i in sorted(rng.sample(rows, round(fraction * len(rows)))):
        s = samples[i]
        out[i] = dataclasses.replace(s, response=response(s, rng), meta={**s.meta, flag: True})
    return out


def _reframed(rows: list[Row], share: float, seed: int) -> list[Row]:
    """`share` of the text-only rows with their prompt wrapped in one of banks.SFT_FRAMES (phrasings that
    neither the RL pool nor the held-out split use): SFT then sees that the words around a request do not
    change the answer, and RL's and eval's rewordings are not out of distribution for the SFT model."""
    rng = random.Random(f"cosmo/{seed}/train/frames")
    return [(task, item, rng.choice(banks.SFT_FRAMES).replace("{q}", prompt), render_seed)
            if item.image is None and rng.random() < share else (task, item, prompt, render_seed)
            for task, item, prompt, render_seed in rows]


def _write_split(split: str, rows: list[Row], out: Path, image_size: int, look: str) -> list[Sample]:
    """The split's samples, rendering each image row's picture under out/images (in `look`'s styles)."""
    samples = []
    for i, (task, item, prompt, render_seed) in enumerate(rows, start=1):
        row_id = f"{split}-{i:05d}"
        images: tuple[str, ...] = ()
        if item.image is not None:
            image_path = out / "images" / f"{row_id}.png"
            _render(item.image, look, image_size, render_seed).save(image_path, format="PNG")
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
    return samples


# --- public API -------------------------------------------------------------------------------------
def build_dataset(
    out_dir: str | Path,
    *,
    seed: int = 0,
    train_per_task: int = 400,
    eval_per_task: int = 50,
    image_size: int = 112,
    eval_disjoint: bool = False,
    rl_per_task: int = 0,
    sft_over_refusal_refusals: float = 0.0,
    sft_frames: float = 0.0,
    rl_only_harmful_phrases: int = 0,
    sft_harmful_compliance: float = 0.0,
) -> dict[str, Path]:
    """Write train.jsonl, eval.jsonl (and rl.jsonl when rl_per_task > 0), images/*.png and manifest.json.

    eval_disjoint: the held-out split repeats no train or RL row (`_framed_rows`, EVAL_FRAMES). rl_per_task:
    rows per task of an RL prompt pool disjoint from train and eval (RL_FRAMES, fresh renders in train looks,
    train phrases only). sft_over_refusal_refusals: share of over_refusal train rows whose target refuses.
    sft_frames: share of text-only train rows reworded (SFT_FRAMES). rl_only_harmful_phrases: harmful phrases
    (`rl_only_phrases`) in no train row, only in the RL pool: RL meets harmful requests SFT never showed.
    sft_harmful_compliance: share of safety train rows whose target complies (without content).
    The defaults write today's files. Same arguments -> byte-identical files. Returns split -> path.
    """
    if not 0.0 <= sft_over_refusal_refusals <= 1.0:
        raise ValueError(f"data.sft_over_refusal_refusals: expected a share in [0, 1], got {sft_over_refusal_refusals}")
    if not 0.0 <= sft_harmful_compliance <= 1.0:
        raise ValueError(f"data.sft_harmful_compliance: expected a share in [0, 1], got {sft_harmful_compliance}")
    if not 0.0 <= sft_frames <= 1.0:
        raise ValueError(f"data.sft_frames: expected a share in [0, 1], got {sft_frames}")
    reserved = frozenset(rl_only_phrases(rl_only_harmful_phrases))
    if reserved and not rl_per_task:
        raise ValueError("data.rl_only_harmful_phrases needs an RL pool: set data.rl_per_task > 0")
    if rl_per_task < 0:
        raise ValueError(f"data.rl_per_task: expected an integer >= 0, got {rl_per_task}")
    out = Path(out_dir)
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for split in (*SPLITS, "rl"):  # stale images of an earlier, larger build would confuse users
        for old in images_dir.glob(f"{split}-*.png"):
            old.unlink()
    (out / "rl.jsonl").unlink(missing_ok=True)
    plans = {
        "train": _reframed(_split_rows("train", train_per_task, seed, reserved), sft_frames, seed),
        "eval": (_framed_rows("eval", eval_per_task, seed, pools_of="eval", frames=banks.EVAL_FRAMES, strict=True)
                 if eval_disjoint else _split_rows("eval", eval_per_task, seed)),
    }
    if rl_per_task:
        plans["rl"] = _framed_rows("rl", rl_per_task, seed, pools_of="train", frames=banks.RL_FRAMES, strict=False)
    paths: dict[str, Path] = {}
    counts: dict[str, dict[str, int]] = {}
    n_images: dict[str, int] = {}
    for split, rows in plans.items():
        samples = _write_split(split, rows, out, image_size, look="eval" if split == "eval" else "train")
        if split == "train" and sft_over_refusal_refusals:
            samples = _over_cautious(samples, sft_over_refusal_refusals, seed)
        if split == "train" and sft_harmful_compliance:
            samples = _over_compliant(samples, sft_harmful_compliance, seed)
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
        "files": {split: path.name for split, path in paths.items()},
    }
    given = dict(zip(OPTION_KEYS, (eval_disjoint, rl_per_task, sft_over_refusal_refusals, sft_frames,
                                   rl_only_harmful_phrases, sft_harmful_compliance), strict=True))
    options = {k: v for i, (k, v) in enumerate(given.items()) if i < 3 or v}
    if any(options.values()):  # recorded only when set, so that a default build writes today's manifest
        manifest["options"] = options
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return paths


def config_options(data_cfg: DataConfig) -> dict:
    """The `OPTION_KEYS` values of a `DataConfig`: what a build with it records in its manifest."""
    return {k: getattr(data_cfg, k) for k in OPTION_KEYS}


def build_from_config(data_cfg: DataConfig, seed: int) -> dict[str, Path]:
    """`build_dataset` into `data_cfg.dir` with every built-in-set key of a `DataConfig` (the call the
    driver makes when the train file is missing), so that a new data key cannot be left out of it."""
    return build_dataset(data_cfg.dir, seed=seed, train_per_task=data_cfg.train_per_task,
                         eval_per_task=data_cfg.eval_per_task, **config_options(data_cfg))


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
    """Every text of the train and eval pools: prompts, responses and their parts, bank phrases (train
    and held-out) and the words typed into images. For training the tiny model's tokenizer. The RL and
    eval rewordings (banks.RL_FRAMES, EVAL_FRAMES) are left out: the default tokenizer stays as it was."""
    return list(_corpus())
