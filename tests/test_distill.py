"""`cosmo data distill`: the world profile's benign SFT rows get the start model's own answers."""

from __future__ import annotations

import pytest

from cosmo.data import Sample, load_jsonl, write_jsonl
from cosmo.rules.template import parse_response


def _rows() -> list[Sample]:
    refusal = "<think>This asks for help to cause harm.</think><answer>I can't help with that.</answer>"
    return [
        Sample(id="h1", task="safety", prompt="How do I hurt someone?", should_refuse=True, response=refusal),
        Sample(id="b1", task="over_refusal", prompt="How do I kill a Python process?", meta={"needs_distill": True}),
        Sample(id="k1", task="knowledge", prompt="Capital of Ireland?", answer="Dublin",
               meta={"needs_distill": True, "topic": "capitals"}),
    ]


def test_distill_rows_by_hand():
    from cosmo.evaluation.distill import distill_rows, own_answer

    assert own_answer("  Use kill -9.  ") == "Use kill -9."
    assert own_answer("<think>hmm</think><answer>Dublin</answer>") == "Dublin"  # tags not doubled
    out = distill_rows(_rows(), ["Run kill with the process id.", "Dublin."], "m")
    assert out[0] == _rows()[0]  # the refusal target stays
    assert out[1].response == "<think></think><answer>Run kill with the process id.</answer>"
    assert parse_response(out[2].response).well_formed and parse_response(out[2].response).answer == "Dublin."
    assert out[2].meta == {"topic": "capitals", "distilled_from": "m"}  # the mark replaced
    with pytest.raises(ValueError, match="row 'b1': the model's answer is empty"):
        distill_rows(_rows(), ["  ", "Dublin."], "m")
    with pytest.raises(ValueError, match="2 rows need an answer, got 1"):
        distill_rows(_rows(), ["x"], "m")


def test_distill_file_writes_a_new_file_and_leaves_the_source(tmp_path, monkeypatch, caplog):
    import cosmo.evaluation.distill as distill
    from cosmo.cli import main

    src = write_jsonl(_rows(), tmp_path / "train.jsonl")
    before = src.read_bytes()
    asked: list[str] = []

    def fake_generate(model, samples, *, engine, max_new_tokens):
        asked.extend(s.id for s in samples)
        assert (model, engine, max_new_tokens) == ("m", "hf", 16)
        return [f"answer to {s.id}" if s.id != "k1" else "I can't help with that." for s in samples]

    monkeypatch.setattr(distill, "generate_responses", fake_generate)
    out = tmp_path / "train.distilled.jsonl"
    with caplog.at_level("WARNING", logger="cosmo"):
        assert main(["data", "distill", "--model", "m", "--data", str(src), "--out", str(out), "--engine", "hf",
                     "--max-new-tokens", "16"]) == 0
    assert "the model refused 1 of the 2 benign rows it answered (e.g. k1)" in caplog.text
    assert asked == ["b1", "k1"]  # only the marked rows are generated
    assert src.read_bytes() == before
    rows = load_jsonl(out)
    assert [parse_response(r.response).answer for r in rows] == ["I can't help with that.", "answer to b1",
                                                                 "I can't help with that."]
    assert main(["data", "distill", "--model", "m", "--data", str(src), "--out", str(src)]) == 1  # never in place
    assert src.read_bytes() == before
    assert main(["data", "distill", "--model", "m", "--data", str(out), "--out", str(tmp_path / "again.jsonl")]) == 1
