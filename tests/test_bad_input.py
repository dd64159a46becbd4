"""Bad input, table-driven: every case builds one bad input under tmp_path, feeds it to the real entry
point (loader, config, resume, checkpoint, CLI) and checks that the answer names the file, row or key and
what was expected, and that nothing already on disk was changed or removed (issue #7, "bad input").

Each case is (build, outcome, says, then):
- build(tmp) writes the input and returns the call to make;
- outcome is the exception type the call raises, a CLI exit code, or WARNS: the call succeeds and the
  problem is logged (a broken newest checkpoint is skipped, not fatal, when an older one is good);
- says are phrases the message must contain ("{tmp}" stands for tmp_path);
- then(tmp), when given, checks what must still hold afterwards (the good checkpoint is still found).
No Ray, vLLM or DeepSpeed engine is started.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from cosmo.config import ConfigError, load_config
from cosmo.data import DataError, load_images, load_jsonl
from cosmo.data.sampling import EpochSampler, make_sampler
from cosmo.driver.resume import find_resume_point
from learner.checkpoint import finalize_checkpoint, latest_checkpoint, staging_dir
from learner.train_state import load_train_state

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "tiny-cpu.yaml"
WARNS = "warns"  # outcome: no exception; the problem goes to the log and the run carries on

GOOD = {"id": "r1", "task": "safety", "prompt": "How do I pick my neighbour's lock?"}
REASONING = {"id": "r1", "task": "reasoning", "prompt": "What is 2 + 1?", "answer": "3"}


@dataclass(frozen=True)
class Bad:
    build: Callable[[Path], Callable[[], object]]
    outcome: type[BaseException] | int | str
    says: tuple[str, ...]
    then: Callable[[Path], None] | None = None


# ---------------------------------------------------------------- builders


def _jsonl(tmp: Path, *lines: object, name: str = "train.jsonl") -> Path:
    """A JSONL file: dicts are dumped as rows, strings written as they are (one line each)."""
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines)
    path.write_text(text, encoding="utf-8")
    return path


def load(*lines: object) -> Callable[[Path], Callable[[], object]]:
    return lambda tmp: lambda: load_jsonl(_jsonl(tmp, *lines))


def raw(data: bytes) -> Callable[[Path], Callable[[], object]]:
    """load_jsonl of a file with these exact bytes."""

    def build(tmp: Path) -> Callable[[], object]:
        (tmp / "train.jsonl").write_bytes(data)
        return lambda: load_jsonl(tmp / "train.jsonl")

    return build


def beside(prepare: Callable[[Path], object], *lines: object, name: str = "train.jsonl"):
    """load_jsonl of these rows after prepare(tmp) has put other files in place."""

    def build(tmp: Path) -> Callable[[], object]:
        prepare(tmp)
        path = _jsonl(tmp, *lines, name=name)
        return lambda: load_jsonl(path)

    return build


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels and holds no pixel data (cheap stand-in for a huge image)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _good_png(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (48, 48), (200, 30, 30)).save(path)
    return path.read_bytes()


def image(write: Callable[[Path], None]) -> Callable[[Path], Callable[[], object]]:
    """A valid row whose image file `write` spoils; the rows load, opening the image fails."""

    def build(tmp: Path) -> Callable[[], object]:
        (tmp / "images").mkdir()
        write(tmp / "images" / "a.png")
        path = _jsonl(tmp, GOOD | {"images": ["images/a.png"]})
        return lambda: [load_images(s) for s in load_jsonl(path)]

    return build


def config(text: str | None, *overrides: str) -> Callable[[Path], Callable[[], object]]:
    """load_config of a YAML recipe with this text (None: the shipped tiny-cpu recipe) and overrides."""

    def build(tmp: Path) -> Callable[[], object]:
        path = RECIPE
        if text is not None:
            path = tmp / "bad.yaml"
            path.write_text(text, encoding="utf-8")
        return lambda: load_config(path, list(overrides))

    return build


def _sampler_state(rows: int) -> dict:
    sampler = EpochSampler(rows, seed=0)
    sampler.next_batch(3)
    return sampler.state_dict()


def _checkpoint(tmp: Path, stage: str = "sft", step: int = 1, run: str = "run", **state) -> Path:
    """A complete checkpoint as finalize_checkpoint writes it (small stand-in model and train state)."""
    out = tmp / "runs" / run / "checkpoints" / stage / f"step_{step}"
    out.parent.mkdir(parents=True, exist_ok=True)
    work = staging_dir(out)
    (work / "train_state").mkdir(parents=True)
    save_file({"w": torch.arange(4, dtype=torch.float32) + step}, str(work / "model.safetensors"))
    (work / "config.json").write_text(json.dumps({"model_type": "stand-in"}))
    save_file({"rng.torch": torch.get_rng_state()}, str(work / "train_state" / "rank_0.safetensors"))
    (work / "train_state" / "rank_0.json").write_text(json.dumps({"rank": 0}))
    driver = {"stage": stage, "step": step, "sampler": _sampler_state(10), "stage_start_model": "m"} | state
    (work / "driver_state.json").write_text(json.dumps({k: v for k, v in driver.items() if v is not None}))
    return finalize_checkpoint(work, out, {"stage": stage, "step": step, "source_model": "m"})


def _cfg(tmp: Path, resume: str, *overrides: str):
    return load_config(RECIPE, [f"logging.runs_dir={tmp / 'runs'}", "logging.run_name=run", f"resume={resume}",
                                *overrides])


def resume(prepare: Callable[[Path], str], *overrides: str) -> Callable[[Path], Callable[[], object]]:
    """find_resume_point with resume=<what prepare returns> on a run directory prepare fills."""

    def build(tmp: Path) -> Callable[[], object]:
        value = prepare(tmp)
        cfg = _cfg(tmp, value, *overrides)
        return lambda: find_resume_point(cfg, tmp / "runs" / "run")

    return build


def _corrupt_newest(tmp: Path) -> Path:
    """step_1 good, step_2 with a changed byte in its weights; returns step_2."""
    _checkpoint(tmp, step=1)
    newest = _checkpoint(tmp, step=2)
    weights = newest / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    return newest


def _older_one_still_found(tmp: Path) -> None:
    checkpoints = tmp / "runs" / "run" / "checkpoints" / "sft"
    assert latest_checkpoint(checkpoints) == checkpoints / "step_1"
    point = find_resume_point(_cfg(tmp, "auto"), tmp / "runs" / "run")
    assert point is not None and (point.stage, point.step) == ("sft", 1)


def _without(name: str) -> Callable[[Path], str]:
    def prepare(tmp: Path) -> str:
        path = _checkpoint(tmp, step=1)
        (path / name).unlink()
        return str(path)

    return prepare


def _marker(text: str) -> Callable[[Path], str]:
    def prepare(tmp: Path) -> str:
        path = _checkpoint(tmp, step=1)
        (path / "cosmo_checkpoint.json").write_text(text)
        return str(path)

    return prepare


def _incomplete(tmp: Path) -> str:
    """What a crash mid-save leaves: the staging directory's files without the completion marker."""
    path = tmp / "runs" / "run" / "checkpoints" / "sft" / "step_1"
    path.mkdir(parents=True)
    save_file({"w": torch.zeros(4)}, str(path / "model.safetensors"))
    return str(path)


