"""Can a Qwen2.5-VL vision tower learn to read on 2 CPU cores? A probe for issue #25's alignment stage.

Text is laid out one glyph per merged 28 x 28 cell (the unit one vision token covers after Qwen2.5-VL's 2 x 2
merge), 16 cells by 4 rows: a 448 x 112 image, 64 vision tokens, smol-vl's largest image. Each token is trained,
with no pass through the language model, to emit SmolLM2's input embedding of the character its cell holds
(" " reads as SmolLM2's "Ġ"): cross-entropy over the cosine to the 27 character embeddings plus the squared
distance to the right one. The tower is Qwen2.5-VL's from transformers, from scratch (depth 4, width 256, 6.15M
parameters), fed by the project's image processor. Phrases are 1-6 words of the data profile's prompts, a fifth of
the words held out; fonts are those matplotlib ships, the STIX family and Computer Modern Sans held out. Prints
per-cell accuracy and exact transcription on seen words, held-out words, and held-out words in held-out fonts.
docs/results.md, "smol-vl", has the figures. Run it alone on the machine:

    .venv/bin/python bench/reading_probe.py --minutes 15 [--augment]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import re
import time
from pathlib import Path

import matplotlib
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from safetensors.torch import load_file
from transformers import AutoTokenizer
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

from cosmo.data.loader import load_jsonl
from cosmo.models.tiny import make_image_processor

COLS, ROWS, CELL = 16, 4, 28
ALPHABET = " abcdefghijklmnopqrstuvwxyz"
FONT_DIR = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf"
HELD_OUT_FONTS = ("STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
                  "cmss10.ttf")
TRAIN_FONTS = tuple(sorted(f.name for f in FONT_DIR.glob("DejaVu*.ttf") if "Display" not in f.name)) + (
    "cmr10.ttf", "cmb10.ttf", "cmtt10.ttf", "cmti10.ttf")


def layout(phrase: str) -> list[str]:
    """The phrase word-wrapped into ROWS rows of COLS cells, each row padded with spaces (words past the last
    row are dropped)."""
    rows, line = [], ""
    for word in phrase.split():
        joined = f"{line} {word}" if line else word
        if len(joined) <= COLS:
            line = joined
        else:
            rows.append(line)
            line = word
    rows.append(line)
    rows = rows[:ROWS]
    return [r.ljust(COLS) for r in rows] + [" " * COLS] * (ROWS - len(rows))


def transcript(cells: str) -> str:
    """What a grid of cells says: its words, single-spaced."""
    return " ".join(cells.split())


def render(phrase: str, font_names: tuple[str, ...], rng: random.Random, augment: bool) -> tuple[Image.Image, str]:
    """One image of `phrase` in a random font, size, colour pair and per-glyph offset; with `augment`, also a
    random stroke, shear and blur. Returns the image and its cells, row by row."""
    font = ImageFont.truetype(str(FONT_DIR / rng.choice(font_names)), rng.randint(15, 24))
    bg = tuple(rng.randint(150, 255) for _ in range(3))
    fg = tuple(rng.randint(0, 100) for _ in range(3))
    if rng.random() < 0.5:
        bg, fg = fg, bg
    image = Image.new("RGB", (COLS * CELL, ROWS * CELL), bg)
    draw = ImageDraw.Draw(image)
    stroke = rng.choice((0, 0, 1)) if augment else 0
    rows = layout(phrase)
    for r, row in enumerate(rows):
        for c, char in enumerate(row):
            if char != " ":
                xy = (c * CELL + CELL // 2 + rng.randint(-2, 2), r * CELL + CELL // 2 + rng.randint(-2, 2))
                draw.text(xy, char, font=font, fill=fg, anchor="mm", stroke_width=stroke, stroke_fill=fg)
    if augment:
        shear = rng.uniform(-0.3, 0.3)
        image = image.transform(image.size, Image.AFFINE, (1, shear, -shear * image.height / 2, 0, 1, 0),
                                resample=Image.BILINEAR, fillcolor=bg)
        if rng.random() < 0.5:
            image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.9)))
    return image, "".join(rows)


def profile_words(data_dir: Path) -> tuple[list[str], list[str]]:
    """Lower-case words of 2-9 letters from the prompts of every JSONL file in `data_dir`, split into training
    and held-out words (a fifth, by hash, so the split does not depend on the file order)."""
    words: set[str] = set()
    for path in sorted(data_dir.glob("*.jsonl")):
        for sample in load_jsonl(path):  # the project's loader: a bad row fails naming its file and line
            words.update(w for w in re.findall(r"[a-z]+", sample.prompt.lower()) if 2 <= len(w) <= 9)
    if not words:
        raise SystemExit(f"reading_probe: no prompt words in {data_dir}/*.jsonl (build the data first)")
    held = {w for w in words if int(hashlib.md5(w.encode()).hexdigest(), 16) % 5 == 0}
    return sorted(words - held), sorted(held)


class Probe:
    """The tower, the image processor, the character targets, and a batch maker."""

    def __init__(self, smollm2: Path) -> None:
        tokenizer = AutoTokenizer.from_pretrained(smollm2)
        table = load_file(smollm2 / "model.safetensors")["model.embed_tokens.weight"]
        ids = [tokenizer.convert_tokens_to_ids("Ġ" if c == " " else c) for c in ALPHABET]
        self.targets = table[ids].float()
        config = Qwen2_5_VLVisionConfig(depth=4, hidden_size=256, num_heads=4, intermediate_size=1024,
                                        out_hidden_size=self.targets.shape[1], fullatt_block_indexes=[1, 3],
                                        window_size=112)
        self.tower = Qwen2_5_VisionTransformerPretrainedModel._from_config(config)
        self.processor = make_image_processor()

    def batch(self, n: int, words: list[str], fonts: tuple[str, ...], rng: random.Random,
              augment: bool) -> tuple[dict, torch.Tensor]:
        images, cells = [], []
        for _ in range(n):
            phrase = " ".join(rng.choice(words) for _ in range(rng.randint(1, 6)))
            image, grid = render(phrase, fonts, rng, augment)
            images.append(image)
            cells.append(grid)
        inputs = self.processor(images=images, return_tensors="pt")
        labels = torch.tensor([[ALPHABET.index(c) for c in grid] for grid in cells]).flatten()
        return inputs, labels

    def features(self, inputs: dict) -> torch.Tensor:
        """One vector per merged cell, images in order, cells row by row (the processor's token order)."""
        return self.tower(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"]).pooler_output

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features, dim=-1) @ F.normalize(self.targets, dim=-1).T / 0.05

    def loss(self, inputs: dict, labels: torch.Tensor) -> torch.Tensor:
        features = self.features(inputs)
        distance = F.mse_loss(features, self.targets[labels]) / self.targets.pow(2).mean()
        return F.cross_entropy(self.logits(features), labels) + distance

    @torch.no_grad()
    def score(self, words: list[str], fonts: tuple[str, ...], rows: int = 200) -> tuple[float, float, list]:
        """Per-cell accuracy, exact transcription rate and two examples on `rows` fixed, unaugmented images."""
        rng = random.Random(123)
        self.tower.eval()
        exact, cell_hits, examples = 0, 0.0, []
        for _ in range(rows // 50):
            inputs, labels = self.batch(50, words, fonts, rng, augment=False)
            predicted = self.logits(self.features(inputs)).argmax(-1)
            cell_hits += (predicted == labels).float().sum().item()
            for want, got in zip(labels.view(50, -1).tolist(), predicted.view(50, -1).tolist(), strict=True):
                truth = transcript("".join(ALPHABET[i] for i in want))
                read = transcript("".join(ALPHABET[i] for i in got))
                exact += truth == read
                examples.append((truth, read))
        self.tower.train()
        return cell_hits / (rows * COLS * ROWS), exact / rows, examples[:2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=15.0, help="training time (default 15)")
    ap.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate (default 1e-3)")
    ap.add_argument("--batch", type=int, default=16, help="images per step (default 16)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--augment", action="store_true", help="random stroke, shear and blur on training images")
    ap.add_argument("--data", type=Path, default=Path("runs/assets/world"),
                    help="the data profile's rows, whose prompt words are rendered (default runs/assets/world)")
    ap.add_argument("--smollm2", type=Path, default=Path("runs/assets/smollm2"),
                    help="a converted SmolLM2 (`cosmo model convert-smollm2`), for the character embeddings")
    args = ap.parse_args()
    if not (args.smollm2 / "model.safetensors").is_file():
        raise SystemExit(f"reading_probe: {args.smollm2} holds no converted SmolLM2: run "
                         f"`cosmo model convert-smollm2 --out {args.smollm2}`")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    train_words, held_words = profile_words(args.data)
    probe = Probe(args.smollm2)
    print(f"{len(train_words)} training words, {len(held_words)} held out; {len(TRAIN_FONTS)} training fonts, "
          f"{len(HELD_OUT_FONTS)} held out; tower {sum(p.numel() for p in probe.tower.parameters()) / 1e6:.2f}M",
          flush=True)
    optimizer = torch.optim.AdamW(probe.tower.parameters(), lr=args.lr, weight_decay=0.01)
    rng = random.Random(0)
    start, step, budget = time.monotonic(), 0, args.minutes * 60
    while (elapsed := time.monotonic() - start) < budget:
        cosine = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * elapsed / budget))
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, step / 50) * cosine
        loss = probe.loss(*probe.batch(args.batch, train_words, TRAIN_FONTS, rng, args.augment))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(probe.tower.parameters(), 1.0)
        optimizer.step()
        step += 1
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.3f} {elapsed / 60:.1f}/{args.minutes:g} min", flush=True)
    print(f"{step} steps of {args.batch} images in {args.minutes:g} min")
    for name, words, fonts in (("seen words, seen fonts", train_words, TRAIN_FONTS),
                               ("held-out words, seen fonts", held_words, TRAIN_FONTS),
                               ("held-out words, held-out fonts", held_words, HELD_OUT_FONTS)):
        cells, exact, examples = probe.score(words, fonts)
        print(f"{name}: cells {cells:.3f}, exact {exact:.3f} of 200, e.g. {examples}", flush=True)


if __name__ == "__main__":
    main()
