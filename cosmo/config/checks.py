"""Range and choice checks the type system cannot express, run on every loaded config before any work."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from cosmo.algorithms.names import AGGREGATIONS, CLIP_SCHEDULES, KL_ROWS, WEIGHTS
from cosmo.config.sections import (
    STAGES,
    WEIGHT_TRANSPORTS,
    CheckFailed,
    CosmoConfig,
    DataConfig,
    RewardConfig,
)
from cosmo.config.stages import NAME, RESERVED_NAMES, stage_config
from cosmo.data.schema import TASKS
from cosmo.models.presets import PRESETS
from cosmo.rules.registry import MODEL_OBJECTIVES, OBJECTIVES


def _check(ok: bool, key: str, expected: str, value: Any) -> None:
    if not ok:
        raise CheckFailed(key, expected, value)


def validate(cfg: CosmoConfig) -> None:
    """Range and choice checks the type system cannot express; fail before any work starts. Every named
    stage's merged config passes the same checks, reported under `train.stage_configs.<name>.<key>`."""
    _validate_tree(cfg)
    for name in cfg.train.stage_configs:
        _check(NAME.fullmatch(name) is not None and name not in RESERVED_NAMES, f"train.stage_configs.{name}",
               f"a name of letters, digits, _ and - starting with a letter, other than {', '.join(RESERVED_NAMES)}",
               name)
        _, merged = stage_config(cfg, name)
        try:
            _validate_tree(merged)
        except CheckFailed as exc:
            raise CheckFailed(f"train.stage_configs.{name}.{exc.key}", exc.expected, exc.value) from None


WORLD_UNUSED = ("eval_disjoint", "sft_over_refusal_refusals", "sft_harmful_compliance", "sft_frames",
                "rl_only_harmful_phrases")
"""Keys of the builtin profile's generator that the world profile does not have."""


def _check_profile(d: DataConfig) -> None:
    """The world profile writes its own RL pool and knows none of the builtin generator's options; distillation
    fills that profile's marked rows only."""
    _check(d.profile in ("builtin", "world"), "data.profile", "builtin or world", d.profile)
    _check(d.distill_max_new_tokens >= 1, "data.distill_max_new_tokens", "an integer >= 1", d.distill_max_new_tokens)
    if d.profile != "world":
        _check(not d.distill, "data.distill", "false unless data.profile=world (its rows are the ones marked for it)",
               d.distill)
        _check(d.rl_only_topics == 0, "data.rl_only_topics", "0 unless data.profile=world (a key of that profile)",
               d.rl_only_topics)
        return
    _check(0 <= d.rl_only_topics < 1, "data.rl_only_topics", "a share in [0, 1)", d.rl_only_topics)
    _check(d.rl_per_task >= 1, "data.rl_per_task", "an integer >= 1 with data.profile=world (it writes rl.jsonl)",
           d.rl_per_task)
    defaults = DataConfig(dir="")
    for key in WORLD_UNUSED:
        _check(getattr(d, key) == getattr(defaults, key), f"data.{key}",
               f"{getattr(defaults, key)!r} with data.profile=world (a key of the builtin profile)", getattr(d, key))


