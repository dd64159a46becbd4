"""The `cosmo` command: every subcommand explains itself; config errors exit 2 and name the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cosmo.cli import USER_ERRORS, main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _keep_environment():
    """`main` exports the console level to the processes it would start (cosmo.logs): undo it per test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.parametrize(
    "argv, words",
    [
        ([], ["train", "sft", "eval", "data", "model", "config"]),
        (["train"], ["evaluate", "train.stages"]),
        (["sft"], ["supervised"]),
        (["eval"], ["over_refusal_rate", "--model", "--data", "--out"]),
        (["data", "build"], ["--out", "--seed"]),
        (["model", "build-tiny"], ["--preset", "small"]),
        (["model", "convert-smollm2"], ["--gguf"]),
        (["model", "build-smol-vl"], ["--source", "SmolLM2"]),
        (["model", "fetch"], ["model.convert", "loopback"]),
    ],
)
def test_every_command_has_help(argv, words, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for word in words:
        assert word in out


def test_config_error_exits_2_and_names_the_key(capsys):
    code = main(["config", str(ROOT / "configs" / "tiny-cpu.yaml"), "sft.stepz=3"])
    assert code == 2
    assert "sft.stepz" in capsys.readouterr().err


def test_config_prints_resolved_yaml(capsys):
    assert main(["config", str(ROOT / "configs" / "tiny-cpu.yaml"), "sft.steps=3"]) == 0
    assert "steps: 3" in capsys.readouterr().out


def test_bad_data_row_is_one_line_error_naming_file_and_line(tmp_path, capsys):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"id": "a", "task": "knowledge", "prompt": "Capital of France?", "answer": "Paris"}\n'
                    '{"id": "b", "task": "cooking", "prompt": "Soup?"}\n')
    code = main(["eval", "--model", str(tmp_path), "--data", str(data), "--out", str(tmp_path / "o.json")])
    assert code == 1
    err = capsys.readouterr().err
    assert "bad.jsonl" in err and ":2" in err and "task" in err and "Traceback" not in err


def test_quick_commands_import_no_heavy_library():
    # `cosmo --help` and `cosmo config` must not pay for torch/ray/vllm (~5 s): build the whole parser and
    # validate the default recipe in a fresh interpreter, then list which heavy modules got imported.
    code = (
        "import sys\n"
        "from cosmo.cli import build_parser\n"
        "from cosmo.config import load_config\n"
        "build_parser()\n"
        "load_config('configs/tiny-cpu.yaml', [])\n"
        "heavy = ('torch', 'ray', 'vllm', 'transformers', 'deepspeed', 'wandb', 'matplotlib', 'math_verify')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_log_level_comes_from_the_flag_else_the_recipe(capsys):
    recipe = str(ROOT / "configs" / "tiny-cpu.yaml")
    assert main(["config", recipe, "logging.level=quiet"]) == 0
    assert os.environ["COSMO_LOG_LEVEL"] == "quiet"
    assert main(["--verbose", "config", recipe, "logging.level=quiet"]) == 0
    assert os.environ["COSMO_LOG_LEVEL"] == "verbose"
    assert main(["config", recipe, "logging.level=loud"]) == 2
    assert "logging.level" in capsys.readouterr().err


def test_quiet_and_verbose_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--quiet", "--verbose", "config", "x.yaml"])
    assert exit_.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_user_errors_are_named_after_real_exception_classes():
    # the CLI names them instead of importing them (importing would load torch and Ray on every error)
    import importlib

    for name in USER_ERRORS:
        module, _, cls = name.rpartition(".")
        assert issubclass(getattr(importlib.import_module(module), cls), Exception), name


def test_a_subclass_of_a_user_error_is_one_line_too(tmp_path, capsys):
    code = main(["report", str(tmp_path / "no-such-run")])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("cosmo: ") and "Traceback" not in err and len(err.splitlines()) == 1


def test_model_fetch_converts_only_what_the_recipe_asks_for_and_only_once(tmp_path, monkeypatch):
    import cosmo.driver.assets as assets

    calls = []

    def fake_convert(out):  # stands in for the PyPI download and conversion
        calls.append(str(out))
        (Path(out) / "config.json").parent.mkdir(parents=True, exist_ok=True)
        (Path(out) / "config.json").write_text("{}")

    monkeypatch.setattr(assets, "convert_smollm2", fake_convert)
    recipe = str(Path(__file__).resolve().parents[1] / "configs" / "smollm2.yaml")
    target = tmp_path / "smollm2"
    monkeypatch.setenv("COSMO_LOOPBACK", "1")  # inside the loopback-only namespace: no PyPI, a one-line error
    assert main(["model", "fetch", recipe, f"model.path={target}"]) == 2
    assert calls == []
    monkeypatch.delenv("COSMO_LOOPBACK")
    assert main(["model", "fetch", recipe, f"model.path={target}", "model.convert=null"]) == 0
    assert calls == []
    assert main(["model", "fetch", recipe, f"model.path={target}"]) == 0
    assert main(["model", "fetch", recipe, f"model.path={target}"]) == 0  # already there: nothing to do
    assert calls == [str(target)]
