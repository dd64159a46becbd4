"""The choices the config validates against, kept free of torch so `cosmo config` answers fast."""

WEIGHTS = ("std", "equal", "clip_filter_like")
AGGREGATIONS = ("token_mean", "seq_mean")
CLIP_SCHEDULES = ("constant", "linear")
KL_ROWS = ("all", "must_refuse")
