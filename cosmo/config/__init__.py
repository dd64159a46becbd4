"""One config tree for every command: structured dataclasses (`sections`), YAML recipes and
`key=value` overrides (`loading`), range checks at start (`checks`), the config of each named stage
(`stages`), the generated reference (`reference`: `python -m cosmo.config > docs/config.md`)."""

from cosmo.config.checks import validate
from cosmo.config.loading import load_config, to_yaml
from cosmo.config.reference import reference_markdown
from cosmo.config.sections import (
    STAGES,
    WEIGHT_TRANSPORTS,
    AlgorithmConfig,
    CheckFailed,
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
from cosmo.config.stages import stage_config

__all__ = [
    "AlgorithmConfig",
    "CheckFailed",
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
    "stage_config",
    "to_yaml",
    "validate",
]
