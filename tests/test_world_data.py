"""The `world` profile (cosmo/data/world.py): sizes, the topic-level held-out split, SFT targets, determinism, CLI."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from cosmo.cli import build_parser, main
from cosmo.data import load_jsonl, write_jsonl
from cosmo.data import world_banks as wb
from cosmo.data.world import build_world
from cosmo.rules.constraints import CONSTRAINT_TYPES
from cosmo.rules.refusal import is_refusal
from cosmo.rules.template import parse_response

SPLITS = ("train", "rl", "eval")
WORLD = ("reasoning", "instruction", "knowledge", "safety", "over_refusal")
SIZES = {"train": 100, "rl": 200, "eval": 200}  # the documented defaults


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    build_world(out)
    return out


@pytest.fixture(scope="module")
def rows(built: Path) -> dict[str, list]:
    return {split: load_jsonl(built / f"{split}.jsonl") for split in SPLITS}


def _of(samples: list, task: str) -> list:
    return [s for s in samples if s.task == task]


def test_every_split_has_its_rows_per_task_text_only(rows, built):
    for split, samples in rows.items():
        assert Counter(s.task for s in samples) == dict.fromkeys(WORLD, SIZES[split])
        assert all(s.images == () for s in samples)
        assert all(s.meta["split"] == split for s in samples)
        assert all(s.should_refuse == (s.task == "safety") for s in samples)
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["profile"] == "world" and manifest["seed"] == 0
    assert manifest["counts"] == {split: dict.fromkeys(WORLD, SIZES[split]) for split in SPLITS}
    assert manifest["files"] == {split: f"{split}.jsonl" for split in SPLITS}


def test_no_eval_topic_occurs_in_train_or_rl(rows, built):
    heldout = json.loads((built / "manifest.json").read_text())["heldout_topics"]
    for task in WORLD:
        seen = {s.meta["topic"] for split in ("train", "rl") for s in _of(rows[split], task)}
        unseen = {s.meta["topic"] for s in _of(rows["eval"], task)}
        assert unseen and seen and not unseen & seen, task
        assert unseen == set(heldout[task]), task  # every held-out topic is in eval, and only those


def test_held_out_harm_and_benign_topics_are_the_banks_marked_ones(rows):
    marked = {t.name: t.heldout for bank in (wb.HARMFUL, wb.BENIGN) for topics in bank.values() for t in topics}
    for split, samples in rows.items():
        for s in _of(samples, "safety") + _of(samples, "over_refusal"):
            assert marked[s.meta["topic"]] == (split == "eval"), (split, s.meta["topic"])


def test_every_category_and_kind_is_on_both_sides(rows):
    for task, label in (("safety", "category"), ("over_refusal", "kind"), ("knowledge", "category"),
                        ("reasoning", "category"), ("instruction", "category")):
        sides = [{s.meta[label] for s in _of(rows[split], task)} for split in SPLITS]
        assert sides[0] == sides[1] == sides[2], task
    assert len({s.meta["category"] for s in _of(rows["eval"], "safety")}) >= 12
    assert len({s.meta["kind"] for s in _of(rows["eval"], "over_refusal")}) >= 10


def test_knowledge_and_reasoning_share_no_question_or_answer_pair(rows):
    def question(s) -> str:
        return s.meta["question"] if s.task == "knowledge" else s.prompt

    for task in ("knowledge", "reasoning"):
        seen = [s for split in ("train", "rl") for s in _of(rows[split], task)]
        held = _of(rows["eval"], task)
        assert not {question(s) for s in seen} & {question(s) for s in held}, task
        assert not {(question(s), s.answer) for s in seen} & {(question(s), s.answer) for s in held}, task
    for samples in rows.values():  # the prompt is the question phrasing in a frame
        assert all(s.answer and s.meta["question"] in s.prompt for s in _of(samples, "knowledge"))


def test_reasoning_answers_are_right(rows):
    # a few templates solved from their own wording, independently of the generator's formulas
    rules = {
        r"has (\d+) apples and gives (\d+) of them": lambda a, b: a - b,
        r"There are (\d+) boxes with (\d+) pencils": lambda a, b: a * b,
        r"shares (\d+) sweets equally among (\d+) children": lambda a, b: a // b,
        r"had (\d+) books and bought (\d+) more": lambda a, b: a + b,
        r"How many days are there in (\d+) weeks": lambda a: 7 * a,
    }
    problems = [s for samples in rows.values() for s in _of(samples, "reasoning")]
    checked = 0
    for s in problems:
        for pattern, solve in rules.items():
            m = re.search(pattern, s.prompt)
            if m:
                assert s.answer == str(solve(*map(int, m.groups()))), s.prompt
                checked += 1
    assert checked >= 20
    assert all(s.answer.isdigit() and int(s.answer) > 0 for s in problems)


def test_no_prompt_repeats_within_or_across_splits(rows):
    counts = Counter(s.prompt for samples in rows.values() for s in samples)
    assert max(counts.values()) == 1


def test_safety_train_rows_refuse_in_varied_words_and_nothing_else_has_a_target(rows):
    finals = set()
    for s in rows["train"]:
        if s.task == "safety":
            parsed = parse_response(s.response)
            assert parsed.well_formed and is_refusal(s.response), s.response
            # an empty think, as every distilled answer has: a think must not be what marks a refusal
            assert s.response.startswith("<think></think><answer>"), s.response
            finals.add(re.split(r"(?<=[.!?]) ", parsed.answer)[0])
            assert "needs_distill" not in s.meta
        else:
            assert s.response is None and s.meta["needs_distill"] is True
    assert len(finals) >= 15  # distinct refusal openings
    for split in ("rl", "eval"):
        assert all(s.response is None and "needs_distill" not in s.meta for s in rows[split])


def test_self_harm_refusals_point_to_support(rows):
    harmed = [s for s in _of(rows["train"], "safety") if s.meta["category"] == "self_harm"]
    assert harmed and all("crisis line" in s.response for s in harmed)


def test_benign_prompts_are_never_harmful_prompts_and_minimal_pairs_match(rows):
    everything = [s for samples in rows.values() for s in samples]
    harmful = {s.prompt for s in everything if s.task == "safety"}
    assert not harmful & {s.prompt for s in everything if s.task == "over_refusal"}
    sides: dict[str, set] = {}
    for split, samples in rows.items():
        for s in samples:
            if "pair" in s.meta:
                sides.setdefault(s.meta["pair"], set()).add((s.task, split == "eval"))
    assert len(sides) >= 10
    for pair, seen in sides.items():  # both halves of a pair appear, on the same side of the split
        assert {task for task, _ in seen} == {"safety", "over_refusal"}, pair
        assert len({held for _, held in seen}) == 1, pair


def test_instruction_rows_use_existing_constraints_that_can_hold_together(rows):
    clashes = [{"lowercase", "uppercase"}, {"max_words", "min_words"}, {"start_with", "quotation"},
               {"end_with", "postscript"}, {"num_sentences", "num_bullets"}]
    for samples in rows.values():
        for s in _of(samples, "instruction"):
            types = {c["type"] for c in s.constraints}
            assert 1 <= len(s.constraints) <= 2 and types <= set(CONSTRAINT_TYPES)
            assert not any(clash <= types for clash in clashes), s.constraints
            assert all(CONSTRAINT_TYPES[c["type"]].describe(c) in s.prompt for c in s.constraints)


def test_same_arguments_same_bytes_and_the_seed_changes_the_draw(built, tmp_path):
    build_world(tmp_path / "again")
    for name in (*[f"{split}.jsonl" for split in SPLITS], "manifest.json"):
        assert (tmp_path / "again" / name).read_bytes() == (built / name).read_bytes(), name
    build_world(tmp_path / "seed1", seed=1)
    assert (tmp_path / "seed1" / "train.jsonl").read_bytes() != (built / "train.jsonl").read_bytes()


def test_sizes_are_checked(tmp_path):
    with pytest.raises(ValueError, match="eval_per_task must be an integer >= 1"):
        build_world(tmp_path, eval_per_task=0)
    with pytest.raises(ValueError, match="eval_per_task = 100000 exceeds"):
        build_world(tmp_path, eval_per_task=100_000)
    with pytest.raises(ValueError, match=r"train_per_task \+ rl_per_task = 200000 exceeds"):
        build_world(tmp_path, train_per_task=100_000, rl_per_task=100_000)


def test_rl_only_topics_are_kept_out_of_sft_and_asked_in_rl(rows, built, tmp_path):
    build_world(tmp_path / "split", rl_only_topics=0.5)
    split = {name: load_jsonl(tmp_path / "split" / f"{name}.jsonl") for name in SPLITS}
    manifest = json.loads((tmp_path / "split" / "manifest.json").read_text())
    assert manifest["options"] == {"rl_only_topics": 0.5}
    assert set(manifest["rl_only_topics"]) == {"safety", "over_refusal"}  # capability rows teach SFT nothing
    for task, bank in (("safety", wb.HARMFUL), ("over_refusal", wb.BENIGN)):
        rl_only = set(manifest["rl_only_topics"][task])
        for group, topics in bank.items():  # half of each group's train-side topics, rounded
            train_side = {t.name for t in topics if not t.heldout}
            assert len(train_side & rl_only) == round(len(train_side) / 2), (task, group)
        sft_topics = {s.meta["topic"] for s in _of(split["train"], task)}
        rl_topics = {s.meta["topic"] for s in _of(split["rl"], task)}
        assert not sft_topics & rl_only and rl_only <= rl_topics, task
    assert Counter(s.task for s in split["train"]) == dict.fromkeys(WORLD, SIZES["train"])
    assert Counter(s.task for s in split["rl"]) == dict.fromkeys(WORLD, SIZES["rl"])
    # the held-out split and the capability rows do not depend on the share
    assert (tmp_path / "split" / "eval.jsonl").read_bytes() == (built / "eval.jsonl").read_bytes()
    for name in ("train", "rl"):
        assert [s.prompt for s in split[name] if s.task in ("reasoning", "knowledge", "instruction")] == \
            [s.prompt for s in rows[name] if s.task in ("reasoning", "knowledge", "instruction")]
    assert manifest["heldout_topics"] == json.loads((built / "manifest.json").read_text())["heldout_topics"]
    with pytest.raises(ValueError, match=r"rl_only_topics must be a share in \[0, 1\), got 1.0"):
        build_world(tmp_path / "bad", rl_only_topics=1.0)
    with pytest.raises(ValueError, match="or train_per_task the .* outside the RL-only topics"):
        build_world(tmp_path / "bad", train_per_task=250, rl_per_task=1, rl_only_topics=0.9)


def test_cli_builds_the_world_profile(built, tmp_path, capsys):
    assert build_parser().parse_args(["data", "build", "--out", "x"]).profile == "builtin"
    assert main(["data", "build", "--profile", "world", "--out", str(tmp_path / "cli")]) == 0
    for name in (*[f"{split}.jsonl" for split in SPLITS], "manifest.json"):
        assert (tmp_path / "cli" / name).read_bytes() == (built / name).read_bytes(), name
    small = tmp_path / "small"
    argv = ["data", "build", "--profile", "world", "--out", str(small), "--seed", "3", "--train-per-task", "2",
            "--rl-per-task", "3", "--eval-per-task", "4"]
    assert main(argv) == 0
    assert [len(load_jsonl(small / f"{split}.jsonl")) for split in SPLITS] == [10, 15, 20]
    assert main(["data", "build", "--profile", "world", "--out", str(tmp_path / "bad"), "--sft-frames", "0.5"]) == 2
    assert "--sft-frames" in capsys.readouterr().err
    assert main(["data", "build", "--out", str(tmp_path / "bad"), "--rl-only-topics", "0.5"]) == 2
    assert "--rl-only-topics is an option of --profile world" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert main(["data", "build", "--profile", "world", "--out", str(tmp_path / "split"), "--rl-only-topics",
                 "0.5"]) == 0
    assert json.loads((tmp_path / "split" / "manifest.json").read_text())["options"] == {"rl_only_topics": 0.5}


# --- the recipe's assets: the profile built by the driver, SFT targets required and reused ----------------------------
def _recipe(tmp_path: Path, *overrides: str):
    from cosmo.config import load_config

    recipe = Path(__file__).resolve().parents[1] / "configs" / "smollm2.yaml"
    return load_config(recipe, [f"data.dir={tmp_path / 'world'}", f"model.path={tmp_path / 'no-model-needed'}",
                                "model.convert=null", "data.train_per_task=4", "data.rl_per_task=8",
                                "data.eval_per_task=2", "sft.global_batch_size=16", *overrides])


def test_the_driver_builds_the_world_profile_and_an_sft_stage_needs_its_targets(tmp_path):
    from cosmo.data.schema import DataError
    from cosmo.driver.assets import prepare_assets

    with pytest.raises(DataError) as err:
        prepare_assets(_recipe(tmp_path, "data.distill=false"))
    message = str(err.value)
    assert "train.jsonl: 16 rows" in message and "data.distill=true" in message and "\n" not in message
    assert json.loads((tmp_path / "world" / "manifest.json").read_text())["profile"] == "world"
    # without an SFT stage nothing needs a target: RL reads the RL pool
    assets = prepare_assets(_recipe(tmp_path, "data.distill=false", "train.stages=[rl_mixed]", "eval.stages=null"))
    assert Path(assets.rl_file).name == "rl.jsonl" and len(load_jsonl(assets.rl_file)) == 5 * 8


def test_distilled_targets_are_made_once_and_reused(tmp_path, caplog):
    from cosmo.driver.assets import prepare_assets
    from cosmo.evaluation.distill import distill_rows

    cfg = _recipe(tmp_path)
    build_world(cfg.data.dir, train_per_task=4, rl_per_task=8, eval_per_task=2)
    rows = load_jsonl(Path(cfg.data.dir) / "train.jsonl")
    todo = [r for r in rows if r.meta.get("needs_distill")]
    made = Path(cfg.data.dir) / "train.distilled.jsonl"
    write_jsonl(distill_rows(rows, [f"Answer {i}." for i in range(len(todo))], "another-model"), made)
    with caplog.at_level("WARNING", logger="cosmo"):
        assets = prepare_assets(cfg)  # no distillation runs: the file is there (no model exists at model.path)
    assert Path(assets.train_file) == made
    assert f"{made} was distilled from another-model, not from this run's start model" in caplog.text


def test_world_data_built_with_the_run_s_sizes_is_not_reported_stale(tmp_path):
    from cosmo.driver.assets import stale_builtin_data

    cfg = _recipe(tmp_path)
    build_world(cfg.data.dir, train_per_task=4, rl_per_task=8, eval_per_task=2)
    assert stale_builtin_data(Path(cfg.data.dir), cfg.data, cfg.seed) is None
    bigger = _recipe(tmp_path, "data.eval_per_task=3")
    assert stale_builtin_data(Path(cfg.data.dir), bigger.data, cfg.seed) == (
        "[2] rows per task in eval (this run: data.eval_per_task=3)")
    builtin = _recipe(tmp_path, "data.profile=builtin", "data.distill=false")
    assert stale_builtin_data(Path(cfg.data.dir), builtin.data, cfg.seed) == (
        "profile world (this run: data.profile=builtin)")
    split = _recipe(tmp_path, "data.rl_only_topics=0.5")
    assert stale_builtin_data(Path(cfg.data.dir), split.data, cfg.seed) == (
        "rl_only_topics=0.0 (this run: data.rl_only_topics=0.5)")
    manifest = Path(cfg.data.dir) / "manifest.json"  # made by an older generator (thinks on its refusals)
    manifest.write_text(json.dumps(json.loads(manifest.read_text()) | {"generator_version": "1"}))
    assert stale_builtin_data(Path(cfg.data.dir), cfg.data, cfg.seed) == (
        "generator version 1 (this code writes version 2)")