def _validate_tree(cfg: CosmoConfig) -> None:
    """The checks of one config tree (the recipe's, or a named stage's merged one)."""
    _check(cfg.model.build_preset is None or cfg.model.build_preset in PRESETS,
           "model.build_preset", f"null or one of {sorted(PRESETS)}", cfg.model.build_preset)
    _check(cfg.model.convert in (None, "smollm2"), "model.convert", "null or smollm2", cfg.model.convert)
    _check(not (cfg.model.convert and cfg.model.build_preset), "model.convert",
           "null when model.build_preset is set (one way to make the start model)", cfg.model.convert)
    _check(cfg.model.dtype in ("auto", "float32", "bfloat16", "float16"),
           "model.dtype", "auto, float32, bfloat16 or float16", cfg.model.dtype)
    _check(cfg.model.attn_implementation in ("sdpa", "eager", "flash_attention_2"),
           "model.attn_implementation", "sdpa, eager or flash_attention_2", cfg.model.attn_implementation)
    _check(cfg.data.max_length >= 32, "data.max_length", "an integer >= 32", cfg.data.max_length)
    _check(cfg.data.train_per_task >= 1, "data.train_per_task", "an integer >= 1", cfg.data.train_per_task)
    _check(cfg.data.eval_per_task >= 1, "data.eval_per_task", "an integer >= 1", cfg.data.eval_per_task)
    _check(cfg.data.rl_per_task >= 0, "data.rl_per_task", "an integer >= 0", cfg.data.rl_per_task)
    _check(0 <= cfg.data.sft_over_refusal_refusals <= 1, "data.sft_over_refusal_refusals", "a share in [0, 1]",
           cfg.data.sft_over_refusal_refusals)
    _check(0 <= cfg.data.sft_harmful_compliance <= 1, "data.sft_harmful_compliance", "a share in [0, 1]",
           cfg.data.sft_harmful_compliance)
    _check(0 <= cfg.data.sft_frames <= 1, "data.sft_frames", "a share in [0, 1]", cfg.data.sft_frames)
    _check(cfg.data.rl_only_harmful_phrases == 0 or cfg.data.rl_per_task > 0, "data.rl_only_harmful_phrases",
           "0 unless data.rl_per_task > 0 (the phrases go to the RL pool)", cfg.data.rl_only_harmful_phrases)
    _check_profile(cfg.data)
    d = cfg.data
    for name in ("augment_fraction", "augment_p_typed", "augment_p_split", "augment_p_list", "augment_p_roleplay",
                 "augment_p_wrap_image", "augment_max_noise"):
        _check(0 <= getattr(d, name) <= 1, f"data.{name}", "a number in [0, 1]", getattr(d, name))
    _check(d.augment_image_size >= 32, "data.augment_image_size", "an integer >= 32", d.augment_image_size)
    _check(0 <= d.augment_max_rotation <= 45, "data.augment_max_rotation", "degrees in [0, 45]",
           d.augment_max_rotation)
    for task, w in d.task_weights.items():
        _check(task in TASKS, f"data.task_weights.{task}", f"a task, one of {list(TASKS)}", task)
        _check(0 <= w < float("inf"), f"data.task_weights.{task}", "a finite weight >= 0", w)
    _check(not d.task_weights or sum(d.task_weights.values()) > 0, "data.task_weights",
           "at least one weight > 0 (or {} for plain epochs)", d.task_weights)
    for i, stage in enumerate(cfg.train.stages):
        _check(stage in STAGES or stage in cfg.train.stage_configs, f"train.stages[{i}]",
               f"one of {[*STAGES, *cfg.train.stage_configs]}", stage)
        _check(stage not in cfg.train.stages[:i], f"train.stages[{i}]", "a stage not listed before (each runs once)",
               stage)
    _check(len(cfg.train.stages) > 0, "train.stages", "at least one stage", cfg.train.stages)
    for i, stage in enumerate(cfg.eval.stages or ()):
        _check(stage in cfg.train.stages, f"eval.stages[{i}]", f"a stage of train.stages {cfg.train.stages}", stage)
    s = cfg.sft
    _check(s.steps >= 1, "sft.steps", "an integer >= 1", s.steps)
    _check(s.lr > 0, "sft.lr", "a positive number", s.lr)
    _check(0 <= s.min_lr_ratio <= 1, "sft.min_lr_ratio", "a number in [0, 1]", s.min_lr_ratio)
    _check(s.warmup_steps >= 0, "sft.warmup_steps", "an integer >= 0", s.warmup_steps)
    _check(s.micro_batch_size >= 1, "sft.micro_batch_size", "an integer >= 1", s.micro_batch_size)
    per_step = s.micro_batch_size * cfg.learner.num_ranks
    _check(s.global_batch_size % per_step == 0, "sft.global_batch_size",
           f"a multiple of sft.micro_batch_size x learner.num_ranks = {per_step}", s.global_batch_size)
    rl = cfg.rl
    _check(rl.steps >= 1, "rl.steps", "an integer >= 1", rl.steps)
    _check(rl.lr > 0, "rl.lr", "a positive number", rl.lr)
    _check(0 <= rl.min_lr_ratio <= 1, "rl.min_lr_ratio", "a number in [0, 1]", rl.min_lr_ratio)
    _check(rl.warmup_steps >= 0, "rl.warmup_steps", "an integer >= 0", rl.warmup_steps)
    _check(rl.prompts_per_step >= 1, "rl.prompts_per_step", "an integer >= 1", rl.prompts_per_step)
    _check(rl.mode in ("sync", "async"), "rl.mode", "sync or async", rl.mode)
    _check(rl.mode == "sync" or cfg.rollout.temperature == 1.0, "rollout.temperature",
           "1.0 with rl.mode=async (the importance weights use vLLM's log-probs, which are before temperature)",
           cfg.rollout.temperature)
    _check(rl.mode == "sync" or cfg.rollout.top_p == 1.0, "rollout.top_p",
           "1.0 with rl.mode=async (vLLM's log-probs are of the full distribution, not the nucleus it samples "
           "from, so the importance weights would be biased)", cfg.rollout.top_p)
    _check(rl.dynamic_sampling_max_rounds >= 1, "rl.dynamic_sampling_max_rounds", "an integer >= 1",
           rl.dynamic_sampling_max_rounds)
    per_step = rl.micro_batch_size * cfg.learner.num_ranks
    _check(rl.micro_batch_size >= 1 and (rl.prompts_per_step * cfg.algorithm.group_size) % per_step == 0,
           "rl.micro_batch_size", f"a divisor such that rl.prompts_per_step x algorithm.group_size = "
           f"{rl.prompts_per_step * cfg.algorithm.group_size} is a multiple of micro_batch_size x "
           f"learner.num_ranks", rl.micro_batch_size)
    r = cfg.rollout
    _check(r.num_actors >= 1, "rollout.num_actors", "an integer >= 1", r.num_actors)
    _check(r.cpus_per_actor > 0, "rollout.cpus_per_actor", "a positive number", r.cpus_per_actor)
    _check(r.max_new_tokens >= 1, "rollout.max_new_tokens", "an integer >= 1", r.max_new_tokens)
    _check(r.temperature > 0, "rollout.temperature", "a positive number (RL samples)", r.temperature)
    _check(0 < r.top_p <= 1, "rollout.top_p", "a number in (0, 1]", r.top_p)
    _check(r.max_model_len > r.max_new_tokens, "rollout.max_model_len", "more than rollout.max_new_tokens",
           r.max_model_len)
    _check(0 < r.gpu_memory_utilization <= 1, "rollout.gpu_memory_utilization", "a number in (0, 1]",
           r.gpu_memory_utilization)
    _check(r.tensor_parallel_size >= 1, "rollout.tensor_parallel_size", "an integer >= 1", r.tensor_parallel_size)
    _check(0 < r.cpu_memory_utilization <= 1, "rollout.cpu_memory_utilization", "a number in (0, 1]",
           r.cpu_memory_utilization)
    _check(r.cpu_kv_cache_gib is None or r.cpu_kv_cache_gib > 0, "rollout.cpu_kv_cache_gib", "null or a positive "
           "number of GiB", r.cpu_kv_cache_gib)
    _check(r.max_restarts >= 0, "rollout.max_restarts", "an integer >= 0", r.max_restarts)
    _check(r.timeout_s > 0, "rollout.timeout_s", "a positive number of seconds", r.timeout_s)
    _check(r.restart_timeout_s > 0, "rollout.restart_timeout_s", "a positive number of seconds", r.restart_timeout_s)
    _check(r.weight_transport in WEIGHT_TRANSPORTS, "rollout.weight_transport", f"one of {list(WEIGHT_TRANSPORTS)}",
           r.weight_transport)
    _validate_reward(cfg.reward)
    a = cfg.algorithm
    _check(a.name in ("cpgd", "grpo", "ppo"), "algorithm.name", "cpgd, grpo or ppo", a.name)
    _check(0 < a.clip_eps < 1, "algorithm.clip_eps", "a number in (0, 1)", a.clip_eps)
    _check(a.drift_coef >= 0, "algorithm.drift_coef", "a number >= 0", a.drift_coef)
    _check(a.drift_clip > 0, "algorithm.drift_clip", "a positive number", a.drift_clip)
    _check(a.kl_coef >= 0, "algorithm.kl_coef", "a number >= 0", a.kl_coef)
    _check(a.kl_rows in KL_ROWS, "algorithm.kl_rows", f"one of {KL_ROWS}", a.kl_rows)
    _check(a.kl_rows == "all" or a.kl_coef > 0, "algorithm.kl_rows", "'all' unless algorithm.kl_coef > 0 (it "
           "chooses the rows of that KL)", a.kl_rows)
    _check(a.sft_coef >= 0, "algorithm.sft_coef", "a number >= 0", a.sft_coef)
    _check(a.sft_rows in KL_ROWS, "algorithm.sft_rows", f"one of {KL_ROWS}", a.sft_rows)
    _check(a.sft_batch >= 1, "algorithm.sft_batch", "an integer >= 1 (rows per rank)", a.sft_batch)
    _check(a.is_cap >= 1, "algorithm.is_cap", "a number >= 1", a.is_cap)
    _check(a.group_size >= 2, "algorithm.group_size", "an integer >= 2", a.group_size)
    _check(a.refusal_balance_window >= 1, "algorithm.refusal_balance_window", "an integer >= 1 (batches)",
           a.refusal_balance_window)
    _check(a.refusal_balance_window == 1 or a.refusal_balance, "algorithm.refusal_balance_window",
           "1 unless algorithm.refusal_balance is true (it is that balance's window)", a.refusal_balance_window)
    _check(a.advantage_weight in WEIGHTS, "algorithm.advantage_weight", f"one of {list(WEIGHTS)}", a.advantage_weight)
    _check(a.aggregation in AGGREGATIONS, "algorithm.aggregation", f"one of {list(AGGREGATIONS)}", a.aggregation)
    _check(a.clip_schedule in CLIP_SCHEDULES, "algorithm.clip_schedule", f"one of {list(CLIP_SCHEDULES)}",
           a.clip_schedule)
    _check(0 < a.clip_eps_min <= a.clip_eps, "algorithm.clip_eps_min", "a number in (0, algorithm.clip_eps]",
           a.clip_eps_min)
    _check(rl.epochs >= 1, "rl.epochs", "an integer >= 1", rl.epochs)
    _check(rl.truncated in ("keep", "drop"), "rl.truncated", "keep or drop", rl.truncated)
    _check(rl.overlong in ("keep", "exclude"), "rl.overlong", "keep or exclude", rl.overlong)
    _check(0 <= rl.truncation_warn <= 1, "rl.truncation_warn", "a share in [0, 1]", rl.truncation_warn)
    rank_batch = rl.prompts_per_step * a.group_size // max(cfg.learner.num_ranks, 1)
    _check(rl.mini_batches >= 1 and rank_batch % rl.mini_batches == 0, "rl.mini_batches",
           f"a divisor of each rank's {rank_batch} trajectories per step", rl.mini_batches)
    ln = cfg.learner
    _check(ln.num_ranks >= 1, "learner.num_ranks", "an integer >= 1", ln.num_ranks)
    _check(ln.cpus_per_rank > 0, "learner.cpus_per_rank", "a positive number", ln.cpus_per_rank)
    _check(ln.zero_stage in (0, 1, 2, 3), "learner.zero_stage", "0, 1, 2 or 3", ln.zero_stage)
    _check(ln.backend in ("auto", "gloo", "nccl"), "learner.backend", "auto, gloo or nccl", ln.backend)
    _check(ln.grad_clip >= 0, "learner.grad_clip", "a number >= 0", ln.grad_clip)
    _check(0 <= ln.adam_beta1 < 1 and 0 <= ln.adam_beta2 < 1, "learner.adam_beta1/adam_beta2",
           "numbers in [0, 1)", (ln.adam_beta1, ln.adam_beta2))
    _check(ln.max_skipped_steps >= 1, "learner.max_skipped_steps", "an integer >= 1", ln.max_skipped_steps)
    _check(ln.timeout_s > 0, "learner.timeout_s", "a positive number of seconds", ln.timeout_s)
    _check(ln.startup_timeout_s > 0, "learner.startup_timeout_s", "a positive number of seconds",
           ln.startup_timeout_s)
    _check(ln.threads_per_rank >= 0, "learner.threads_per_rank", "an integer >= 0", ln.threads_per_rank)
    _check(ln.max_tokens_per_micro_batch >= 0, "learner.max_tokens_per_micro_batch", "an integer >= 0",
           ln.max_tokens_per_micro_batch)
    _check(ln.logprob_chunk_tokens >= 0, "learner.logprob_chunk_tokens", "an integer >= 0", ln.logprob_chunk_tokens)
    _check(cfg.cluster.num_cpus is None or cfg.cluster.num_cpus >= 1, "cluster.num_cpus", "null or >= 1",
           cfg.cluster.num_cpus)
    _check(cfg.eval.engine in ("vllm", "hf"), "eval.engine", "vllm or hf", cfg.eval.engine)
    ev, ck = cfg.eval.every_steps, cfg.checkpoint.every_steps
    _check(ev == 0 or (ev > 0 and ck > 0 and ev % ck == 0), "eval.every_steps",
           f"0, or a multiple of checkpoint.every_steps ({ck}) when that is > 0", ev)
    _check(cfg.logging.samples_every >= 0, "logging.samples_every", "an integer >= 0", cfg.logging.samples_every)
    _check(cfg.logging.samples_per_log >= 1, "logging.samples_per_log", "an integer >= 1", cfg.logging.samples_per_log)
    _check(cfg.logging.wandb_mode in ("offline", "online", "disabled"), "logging.wandb_mode",
           "offline, online or disabled", cfg.logging.wandb_mode)
    _check(cfg.logging.log_every >= 1, "logging.log_every", "an integer >= 1", cfg.logging.log_every)
    _check(cfg.logging.level in ("quiet", "info", "verbose"), "logging.level", "quiet, info or verbose",
           cfg.logging.level)
    name = cfg.logging.run_name
    _check(bool(name) and "/" not in name and name not in (".", ".."), "logging.run_name",
           "a non-empty name without '/'", name)
    _check(cfg.checkpoint.every_steps >= 0, "checkpoint.every_steps", "an integer >= 0", cfg.checkpoint.every_steps)
    _check(cfg.checkpoint.keep_last >= 1, "checkpoint.keep_last", "an integer >= 1", cfg.checkpoint.keep_last)
    _check(cfg.eval.max_rows_per_task >= 0, "eval.max_rows_per_task", "an integer >= 0", cfg.eval.max_rows_per_task)
    _check(cfg.eval.max_new_tokens >= 1, "eval.max_new_tokens", "an integer >= 1", cfg.eval.max_new_tokens)
    _check(cfg.eval.batch_size >= 1, "eval.batch_size", "an integer >= 1", cfg.eval.batch_size)
    _check(cfg.device in ("auto", "cpu", "cuda"), "device", "auto, cpu or cuda", cfg.device)
    keywords = ("auto", "fresh", "never")  # anything else is a checkpoint path; a miscased keyword is a slip
    _check(cfg.resume in keywords or (cfg.resume != "" and cfg.resume.lower() not in keywords), "resume",
           "auto, fresh, never or a checkpoint directory", cfg.resume)


