"""RL algorithms as pure tensor functions: group advantages and the CPGD / GRPO / PPO policy losses."""

from cosmo.algorithms.advantages import WEIGHTS, group_advantages
from cosmo.algorithms.losses import AGGREGATIONS, LOSSES, importance_weights, kl_k3, policy_loss

__all__ = ["AGGREGATIONS", "LOSSES", "WEIGHTS", "group_advantages", "importance_weights", "kl_k3", "policy_loss"]
