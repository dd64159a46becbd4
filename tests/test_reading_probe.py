"""bench/reading_probe.py: one glyph per merged cell, and the cells reach the tower in the order they are labelled."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import reading_probe  # noqa: E402

from cosmo.models.tiny import make_image_processor  # noqa: E402


def test_a_phrase_wraps_at_word_boundaries_into_four_rows_of_sixteen_cells():
    rows = reading_probe.layout("the quick brown fox jumps over the lazy dog")
    assert rows == ["the quick brown ", "fox jumps over  ", "the lazy dog    ", " " * 16]
    assert reading_probe.transcript("".join(rows)) == "the quick brown fox jumps over the lazy dog"
    assert reading_probe.layout("") == [" " * 16] * 4


def test_each_glyph_lands_in_the_vision_token_labelled_with_its_character():
    # "abcdeimnorstuvw" fills 15 cells of row 0 and "x" wraps to row 1, column 0. Of the processor's 64 merged
    # tokens (4 patches of 14 x 14 pixels, 3 channels, 2 frames each), exactly those labelled with a letter may
    # vary within a channel (cell r, c is token 16 r + c): the labels line up with the tower's output.
    for seed in range(3):
        image, cells = reading_probe.render("abcdeimnorstuvw x", reading_probe.TRAIN_FONTS, random.Random(seed),
                                            augment=False)
        assert [i for i, c in enumerate(cells) if c != " "] == [*range(15), 16]
        inputs = make_image_processor()(images=[image], return_tensors="pt")
        assert inputs["image_grid_thw"].tolist() == [[1, 8, 32]]
        tokens = inputs["pixel_values"].numpy().reshape(64, 4, 3, 2, 14 * 14)  # token, patch, channel, frame, pixel
        assert [t for t in range(64) if np.ptp(tokens[t], axis=-1).max() > 1e-6] == [*range(15), 16]


def test_lm_reading_cuts_a_word_into_the_longest_vocabulary_pieces_first():
    import lm_reading  # noqa: PLC0415 - the bench beside the probe

    vocab = {"Ġab": 0, "Ġa": 1, "b": 2, "o": 3, "r": 4, "t": 5, "or": 6, "ort": 7, "Ġ": 8, "a": 9}
    # "abort": "Ġab" (no "Ġabo"), then "ort" (3 characters) when 3 are allowed, "or" + "t" at 2, letters at 1
    assert lm_reading.pieces("abort", 3, vocab) == [0, 7]
    assert lm_reading.pieces("abort", 2, vocab) == [0, 6, 5]
    assert lm_reading.pieces("abort", 1, vocab) == [1, 2, 3, 4, 5]
    # no "Ġb": the space becomes a piece of its own before the letters
    assert lm_reading.pieces("bat", 1, vocab) == [8, 2, 9, 5]
    with pytest.raises(ValueError, match="'z' of 'az'"):
        lm_reading.pieces("az", 1, vocab)