def _validate_reward(r: RewardConfig) -> None:
    """The reward section's checks (called by `validate`)."""
    _check(r.num_workers >= 1, "reward.num_workers", "an integer >= 1", r.num_workers)
    _check(r.timeout_s > 0, "reward.timeout_s", "a positive number", r.timeout_s)
    _check(r.startup_timeout_s > 0, "reward.startup_timeout_s", "a positive number", r.startup_timeout_s)
    _check(r.gpus_per_worker >= 0, "reward.gpus_per_worker", "a number >= 0", r.gpus_per_worker)
    _check(r.format_weight >= 0, "reward.format_weight", "a number >= 0", r.format_weight)
    _check(math.isfinite(r.visual_focus_weight) and r.visual_focus_weight >= 0, "reward.visual_focus_weight",
           "a finite number >= 0", r.visual_focus_weight)
    _check(r.refusal_classifier == "rules", "reward.refusal_classifier", "rules", r.refusal_classifier)
    _check(r.normalize in ("none", "decoupled"), "reward.normalize", "none or decoupled", r.normalize)
    configured = {"reward_model": r.reward_model, "judge": r.judge, "http_judge": r.http_judge}
    for task, weights in r.weights.items():
        _check(task in TASKS, f"reward.weights.{task}", f"a task, one of {list(TASKS)}", task)
        for name, w in weights.items():
            key = f"reward.weights.{task}.{name}"
            _check(name in OBJECTIVES, key, f"an objective, one of {list(OBJECTIVES)}", name)
            _check(math.isfinite(w) and w >= 0, key, "a finite weight >= 0", w)
            _check(w == 0 or name not in MODEL_OBJECTIVES or configured[name] is not None, key,
                   f"0 while reward.{name} is null (configure the objective to weight it)", w)
    if r.gate is not None:
        g = r.gate
        _check(g.objective in OBJECTIVES and g.objective != "helpful", "reward.gate.objective",
               "an objective other than helpful (helpful is not computed on must-refuse rows)", g.objective)
        _check(g.objective not in MODEL_OBJECTIVES or configured[g.objective] is not None, "reward.gate.objective",
               "a rule objective or a configured model objective", g.objective)
        _check(math.isfinite(g.cap), "reward.gate.cap", "a finite number", g.cap)
        _check(0 <= g.threshold <= 1, "reward.gate.threshold", "a number in [0, 1]", g.threshold)
    if r.reward_model is not None:
        m = r.reward_model
        _check(m.max_length >= 16, "reward.reward_model.max_length", "an integer >= 16", m.max_length)
        _check(m.batch_size >= 1, "reward.reward_model.batch_size", "an integer >= 1", m.batch_size)
        _check(m.dtype in ("auto", "float32", "bfloat16"), "reward.reward_model.dtype", "auto, float32 or bfloat16",
               m.dtype)
        _check(m.response_part in ("full", "answer"), "reward.reward_model.response_part", "full or answer",
               m.response_part)
    for name in ("judge", "http_judge"):
        j = configured[name]
        if j is None:
            continue
        _check(j.min_score < j.max_score, f"reward.{name}.max_score", f"more than min_score ({j.min_score})",
               j.max_score)
        _check(j.max_tokens >= 1, f"reward.{name}.max_tokens", "an integer >= 1", j.max_tokens)
        _check(j.response_part in ("full", "answer"), f"reward.{name}.response_part", "full or answer",
               j.response_part)
        _check(j.rubric == "default" or Path(j.rubric).is_file(), f"reward.{name}.rubric",
               "default or an existing text file", j.rubric)
    if r.judge is not None:
        _check(r.judge.max_model_len > r.judge.max_tokens + 64, "reward.judge.max_model_len",
               "more than reward.judge.max_tokens + 64", r.judge.max_model_len)
        _check(0 < r.judge.gpu_memory_utilization <= 1, "reward.judge.gpu_memory_utilization",
               "a number in (0, 1]", r.judge.gpu_memory_utilization)
    if r.http_judge is not None:
        h = r.http_judge
        _check(h.url.startswith(("http://", "https://")), "reward.http_judge.url", "an http:// or https:// URL",
               h.url)
        _check(h.token_env is None or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", h.token_env) is not None,
               "reward.http_judge.token_env", "null or the NAME of an environment variable (never the token)",
               "<not shown>")
        _check(h.timeout_s > 0, "reward.http_judge.timeout_s", "a positive number", h.timeout_s)
        _check(h.max_retries >= 0, "reward.http_judge.max_retries", "an integer >= 0", h.max_retries)
        _check(h.backoff_s >= 0, "reward.http_judge.backoff_s", "a number >= 0", h.backoff_s)
        _check(h.max_concurrency >= 1, "reward.http_judge.max_concurrency", "an integer >= 1", h.max_concurrency)
        worst = (h.max_retries + 1) * h.timeout_s + sum(h.backoff_s * 2**k for k in range(h.max_retries))
        _check(worst < r.timeout_s, "reward.timeout_s", f"more than one http_judge call's worst case "
               f"({worst:.1f} s: (max_retries + 1) x timeout_s + backoffs)", r.timeout_s)