def sampler_from_checkpoint(rows: int, *overrides: str) -> Callable[[Path], Callable[[], object]]:
    """Resume a checkpoint whose data order was for 10 rows on a training file of `rows` rows, as the
    driver does: find_resume_point, then the stage's sampler loads the saved state."""

    def build(tmp: Path) -> Callable[[], object]:
        _checkpoint(tmp, step=1)
        tasks = ["safety", "jailbreak"]
        data = _jsonl(tmp, *[GOOD | {"id": f"r{i}", "task": tasks[i % 2]} for i in range(rows)])
        cfg = _cfg(tmp, "auto", *overrides)

        def call() -> None:
            point = find_resume_point(cfg, tmp / "runs" / "run")
            make_sampler(cfg, load_jsonl(data), cfg.seed).load_state_dict(point.state["sampler"])

        return call

    return build


def train_state(prepare: Callable[[Path], None], rank: int = 0) -> Callable[[Path], Callable[[], object]]:
    """load_train_state on a checkpoint's train_state directory; the checks before any engine use run."""

    def build(tmp: Path) -> Callable[[], object]:
        state = _checkpoint(tmp, step=1) / "train_state"
        prepare(state)
        return lambda: load_train_state(None, state, rank)

    return build


def cli(*argv: str, prepare: Callable[[Path], object] | None = None) -> Callable[[Path], Callable[[], object]]:
    """cosmo.cli.main with these arguments ("{tmp}" replaced); returns its exit code."""

    def build(tmp: Path) -> Callable[[], object]:
        from cosmo.cli import main

        if prepare is not None:
            prepare(tmp)
        return lambda: main([a.replace("{tmp}", str(tmp)) for a in argv])

    return build


