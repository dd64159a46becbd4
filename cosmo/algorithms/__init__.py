"""RL algorithms as pure tensor functions: group advantages and the CPGD / GRPO / PPO policy losses."""

from cosmo.lazy import lazy_exports

_EXPORTS = {"AGGREGATIONS": "names", "CLIP_SCHEDULES": "names", "WEIGHTS": "names", "LOSSES": "losses",
            "RefusalLedger": "advantages",
            "group_advantages": "advantages", "importance_weights": "losses", "kl_k3": "losses",
            "policy_loss": "losses"}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
