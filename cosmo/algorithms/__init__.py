"""RL algorithms as pure tensor functions: group advantages and the CPGD / GRPO / PPO policy losses."""

from cosmo.algorithms.advantages import WEIGHTS, group_advantages
from cosmo.algorithms.losses import AGGREGATIONS, LOSSES, kl_k3, policy_loss

__all__ = ["AGGREGATIONS", "LOSSES", "WEIGHTS", "group_advantages", "kl_k3", "policy_loss"]
