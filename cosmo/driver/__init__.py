"""The driver: it coordinates a run and holds no model weights. One module per job:

    train.py            `cosmo train`: assets -> run directory -> Ray -> stages -> evaluations -> table
    assets.py           the data (built, augmented, every row validated) and the start model
    cluster.py          the Ray session: a fresh local cluster, or a named one joined in bounded time
    stage.py            what SFT and RL set up alike: rows and their order, learner, checkpoints, resume
    sft.py              the SFT loop
    rl.py               the RL loop: sample -> rollout -> reward -> advantage -> update -> sync -> record
    rl_batch.py         rewards, dynamic sampling and advantages of one RL step
    metrics.py          what one RL step records (metrics line, ledger, events, samples)
    checkpoints.py      when a checkpoint is due
    resume.py           where a relaunched run continues
    checkpoint_eval.py  evaluating the run's models in a Ray task; reports reused only for the same model
    tracking.py         the run directory: metrics.jsonl, ledger.jsonl, wandb, progress lines
"""
