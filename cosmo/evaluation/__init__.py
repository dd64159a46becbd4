"""Evaluation, its own room above the core: held-out evaluation through vLLM or transformers
(`heldout`), the printed tables (`table`), benchmark suites (`suite`), the refusal judge
(`refusal_judge`) and the `cosmo eval` command (`command`). It may use the rooms (rollout engines,
reward judges); the core below it (config, rules, data, models, algorithms) imports none of them."""
