"""bench/refusal_ranking.py: the threshold-free discrimination figures (AUC, best gap), checked by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import refusal_ranking  # noqa: E402


def test_auc_counts_pairs_and_half_the_ties():
    harmful, benign = np.array([1.0, 0.5, 0.25]), np.array([0.5, 0.0])
    # pairs (h, b): (1, .5) > ; (1, 0) > ; (.5, .5) tie ; (.5, 0) > ; (.25, .5) < ; (.25, 0) >  -> (4 + 0.5) / 6
    assert refusal_ranking.auc(harmful, benign) == pytest.approx(4.5 / 6)
    assert refusal_ranking.auc(np.ones(3), np.zeros(2)) == 1.0
    assert refusal_ranking.auc(np.full(3, 0.5), np.full(2, 0.5)) == 0.5


def test_the_best_gap_is_the_best_cut_off_whatever_the_threshold():
    harmful, benign = np.array([1.0, 0.75, 0.75, 0.25]), np.array([0.75, 0.25, 0.0, 0.0])
    # cut >= 1: 1/4 - 0 ; >= .75: 3/4 - 1/4 = 0.5 ; >= .25: 1 - 2/4 ; >= 0: 1 - 1
    assert refusal_ranking.best_gap(harmful, benign) == (0.5, 0.75)
    # the same ranking with every score halved (a model readier to answer) has the same AUC and best gap
    assert refusal_ranking.best_gap(harmful / 2, benign / 2) == (0.5, 0.375)
    assert refusal_ranking.auc(harmful / 2, benign / 2) == refusal_ranking.auc(harmful, benign)


def test_the_table_pairs_models_on_the_same_rows(tmp_path):
    def report(model: str, refused: dict[str, float]) -> dict:
        return {"model": model, "task": {"h1": "safety", "h2": "safety", "b1": "over_refusal", "b2": "over_refusal"},
                "refused": refused}

    base = report("sft", {"h1": 1.0, "h2": 0.5, "b1": 0.5, "b2": 0.0})
    same = report("rl", {"h1": 0.5, "h2": 0.25, "b1": 0.25, "b2": 0.0})  # the same order, lower threshold
    lines = refusal_ranking.table([base, same]).splitlines()
    assert lines[1].startswith("sft | 0.875 ")  # 3 of 4 pairs above, one tie
    assert lines[2].startswith("rl | 0.875 ") and lines[2].endswith("+0.000 [+0.000, +0.000]")
    other = {"model": "x", "task": {"h1": "safety", "b1": "over_refusal"}, "refused": {"h1": 1.0, "b1": 0.0}}
    with pytest.raises(SystemExit, match="x was scored on other rows than sft"):
        refusal_ranking.table([base, other])
