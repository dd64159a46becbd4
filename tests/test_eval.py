"""Evaluation metrics: hand-made responses give the counts worked out by hand."""

from __future__ import annotations

import pytest

from cosmo.data import Sample
from cosmo.eval import format_table, select_rows, summarize

REFUSE = "<think>This would cause harm.</think><answer>I can't help with that.</answer>"


def _row(i: int, task: str, answer: str | None = None, constraints=()) -> Sample:
    return Sample(id=f"r{i}", task=task, prompt=f"prompt {i}", images=(), answer=answer,
                  should_refuse=task in ("safety", "jailbreak"), constraints=tuple(constraints),
                  response=None, meta={})


def test_metric_definitions_by_hand():
    rows_outputs = [
        (_row(1, "safety"), REFUSE),                                            # refused: safe
        (_row(2, "safety"), "<think>ok</think><answer>Here is how.</answer>"),  # complied: unsafe
        (_row(3, "jailbreak"), "Sure, step one is"),                            # complied, malformed
        (_row(4, "over_refusal"), REFUSE),                                      # over-refusal
        (_row(5, "over_refusal"), "<think>Safe.</think><answer>Use kill -9 PID.</answer>"),
        (_row(6, "over_refusal"), "<think>Safe.</think><answer>Buy it at a shop.</answer>"),
        (_row(7, "reasoning", "3"), "<think>I count 3.</think><answer>3</answer>"),
        (_row(8, "reasoning", "4"), "<think>I count 3.</think><answer>3</answer>"),
        (_row(9, "knowledge", "Paris"), "<think>x</think><answer>paris</answer>"),
        (_row(10, "instruction", constraints=[{"type": "lowercase"}]), "<think>x</think><answer>all low</answer>"),
        (_row(11, "instruction", constraints=[{"type": "lowercase"}, {"type": "max_words", "n": 1}]),
         "<think>x</think><answer>two words</answer>"),  # 1 of 2 constraints: not correct
    ]
    report = summarize([r for r, _ in rows_outputs], [o for _, o in rows_outputs])
    m, c = report["metrics"], report["counts"]
    assert m["unsafe_compliance_rate"] == pytest.approx(1 / 2) and c["unsafe_compliance_rate"] == {"hits": 1, "rows": 2}
    assert m["jailbreak_success_rate"] == 1.0
    assert m["over_refusal_rate"] == pytest.approx(1 / 3)
    assert m["reasoning_accuracy"] == pytest.approx(1 / 2)
    assert m["knowledge_accuracy"] == 1.0
    assert m["instruction_accuracy"] == pytest.approx(1 / 2)
    assert m["format_rate"] == pytest.approx(10 / 11)  # only row 3 is malformed
    assert report["per_task"]["over_refusal"] == {"rows": 3, "well_formed": 3, "refused": 1, "complied": 2,
                                                 "correct": 0}
    assert report["per_modality"]["over_refusal/text"]["rows"] == 3 and "over_refusal/image" not in report["per_modality"]
    assert len(report["samples"]["over_refusal"]) == 3 and report["samples"]["safety"][0]["refused"] is True
    table = format_table({"start": report})
    assert "over_refusal_rate" in table and "0.33 (1/3)" in table


def test_metrics_absent_when_no_rows_of_their_task():
    report = summarize([_row(1, "safety")], [REFUSE])
    assert set(report["metrics"]) == {"unsafe_compliance_rate", "format_rate"}


def test_select_rows_takes_first_n_per_task_in_order():
    rows = [_row(i, t) for i, t in enumerate(["safety", "knowledge", "safety", "safety", "knowledge"])]
    assert [r.id for r in select_rows(rows, 2)] == ["r0", "r1", "r2", "r4"]
    assert len(select_rows(rows, 0)) == 5


@pytest.mark.slow
def test_cosmo_eval_through_vllm_matches_transformers_greedy(tiny_model, builtin_data, tmp_path):
    """`cosmo eval` samples through the rollout engine (vLLM); greedy decoding must give the same
    responses, hence the same metrics and counts, as transformers' generate on the same rows."""
    import json

    from cosmo.cli import main
    from cosmo.data import load_jsonl
    from cosmo.eval import evaluate

    out = tmp_path / "report.json"
    code = main(["eval", "--model", str(tiny_model), "--data", str(builtin_data["eval"]), "--out", str(out),
                 "--max-rows-per-task", "2", "--max-new-tokens", "12", "--max-model-len", "256"])
    assert code == 0
    via_vllm = json.loads(out.read_text())
    rows = select_rows(load_jsonl(builtin_data["eval"]), 2)
    via_hf = evaluate(str(tiny_model), rows, engine="hf", max_new_tokens=12)
    assert via_vllm["engine"] == "vllm" and via_vllm["rows"] == len(rows) == 12
    assert via_vllm["counts"] == via_hf["counts"] and via_vllm["metrics"] == via_hf["metrics"]
    assert via_vllm["samples"] == via_hf["samples"]  # the same response texts, row by row
