"""The SFT stage: supervised fine-tuning on the rows' reference responses, one global batch a step."""

from __future__ import annotations

from cosmo.config import CosmoConfig
from cosmo.driver.resume import ResumePoint
from cosmo.driver.stage import open_stage, sampler_seed
from cosmo.driver.tracking import Progress, RunTracker


def run_sft(cfg: CosmoConfig, tracker: RunTracker, model_path: str, train_file: str,
            resume: ResumePoint | None = None, eval_file: str | None = None, name: str = "sft") -> str:
    """Fine-tune `model_path` (the stage's start model); returns the final checkpoint. `name`: the stage's
    name in checkpoints, metrics, ledger and progress lines (`sft`, or a key of train.stage_configs).

    With `resume` the learner starts from that checkpoint (weights, optimizer, schedule, RNG) and the
    data order continues where it stopped. `eval_file` is unused (SFT is evaluated after the stage);
    it keeps the stages' signatures alike."""
    s = cfg.sft
    with open_stage(cfg, tracker, name, s, model_path=model_path, train_file=train_file,
                    items_per_step=s.global_batch_size, sampler_seed=sampler_seed(cfg.seed, name, "sft"),
                    resume=resume) as stage:
        progress = Progress(name, s.steps, cfg.logging.log_every, first=stage.first)
        for step in stage.steps():
            indices = stage.sampler.next_batch(s.global_batch_size)
            stats = stage.learner.sft_step(indices)
            tracker.log_ledger(name, step, [stage.rows[i].id for i in indices], skipped=bool(stats["skipped"]))
            stats["epoch"] = stage.sampler.epoch
            tracker.log(name, step, stats)
            progress.update(step, {"loss": stats["loss"], "lr": stats["lr"],
                                   "samples/s": round(s.global_batch_size / stats["step_s"], 1)})
            stage.checkpoint(step)
        return stage.path
