"""The task-mixture sampler: per-batch quotas, per-task epochs, resume, and its config."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from cosmo.config import ConfigError, load_config
from cosmo.data import Sample
from cosmo.data.sampling import EpochSampler, MixtureSampler, make_sampler

DEFAULT = "configs/tiny-cpu.yaml"


def _tasks(counts: dict[str, int]) -> list[str]:
    """Rows of each task, interleaved so that a task's rows are not contiguous in the file."""
    out: list[str] = []
    left = dict(counts)
    while any(left.values()):
        for t in counts:
            if left[t]:
                out.append(t)
                left[t] -= 1
    return out


def _batch_counts(tasks: list[str], batch: list[int]) -> dict[str, int]:
    return dict(Counter(tasks[i] for i in batch))


def test_quotas_are_exact_every_batch():
    tasks = _tasks({"reasoning": 30, "safety": 11, "over_refusal": 7, "knowledge": 9})
    s = MixtureSampler(tasks, {"reasoning": 2, "safety": 1, "over_refusal": 1}, seed=0)
    for _ in range(20):
        batch = s.next_batch(8)
        assert len(batch) == 8
        assert _batch_counts(tasks, batch) == {"reasoning": 4, "safety": 2, "over_refusal": 2}


def test_largest_remainder_rounding():
    names = ["reasoning", "instruction", "knowledge", "safety", "jailbreak", "over_refusal"]
    tasks = _tasks(dict.fromkeys(names, 20))
    weights = {"reasoning": 2, "instruction": 1, "knowledge": 1, "safety": 1, "jailbreak": 1, "over_refusal": 1}
    s = MixtureSampler(tasks, weights, seed=1)
    # 8 x 2/7 = 2.29, 8 x 1/7 = 1.14: floors 2 + 5 x 1 = 7, the spare row goes to the largest remainder
    assert _batch_counts(tasks, s.next_batch(8)) == {"reasoning": 3, **dict.fromkeys(names[1:], 1)}
    # 10 x 0.7 = 7 and 10 x 0.3 = 3 exactly (no float rounding accident); 3 x 0.7 = 2.1, 3 x 0.3 = 0.9 -> 2 and 1
    t2 = _tasks({"reasoning": 50, "safety": 50})
    s2 = MixtureSampler(t2, {"reasoning": 0.7, "safety": 0.3}, seed=0)
    assert _batch_counts(t2, s2.next_batch(10)) == {"reasoning": 7, "safety": 3}
    assert _batch_counts(t2, s2.next_batch(3)) == {"reasoning": 2, "safety": 1}


def test_equal_remainders_take_turns():
    tasks = _tasks({"safety": 10, "reasoning": 10, "over_refusal": 10})
    s = MixtureSampler(tasks, {"safety": 1, "reasoning": 1, "over_refusal": 1}, seed=0)
    # 4 / 3 each: one spare row per batch, given in sorted task order, one task after the other
    extra = []
    for _ in range(6):
        counts = _batch_counts(tasks, s.next_batch(4))
        assert sorted(counts.values()) == [1, 1, 2]
        extra.append(max(counts, key=counts.get))
    assert extra == ["over_refusal", "reasoning", "safety"] * 2


def test_no_repeats_within_a_task_epoch_and_epoch_counting():
    tasks = _tasks({"reasoning": 6, "safety": 5, "knowledge": 4})
    s = MixtureSampler(tasks, {"reasoning": 1, "safety": 1}, seed=3)
    batches = [s.next_batch(4) for _ in range(5)]  # 2 rows of each task per batch
    drawn = {t: [i for b in batches for i in b if tasks[i] == t] for t in ("reasoning", "safety")}
    # reasoning: 6 rows, 2 a batch -> batches 1-3 and 4-6 are each one whole epoch
    assert sorted(drawn["reasoning"][:6]) == [i for i, t in enumerate(tasks) if t == "reasoning"]
    # safety: 5 rows -> the first 4 draws are distinct, and 10 draws are exactly two epochs
    assert len(set(drawn["safety"][:4])) == 4
    assert len(drawn["safety"]) == 10 and set(Counter(drawn["safety"]).values()) == {2}
    assert all(tasks[i] != "knowledge" for b in batches for i in b)  # no weight: never drawn
    # reasoning has drawn 10 of 6 rows (epoch 1), safety exactly 10 of 5 (its next epoch starts lazily)
    assert s.epochs == {"reasoning": 1, "safety": 1} and s.epoch == 1
    s.next_batch(4)
    assert s.epochs == {"reasoning": 1, "safety": 2}  # reasoning: 12 of 6 rows, its epoch 2 not begun


def test_epoch_is_the_slowest_task():
    tasks = _tasks({"safety": 2, "reasoning": 10})
    s = MixtureSampler(tasks, {"safety": 1, "reasoning": 1}, seed=0)
    for _ in range(3):
        s.next_batch(4)
    assert s.epochs == {"reasoning": 0, "safety": 2} and s.epoch == 0


