"""Config validation: a bad recipe or override fails at start and names the key's full path."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cosmo.config import ConfigError, CosmoConfig, load_config, to_yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "configs" / "tiny-cpu.yaml"


def test_default_recipe_loads_with_documented_values():
    cfg = load_config(DEFAULT)
    assert isinstance(cfg, CosmoConfig)
    assert cfg.learner.num_ranks == 2 and cfg.learner.zero_stage == 2
    assert cfg.model.build_preset == "small"
    assert cfg.algorithm.name == "cpgd"
    # CPGD paper defaults: epsilon 0.2, drift coefficient 0.01, drift clip 2.0, no reference KL
    assert (cfg.algorithm.clip_eps, cfg.algorithm.drift_coef, cfg.algorithm.drift_clip) == (0.2, 0.01, 2.0)
    assert cfg.algorithm.kl_coef == 0.0


def test_every_recipe_in_configs_validates():
    recipes = sorted((ROOT / "configs").glob("*.yaml"))
    assert len(recipes) >= 3
    for recipe in recipes:
        load_config(recipe)


def test_overrides_apply_with_types():
    cfg = load_config(DEFAULT, ["sft.steps=7", "sft.lr=0.5", "logging.run_name=x", "cluster.address=auto"])
    assert cfg.sft.steps == 7 and cfg.sft.lr == 0.5
    assert cfg.logging.run_name == "x" and cfg.cluster.address == "auto"


def test_unknown_key_in_yaml_names_file_and_full_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  path: m\n  flavour: strawberry\ndata:\n  dir: d\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert "model.flavour" in str(err.value) and "bad.yaml" in str(err.value)


def test_unknown_key_on_command_line_names_full_key():
    with pytest.raises(ConfigError) as err:
        load_config(DEFAULT, ["learner.zero_stagee=3"])
    assert "learner.zero_stagee" in str(err.value) and "command line" in str(err.value)


def test_wrong_type_names_full_key():
    with pytest.raises(ConfigError) as err:
        load_config(DEFAULT, ["sft.steps=many"])
    assert "sft.steps" in str(err.value)


def test_wrong_type_in_yaml_names_full_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  path: m\ndata:\n  dir: d\nlearner:\n  num_ranks: two\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert "learner.num_ranks" in str(err.value)


@pytest.mark.parametrize(
    "override, key",
    [
        ("learner.zero_stage=5", "learner.zero_stage"),
        ("algorithm.name=reinforce", "algorithm.name"),
        ("sft.global_batch_size=30", "sft.global_batch_size"),  # not a multiple of 16 x 2 ranks
        ("sft.lr=-1", "sft.lr"),
        ("model.build_preset=huge", "model.build_preset"),
        ("train.stages=[sft,dance]", "train.stages[1]"),
        ("logging.wandb_mode=sometimes", "logging.wandb_mode"),
        ("logging.run_name=a/b", "logging.run_name"),
        ("algorithm.clip_eps=1.5", "algorithm.clip_eps"),
        ("algorithm.kl_coef=-0.1", "algorithm.kl_coef"),
        ("algorithm.kl_rows=harmful", "algorithm.kl_rows"),
        ("algorithm.kl_rows=must_refuse", "algorithm.kl_rows"),  # no reference KL (kl_coef 0) to choose rows of
        ("algorithm.advantage_weight=median", "algorithm.advantage_weight"),
        ("rl.micro_batch_size=5", "rl.micro_batch_size"),  # 8 prompts x 8 samples not a multiple of 5 x 2
        ("rollout.temperature=0", "rollout.temperature"),
        ("rollout.max_model_len=40", "rollout.max_model_len"),
        ("learner.cpus_per_rank=0", "learner.cpus_per_rank"),
        ("data.profile=web", "data.profile"),
        ("data.distill=true", "data.distill"),  # only the world profile marks rows for it
        ("model.convert=llama", "model.convert"),
        ("model.convert=smollm2", "model.convert"),  # the default recipe builds its model (build_preset)
        ("eval.stages=[rl_general]", "eval.stages[0]"),  # not a stage of the run
    ],
)
def test_out_of_range_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        load_config(DEFAULT, [override])
    assert f"'{key}'" in str(err.value)


@pytest.mark.parametrize(
    "override, key",
    [
        ("data.rl_per_task=0", "data.rl_per_task"),  # the world profile always writes an RL pool
        ("data.sft_frames=0.5", "data.sft_frames"),  # a key of the builtin generator only
        ("data.eval_disjoint=true", "data.eval_disjoint"),
    ],
)
def test_the_world_profile_refuses_keys_it_does_not_have(override, key):
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "configs" / "smollm2.yaml", [override])
    assert f"'{key}'" in str(err.value)


def test_required_keys_without_recipe():
    with pytest.raises(ConfigError) as err:
        load_config(None)
    assert "model.path" in str(err.value) and "data.dir" in str(err.value)


def test_malformed_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        load_config(DEFAULT, ["sft.steps"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_resolved_yaml_round_trips(tmp_path):
    cfg = load_config(DEFAULT, ["sft.steps=11", "seed=3"])
    saved = tmp_path / "config.yaml"
    saved.write_text(to_yaml(cfg))
    again = load_config(saved)
    assert OmegaConf.structured(again) == OmegaConf.structured(cfg)
    assert again.sft.steps == 11 and again.seed == 3


def test_config_reference_doc_matches_the_dataclasses():
    from cosmo.config import reference_markdown

    assert (ROOT / "docs" / "config.md").read_text() == reference_markdown(), (
        "docs/config.md is stale: regenerate it with `python -m cosmo.config > docs/config.md`")


def test_recipe_base_is_merged_first_and_the_variant_wins(tmp_path):
    (tmp_path / "parent.yaml").write_text("model: {path: m}\ndata: {dir: d}\nrl: {steps: 7, lr: 0.5}\nseed: 3\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "child.yaml").write_text("base: ../parent.yaml\nrl: {steps: 9}\n")
    cfg = load_config(tmp_path / "sub" / "child.yaml", ["seed=4"])
    assert (cfg.rl.steps, cfg.rl.lr, cfg.model.path, cfg.seed) == (9, 0.5, "m", 4)  # child, base, base, command line
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="`base` chain loops"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "orphan.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"missing.yaml does not exist \(the base of .*orphan.yaml\)"):
        load_config(tmp_path / "orphan.yaml")


def test_ablation_recipes_differ_from_the_default_only_where_they_say():
    default = load_config(ROOT / "configs" / "tiny-cpu.yaml")
    grpo = load_config(ROOT / "configs" / "ablation-grpo.yaml")
    assert grpo.algorithm.name == "grpo" and default.algorithm.name == "cpgd"
    assert (grpo.rl, grpo.sft, grpo.data, grpo.reward) == (default.rl, default.sft, default.data, default.reward)


def test_async_mode_needs_temperature_one():
    """Async importance weights divide by vLLM's log-probs, which are of the untempered distribution."""
    with pytest.raises(ConfigError, match=r"rollout.temperature.*1.0 with rl.mode=async"):
        load_config(DEFAULT, ["model.path=m", "rl.mode=async", "rollout.temperature=0.7"])
    assert load_config(DEFAULT, ["model.path=m", "rollout.temperature=0.7"]).rollout.temperature == 0.7


def test_async_mode_rejects_nucleus_sampling():
    # vLLM's behaviour log-probs are of the full distribution, not the nucleus: the IS weights would be off
    assert load_config(DEFAULT, ["rl.mode=async", "rollout.top_p=1.0"]).rollout.top_p == 1.0
    assert load_config(DEFAULT, ["rl.mode=sync", "rollout.top_p=0.9"]).rollout.top_p == 0.9
    with pytest.raises(ConfigError, match=r"^key 'rollout.top_p': expected 1.0 with rl.mode=async") as err:
        load_config(DEFAULT, ["rl.mode=async", "rollout.top_p=0.9"])
    assert "\n" not in str(err.value)


def test_truncation_settings_are_checked():
    with pytest.raises(ConfigError, match="rl.truncated"):
        load_config(DEFAULT, ["rl.truncated=cut"])
    with pytest.raises(ConfigError, match="rl.truncation_warn"):
        load_config(DEFAULT, ["rl.truncation_warn=2"])