def _run_dir(metrics: str) -> Callable[[Path], None]:
    """A run directory with this metrics.jsonl, a checkpoint and an earlier report."""

    def prepare(tmp: Path) -> None:
        run = tmp / "runs" / "run"
        _checkpoint(tmp, step=1)
        (run / "metrics.jsonl").write_text(metrics)
        (run / "report").mkdir()
        (run / "report" / "report.md").write_text("# an earlier report\n")
        _good_png(run / "report" / "rewards.png")

    return prepare


GOOD_METRICS = '{"stage": "sft", "step": 1, "time": 0.0, "train/loss": 2.5}\n'
RUN_FLAGS = ("logging.runs_dir={tmp}/runs", "logging.run_name=run", "model.build_preset=null",
             "model.path={tmp}/no-model", "data.build_if_missing=false", "data.dir={tmp}/no-data")

# ---------------------------------------------------------------- the table

CASES: dict[str, Bad] = {
    # --- JSONL files (cosmo.data.load_jsonl)
    "jsonl-file-missing": Bad(lambda tmp: lambda: load_jsonl(tmp / "nope.jsonl"), DataError,
                              ("{tmp}/nope.jsonl", "file not found")),
    "jsonl-empty-file": Bad(load(), DataError, ("train.jsonl", "empty file: no rows")),
    "jsonl-only-blank-lines": Bad(load("", "   ", ""), DataError, ("train.jsonl", "empty file: no rows")),
    "jsonl-malformed-line": Bad(load(GOOD, '{"id": "r2", "task": '), DataError,
                                ("train.jsonl:2:", "invalid JSON", "column")),
    "jsonl-not-utf8": Bad(raw(b'{"id": "r1", "task": "safety", "prompt": "a"}\n{"id": "\xff"}\n'), DataError,
                          ("train.jsonl:2:", "not valid UTF-8")),
    "jsonl-line-not-an-object": Bad(load("[1, 2]"), DataError,
                                    ("train.jsonl:1:", "expected a JSON object per line, found array")),
    "row-missing-id": Bad(load({"task": "safety", "prompt": "p"}), DataError,
                          ("train.jsonl:1:", "field 'id'", "missing required field")),
    "row-missing-task": Bad(load({"id": "r1", "prompt": "p"}), DataError,
                            ("train.jsonl:1:", "row 'r1'", "field 'task'", "missing required field")),
    "row-missing-prompt": Bad(load({"id": "r1", "task": "safety"}), DataError,
                              ("row 'r1'", "field 'prompt'", "missing required field")),
    "row-empty-id": Bad(load(GOOD | {"id": " "}), DataError, ("field 'id'", "expected a non-empty string")),
    "row-prompt-not-string": Bad(load(GOOD | {"prompt": 5}), DataError,
                                 ("row 'r1'", "field 'prompt'", "expected a non-empty string, found int 5")),
    "row-images-not-list": Bad(load(GOOD | {"images": "a.png"}), DataError,
                               ("field 'images'", "expected an array of image paths, found string")),
    "row-image-path-not-string": Bad(load(GOOD | {"images": [3]}), DataError,
                                     ("field 'images[0]'", "expected a non-empty path string, found int 3")),
    "row-constraints-not-list": Bad(load(GOOD | {"constraints": {"type": "lowercase"}}), DataError,
                                    ("field 'constraints'", "expected an array of constraint objects")),
    "row-should-refuse-not-bool": Bad(load(GOOD | {"should_refuse": "yes"}), DataError,
                                      ("field 'should_refuse'", "expected true or false, found string")),
    "row-answer-a-number": Bad(load(REASONING | {"answer": 3}), DataError,
                               ("field 'answer'", "expected a string or null, found int 3")),
    "row-meta-not-object": Bad(load(GOOD | {"meta": [1]}), DataError, ("field 'meta'", "expected an object")),
    "row-unknown-field": Bad(load(GOOD | {"answers": "3"}), DataError,
                             ("field 'answers'", "unknown field; valid fields: id, task, prompt")),
    "row-unknown-task": Bad(load(GOOD | {"task": "poetry"}), DataError,
                            ("field 'task'", "expected one of reasoning, instruction", "found string \"poetry\"")),
    "row-duplicate-id": Bad(load(GOOD, "", GOOD), DataError,
                            ("train.jsonl:3:", "row 'r1'", "duplicate id (first used on line 1)")),
    "row-reasoning-without-answer": Bad(load({k: v for k, v in REASONING.items() if k != "answer"}), DataError,
                                        ("field 'answer'", "task 'reasoning' needs a non-empty reference answer")),
    "row-instruction-without-constraints": Bad(
        load({"id": "r1", "task": "instruction", "prompt": "Say hi."}), DataError,
        ("field 'constraints'", "needs at least one constraint")),
    "row-constraint-unknown-type": Bad(load(GOOD | {"constraints": [{"type": "rhyme"}]}), DataError,
                                       ("field 'constraints[0]'", "unknown constraint type 'rhyme'",
                                        "valid types: ")),
    "row-constraint-missing-param": Bad(load(GOOD | {"constraints": [{"type": "max_words"}]}), DataError,
                                        ("field 'constraints[0]'", "key 'n': missing, 'max_words' needs it")),
    "row-response-not-in-template": Bad(load(GOOD | {"response": "I can't help with that."}), DataError,
                                        ("field 'response'", "<think>…</think><answer>…</answer>")),
    # --- image files (existence at load_jsonl, decoding at load_images)
    "image-missing": Bad(load(GOOD | {"images": ["images/a.png"]}), DataError,
                         ("train.jsonl:1:", "field 'images[0]'", "image file not found: 'images/a.png'",
                          "resolved to {tmp}/images/a.png")),
    "image-path-relative-to-cwd-not-to-the-jsonl": Bad(
        beside(lambda tmp: _good_png(tmp / "a.png"), GOOD | {"images": ["a.png"]}, name="data/train.jsonl"),
        DataError, ("data/train.jsonl:1:", "image file not found: 'a.png'", "resolved to {tmp}/data/a.png")),
    "image-path-is-a-directory": Bad(
        beside(lambda tmp: (tmp / "images" / "a.png").mkdir(parents=True), GOOD | {"images": ["images/a.png"]}),
        DataError, ("field 'images[0]'", "image file not found")),
    "image-truncated": Bad(image(lambda p: p.write_bytes(_good_png(p)[:60])), DataError,
                           ("train.jsonl:1:", "row 'r1'", "field 'images'", "cannot read image {tmp}/images/a.png")),
    "image-not-an-image": Bad(image(lambda p: p.write_text("not a picture")), DataError,
                              ("train.jsonl:1:", "row 'r1'", "cannot identify image file")),
    "image-empty-file": Bad(image(lambda p: p.write_bytes(b"")), DataError,
                            ("row 'r1'", "cannot read image {tmp}/images/a.png")),
    "image-huge-20000x20000": Bad(image(lambda p: p.write_bytes(_png_header(20_000, 20_000))), DataError,
                                  ("train.jsonl:1:", "row 'r1'", "{tmp}/images/a.png",
                                   "Image size (400000000 pixels) exceeds limit")),
    # --- config: YAML recipes and key=value overrides (cosmo.config.load_config)
    "config-file-missing": Bad(lambda tmp: lambda: load_config(tmp / "nope.yaml"), ConfigError,
                               ("{tmp}/nope.yaml", "does not exist")),
    "yaml-syntax-error": Bad(config("model:\n  path: [m\n"), ConfigError,
                             ("bad.yaml", "not valid YAML at line 3", "expected ',' or ']'")),
    "yaml-tab-indent": Bad(config("rl:\n\tsteps: 3\n"), ConfigError, ("bad.yaml", "not valid YAML at line 2")),
    "yaml-duplicate-key": Bad(config("rl:\n  steps: 1\n  steps: 2\n"), ConfigError,
                              ("bad.yaml", "found duplicate key steps")),
    "yaml-top-level-list": Bad(config("- rl\n- sft\n"), ConfigError,
                               ("bad.yaml", "expected a mapping of sections at the top level")),
    "yaml-unknown-key": Bad(config("model:\n  path: m\n  flavour: x\ndata:\n  dir: d\n"), ConfigError,
                            ("bad.yaml", "key 'model.flavour'", "not in 'ModelConfig'")),
    "yaml-wrong-type": Bad(config("model: {path: m}\ndata: {dir: d}\nrl:\n  steps: many\n"), ConfigError,
                           ("bad.yaml", "key 'rl.steps'", "could not be converted to Integer")),
    "yaml-value-for-a-section": Bad(config("model: {path: m}\ndata: {dir: d}\nrl: 5\n"), ConfigError,
                                    ("bad.yaml", "key 'rl'", "expected a section (a mapping of keys), got 5")),
    "override-unknown-key": Bad(config(None, "learner.zero_stagee=3"), ConfigError,
                                ("command line", "key 'learner.zero_stagee'", "Did you mean")),
    "override-without-equals": Bad(config(None, "rl.steps"), ConfigError,
                                   ("override 'rl.steps'", "not of the form key=value")),
    "override-unparsable-value": Bad(config(None, "rl.steps=[1"), ConfigError,
                                     ("override 'rl.steps=[1'", "value is not valid YAML")),
    "override-wrong-type-int": Bad(config(None, "rl.steps=abc"), ConfigError,
                                   ("key 'rl.steps'", "'abc'", "could not be converted to Integer")),
    "override-wrong-type-bool": Bad(config(None, "model.freeze_vision=maybe"), ConfigError,
                                    ("key 'model.freeze_vision'", "is not a valid bool")),
    "override-list-expected": Bad(config(None, "train.stages=sft"), ConfigError,
                                  ("key 'train.stages'", "is not a ListConfig")),
    "override-value-for-a-section": Bad(config(None, "reward.gate=5"), ConfigError,
                                        ("key 'reward.gate'", "expected a section")),
    "override-rl-steps-zero": Bad(config(None, "rl.steps=0"), ConfigError,
                                  ("key 'rl.steps'", "expected an integer >= 1, got 0")),
    "override-clip-eps-out-of-range": Bad(config(None, "algorithm.clip_eps=2"), ConfigError,
                                          ("key 'algorithm.clip_eps'", "expected a number in (0, 1), got 2.0")),
    "override-bad-choice": Bad(config(None, "algorithm.name=foo"), ConfigError,
                               ("key 'algorithm.name'", "expected cpgd, grpo or ppo, got 'foo'")),
    "override-unknown-stage": Bad(config(None, "train.stages=[sft,dpo]"), ConfigError,
                                  ("key 'train.stages[1]'", "expected one of ['sft', 'rl'], got 'dpo'")),
    "override-unknown-task-weight": Bad(config(None, "data.task_weights.poetry=1"), ConfigError,
                                        ("key 'data.task_weights.poetry'", "expected a task")),
    "override-batch-not-divisible": Bad(config(None, "sft.global_batch_size=7"), ConfigError,
                                        ("key 'sft.global_batch_size'", "a multiple of")),
    "required-key-missing": Bad(lambda tmp: lambda: load_config(None, ["data.dir=d"]), ConfigError,
                                ("required keys have no value: model.path",)),
    "required-key-set-to-null": Bad(config(None, "model.path=null"), ConfigError,
                                    ("key 'model.path'", "Incompatible value 'None'")),
    # --- checkpoints and resume (cosmo.driver.resume.find_resume_point, learner.checkpoint, learner.train_state)
    "resume-path-missing": Bad(resume(lambda tmp: str(tmp / "nope")), ConfigError,
                               ("resume={tmp}/nope", "not a usable checkpoint: no such directory")),
    "resume-path-incomplete-no-marker": Bad(resume(_incomplete), ConfigError,
                                            ("resume={tmp}/runs/run/checkpoints/sft/step_1",
                                             "no cosmo_checkpoint.json (incomplete)")),
    "resume-path-corrupt-file": Bad(resume(lambda tmp: str(_corrupt_newest(tmp))), ConfigError,
                                    ("step_2", "model.safetensors does not match its checksum"),
                                    then=_older_one_still_found),
    "resume-auto-skips-corrupt-newest": Bad(resume(lambda tmp: (_corrupt_newest(tmp), "auto")[1]), WARNS,
                                            ("skipping checkpoint {tmp}/runs/run/checkpoints/sft/step_2",
                                             "model.safetensors does not match its checksum"),
                                            then=_older_one_still_found),
    "resume-missing-train-state-rank-file": Bad(resume(_without("train_state/rank_0.json")), ConfigError,
                                                ("step_1", "train_state/rank_0.json is missing")),
    "resume-marker-truncated": Bad(resume(_marker('{"files": {')), ConfigError,
                                   ("cosmo_checkpoint.json is unreadable",)),
    "resume-marker-files-not-a-mapping": Bad(resume(_marker('{"files": ["model.safetensors"]}')), ConfigError,
                                             ("cosmo_checkpoint.json is unreadable",
                                              "'files' must map relative file names")),
    "resume-marker-names-a-file-outside": Bad(resume(_marker('{"files": {"../../secret": "0"}}')), ConfigError,
                                              ("'files' must map relative file names",)),
    "resume-stage-not-in-train-stages": Bad(
        resume(lambda tmp: str(_checkpoint(tmp, stage="rl", step=2)), "train.stages=[sft]"), ConfigError,
        ("{tmp}/runs/run/checkpoints/rl/step_2 is from stage 'rl'", "not in train.stages ['sft']")),
    "resume-driver-state-without-sampler": Bad(
        resume(lambda tmp: str(_checkpoint(tmp, step=1, sampler=None))), ConfigError,
        ("driver_state.json", "expected an object with sampler (dict)")),
    "resume-sampler-for-other-data-size": Bad(sampler_from_checkpoint(8), ValueError,
                                              ("was for 10 rows", "this run has 8 rows",
                                               "resume with the same data and seed")),
    "resume-plain-order-into-task-mixture": Bad(
        sampler_from_checkpoint(10, "data.task_weights={safety: 1, jailbreak: 1}"), ValueError,
        ("plain epoch order", "this run sets data.task_weights")),
    "train-state-rank-file-missing": Bad(train_state(lambda d: None, rank=1), FileNotFoundError,
                                         ("train_state/rank_1.safetensors is missing",
                                          "different number of learner ranks")),
    "train-state-corrupt-safetensors": Bad(
        train_state(lambda d: (d / "rank_0.safetensors").write_bytes(b"\x10\x00\x00\x00garbage")), ValueError,
        ("train_state/rank_0.safetensors", "not a readable safetensors file")),
    # --- the CLI: one line on stderr, exit 1 (bad file) or 2 (bad config), nothing written
    "cli-eval-data-missing": Bad(cli("eval", "--model", "{tmp}", "--data", "{tmp}/nope.jsonl",
                                     "--out", "{tmp}/out.json"), 1,
                                 ("cosmo: DataError: {tmp}/nope.jsonl: file not found",)),
    "cli-eval-bad-row": Bad(cli("eval", "--model", "{tmp}", "--data", "{tmp}/train.jsonl", "--out", "{tmp}/o.json",
                                prepare=lambda tmp: _jsonl(tmp, GOOD | {"task": "poetry"})), 1,
                            ("{tmp}/train.jsonl:1: row 'r1': field 'task'", "expected one of")),
    "cli-report-without-metrics": Bad(cli("report", "{tmp}"), 1, ("{tmp}/metrics.jsonl not found",)),
    "cli-report-run-dir-missing": Bad(cli("report", "{tmp}/nope"), 1,
                                      ("run directory {tmp}/nope does not exist",)),
    "cli-report-malformed-metrics-line": Bad(cli("report", "{tmp}/runs/run", prepare=_run_dir(GOOD_METRICS + "{bad\n")),
                                             1, ("ReportError: {tmp}/runs/run/metrics.jsonl:2: not valid JSON",)),
    "cli-report-metrics-line-not-a-record": Bad(cli("report", "{tmp}/runs/run", prepare=_run_dir("[1, 2]\n")), 1,
                                                ("metrics.jsonl:1:", "expected a JSON object with a string 'stage'")),
    "cli-config-bad-value": Bad(cli("config", str(RECIPE), "rl.steps=0"), 2,
                                ("cosmo: config error: key 'rl.steps': expected an integer >= 1",)),
    "cli-train-bad-override-on-existing-run": Bad(
        cli("train", str(RECIPE), *RUN_FLAGS, "resume=auto", "algorithm.clip_eps=2", prepare=_run_dir(GOOD_METRICS)),
        2, ("config error: key 'algorithm.clip_eps'",)),
    "cli-train-resume-missing": Bad(cli("train", str(RECIPE), *RUN_FLAGS, "resume={tmp}/nope"), 2,
                                    ("config error: resume={tmp}/nope: not a usable checkpoint",)),
}


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_named_and_nothing_saved_is_lost(case: Bad, tmp_path: Path, capsys, caplog):
    call = case.build(tmp_path)
    before = _snapshot(tmp_path)
    caplog.set_level(logging.INFO)
    capsys.readouterr()
    if isinstance(case.outcome, int):  # the CLI: an exit code and one line on stderr, no traceback
        assert call() == case.outcome
        err = capsys.readouterr().err
        assert "Traceback" not in err
        message = err.strip().splitlines()[-1]
        assert message.startswith("cosmo: ")
    elif case.outcome == WARNS:
        call()
        message = caplog.text
    else:
        with pytest.raises(case.outcome) as info:
            call()
        message = str(info.value)
        assert "\n" not in message, "an error is one line"
    for phrase in case.says:
        assert phrase.replace("{tmp}", str(tmp_path)) in message
    after = _snapshot(tmp_path)
    changed = [name for name, digest in before.items() if after.get(name) != digest]
    assert not changed, f"files changed or removed: {changed}"
    if case.then is not None:
        case.then(tmp_path)


def test_the_table_covers_at_least_thirty_kinds():
    assert len(CASES) >= 30