def test_state_round_trip_mid_epoch_continues_identically():
    tasks = _tasks({"reasoning": 13, "safety": 7, "over_refusal": 5, "knowledge": 3})
    weights = {"reasoning": 3, "safety": 2, "over_refusal": 1, "knowledge": 0.5}
    s = MixtureSampler(tasks, weights, seed=11)
    for size in (6, 6, 5, 1):
        s.next_batch(size)
    state = json.loads(json.dumps(s.state_dict()))  # as the checkpoint stores it
    restored = MixtureSampler(tasks, weights, seed=11)
    restored.load_state_dict(state)
    assert [restored.next_batch(6) for _ in range(9)] == [s.next_batch(6) for _ in range(9)]
    assert restored.epochs == s.epochs and restored.epoch == s.epoch


def test_mismatched_state_is_refused():
    tasks = _tasks({"reasoning": 4, "safety": 4})
    s = MixtureSampler(tasks, {"reasoning": 1, "safety": 1}, seed=0)
    with pytest.raises(ValueError, match="task_weights"):
        MixtureSampler(tasks, {"reasoning": 2, "safety": 1}, seed=0).load_state_dict(s.state_dict())
    with pytest.raises(ValueError, match="seed"):
        MixtureSampler(tasks, {"reasoning": 1, "safety": 1}, seed=1).load_state_dict(s.state_dict())
    with pytest.raises(ValueError, match="plain epoch order"):
        s.load_state_dict(EpochSampler(len(tasks), 0).state_dict())


def test_same_seed_same_order_other_seed_differs():
    tasks = _tasks({"reasoning": 20, "safety": 20})
    w = {"reasoning": 1, "safety": 1}
    a, b, c = MixtureSampler(tasks, w, 5), MixtureSampler(tasks, w, 5), MixtureSampler(tasks, w, 6)
    assert [a.next_batch(8) for _ in range(4)] == [b.next_batch(8) for _ in range(4)]
    assert [c.next_batch(8) for _ in range(4)] != [MixtureSampler(tasks, w, 5).next_batch(8) for _ in range(4)]


def test_bad_sampler_inputs():
    with pytest.raises(ValueError, match="no rows"):
        MixtureSampler(["reasoning", "safety"], {"reasoning": 1, "jailbreak": 1}, 0)
    with pytest.raises(ValueError, match="weight > 0"):
        MixtureSampler(["reasoning"], {"reasoning": 0}, 0)


def _rows(tasks: list[str]) -> list[Sample]:
    return [Sample(id=f"r{i}", task=t, prompt="p", answer="a") for i, t in enumerate(tasks)]


def test_make_sampler_keeps_plain_epochs_without_weights():
    rows = _rows(_tasks({"reasoning": 9, "safety": 4}))
    cfg = load_config(DEFAULT)
    sampler = make_sampler(cfg, rows, 3)
    assert type(sampler) is EpochSampler
    plain = EpochSampler(len(rows), 3)
    assert [sampler.next_batch(5) for _ in range(4)] == [plain.next_batch(5) for _ in range(4)]
    assert sampler.state_dict() == plain.state_dict()


def test_make_sampler_builds_the_configured_mixture():
    tasks = _tasks({"reasoning": 9, "safety": 4, "knowledge": 3})
    cfg = load_config(DEFAULT, ["data.task_weights.reasoning=3", "data.task_weights.safety=1"])
    sampler = make_sampler(cfg, _rows(tasks), 3)
    assert isinstance(sampler, MixtureSampler) and sampler.seed == 3
    assert _batch_counts(tasks, sampler.next_batch(8)) == {"reasoning": 6, "safety": 2}


def test_task_weights_from_yaml(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  path: m\ndata:\n  dir: d\n  task_weights: {safety: 1, jailbreak: 1, reasoning: 2}\n")
    assert load_config(recipe).data.task_weights == {"safety": 1.0, "jailbreak": 1.0, "reasoning": 2.0}
    assert load_config(DEFAULT).data.task_weights == {}


@pytest.mark.parametrize(
    "override, key",
    [
        ("data.task_weights.cooking=1", "data.task_weights.cooking"),
        ("data.task_weights.safety=-1", "data.task_weights.safety"),
        ("data.task_weights.safety=nan", "data.task_weights.safety"),
        ("data.task_weights.safety=0", "data.task_weights"),
        ("data.task_weights.safety=lots", "data.task_weights.safety"),
        ("data.augment_p_typed=1.5", "data.augment_p_typed"),
        ("data.augment_fraction=-0.1", "data.augment_fraction"),
        ("data.augment_image_size=16", "data.augment_image_size"),
        ("data.augment_max_rotation=90", "data.augment_max_rotation"),
    ],
)
def test_bad_data_config_names_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        load_config(DEFAULT, [override])
    assert f"'{key}'" in str(err.value)
