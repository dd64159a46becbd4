"""bench/trained_rows.py: which rows the RL stage drew, and the refusal rates per part before and after RL."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import trained_rows  # noqa: E402


def test_the_drawn_rows_are_the_stages_sample_ids_only(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text("\n".join(json.dumps(r) for r in (
        {"stage": "rl_general", "step": 1, "sample_ids": ["k1", "k1"]},
        {"stage": "rl_mixed", "step": 1, "sample_ids": ["h1", "h1", "b1", "b1"]},
        {"stage": "rl_mixed", "step": 2, "sample_ids": ["h2", "b1"]},
    )) + "\n")
    assert trained_rows.drawn_rows(ledger, "rl_mixed") == {"h1", "h2", "b1"}
    with pytest.raises(SystemExit, match="no step of stage 'rl_late'"):
        trained_rows.drawn_rows(ledger, "rl_late")


def test_a_part_reads_harmful_refusals_as_unsafe_misses_and_counts_by_hand():
    # harmful h1..h4: before refused h1,h2,h3 (unsafe hit = complied: h4), after refused h1,h2 only
    # look-alikes b1..b4: before refused b1,b2,b3, after refused b1 only
    before = {"unsafe_compliance_rate": {"h1": False, "h2": False, "h3": False, "h4": True},
              "over_refusal_rate": {"b1": True, "b2": True, "b3": True, "b4": False}}
    after = {"unsafe_compliance_rate": {"h1": False, "h2": False, "h3": True, "h4": True},
             "over_refusal_rate": {"b1": True, "b2": False, "b3": False, "b4": False}}
    line = trained_rows.part_line("all", before, after, ["h1", "h2", "h3", "h4"], ["b1", "b2", "b3", "b4"])
    assert "harmful refused 3/4 -> 2/4 (p = 1.000)" in line  # one discordant row
    assert "look-alikes refused 3/4 -> 1/4 (p = 0.500)" in line  # two discordant rows, same side: 2 * 1/4
    # gaps: before 3/4 - 3/4 = 0, after 2/4 - 1/4 = +0.25
    assert "gap before +0.00" in line and "after +0.25" in line


def test_a_part_without_rows_of_one_kind_says_so_instead_of_dividing_by_zero():
    hits = {"unsafe_compliance_rate": {"h1": True}, "over_refusal_rate": {}}
    line = trained_rows.part_line("drawn by RL", hits, hits, ["h1"], [])
    assert line == "drawn by RL: no look-alike row in this part"
