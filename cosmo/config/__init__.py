"""One config tree for every command: structured dataclasses (`sections`), YAML recipes and
`key=value` overrides (`loading`), range checks at start (`checks`), the generated reference
(`reference`: `python -m cosmo.config > docs/config.md`)."""

from cosmo.config.checks import validate
from cosmo.config.loading import load_config, to_yaml
from cosmo.config.reference import reference_markdown
from cosmo.config.sections import (
    STAGES,
    WEIGHT_TRANSPORTS,
    AlgorithmConfig,
    CheckpointConfig,
    ClusterConfig,
    ConfigError,
    CosmoConfig,
    DataConfig,
    EvalConfig,
    GateConfig,
    HttpJudgeConfig,
    JudgeConfig,
    LearnerConfig,
    LoggingConfig,
    ModelConfig,
    RewardConfig,
    RewardModelConfig,
    RLConfig,
    RolloutConfig,
    SFTConfig,
    TrainConfig,
    opt,
)

__all__ = [
    "AlgorithmConfig",
    "CheckpointConfig",
    "ClusterConfig",
    "ConfigError",
    "CosmoConfig",
    "DataConfig",
    "EvalConfig",
    "GateConfig",
    "HttpJudgeConfig",
    "JudgeConfig",
    "LearnerConfig",
    "LoggingConfig",
    "ModelConfig",
    "RLConfig",
    "RewardConfig",
    "RewardModelConfig",
    "RolloutConfig",
    "SFTConfig",
    "STAGES",
    "TrainConfig",
    "WEIGHT_TRANSPORTS",
    "load_config",
    "opt",
    "reference_markdown",
    "to_yaml",
    "validate",
]
