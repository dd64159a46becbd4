"""The RL step's batch making without Ray: rewards, dynamic sampling and advantages against a scripted
rollout and reward pool (cosmo.driver.rl_batch)."""

from __future__ import annotations

from cosmo.config import load_config
from cosmo.data.sampling import EpochSampler
from cosmo.driver.rl_batch import Rollouts, advantages, refill_flat_groups, score
from cosmo.trajectory import Scored, Trajectory

GROUP = 2


class ScriptedRollout:
    """Row i's group gets rewards REWARDS[i]; records which rows were sampled."""

    def __init__(self) -> None:
        self.sampled: list[int] = []

    def generate(self, indices: list[int], n: int) -> list[Trajectory]:
        self.sampled += indices
        return [Trajectory(i, f"row{i}", [1], [7] * (k + 1), [-0.5] * (k + 1), f"{i}:{k}", "stop", 0)
                for i in indices for k in range(n)]


class ScriptedRewards:
    def __init__(self, rewards: dict[int, tuple[float, float]]) -> None:
        self.rewards = rewards

    def score(self, trajectories: list[Trajectory]) -> list[Scored]:
        out = []
        for t in trajectories:
            k = int(t.text.split(":")[1])
            value = self.rewards[t.sample_index][k]
            out.append(Scored(t, "reasoning", {"accuracy": value}, value))
        return out


def _maker(dynamic: bool, rewards: dict[int, tuple[float, float]], rounds: int = 3):
    cfg = load_config(None, ["model.path=m", "data.dir=d", "rl.prompts_per_step=2", f"algorithm.group_size={GROUP}",
                             "rl.micro_batch_size=2", f"rl.dynamic_sampling={str(dynamic).lower()}",
                             f"rl.dynamic_sampling_max_rounds={rounds}"])
    return cfg, EpochSampler(len(rewards), seed=3), ScriptedRollout(), ScriptedRewards(rewards)


def _make_batch(cfg, sampler, rollout, rewards):
    """What the loop does for one step: sample, rollout, reward, (dynamic sampling), advantage."""
    rollouts = Rollouts(rollout.generate(sampler.next_batch(cfg.rl.prompts_per_step), GROUP), 1.0)
    scored = score(rewards, rollouts)
    if cfg.rl.dynamic_sampling:
        scored = refill_flat_groups(cfg, scored, sampler, rollout, rewards)
    return advantages(cfg, scored, ())  # no refusal_balance: the rows' modality is not read


# rows 0-5: even rows carry signal (rewards differ), odd rows are flat
REWARDS = {i: ((0.0, 1.0) if i % 2 == 0 else (1.0, 1.0)) for i in range(6)}


def test_without_dynamic_sampling_flat_groups_stay_with_zero_advantage():
    cfg, sampler, rollout, rewards = _maker(False, REWARDS)
    batch = _make_batch(cfg, sampler, rollout, rewards)
    order = EpochSampler(6, seed=3).next_batch(2)
    assert rollout.sampled == order
    assert [it.sample_index for it in batch.items] == [i for i in order for _ in range(GROUP)]
    flat = [i % 2 == 1 for i in order]
    assert batch.stats["reward/flat_group_frac"] == sum(flat) / 2
    for it in batch.items:
        assert (it.advantage == 0.0) == (it.sample_index % 2 == 1)


def test_dynamic_sampling_replaces_flat_groups_by_fresh_prompts():
    cfg, sampler, rollout, rewards = _maker(True, REWARDS)
    batch = _make_batch(cfg, sampler, rollout, rewards)
    order = EpochSampler(6, seed=3).next_batch(6)  # the epoch's order, consumed as refills ask
    with_signal = [i for i in rollout.sampled if i % 2 == 0]
    assert rollout.sampled == order[: len(rollout.sampled)]
    trained = sorted({it.sample_index for it in batch.items})
    assert trained == sorted(with_signal[:2]) and len(batch.items) == 2 * GROUP
    assert all(abs(it.advantage) > 0 for it in batch.items)
    assert batch.stats["dynamic/shortfall_groups"] == 0
    assert batch.stats["dynamic/flat_groups_dropped"] == sum(i % 2 for i in rollout.sampled)
    # the reward curve describes every sampled group, the dropped ones included
    assert batch.stats["rollout/trajectories"] == len(rollout.sampled) * GROUP
    expected_mean = sum(sum(REWARDS[i]) for i in rollout.sampled) / (len(rollout.sampled) * GROUP)
    assert batch.stats["reward/mean"] == expected_mean


def test_dynamic_sampling_fills_the_shortfall_with_flat_groups_after_max_rounds():
    all_flat = {i: (1.0, 1.0) for i in range(10)}
    cfg, sampler, rollout, rewards = _maker(True, all_flat, rounds=2)
    batch = _make_batch(cfg, sampler, rollout, rewards)
    assert len(rollout.sampled) == 2 + 2 + 2  # first batch, then two refill rounds of 2 prompts
    assert batch.stats["dynamic/refill_rounds"] == 2 and batch.stats["dynamic/shortfall_groups"] == 2
    assert len(batch.items) == 2 * GROUP and all(it.advantage == 0.0 for it in batch.items)


def test_kl_rows_must_refuse_marks_the_sequences_of_rows_that_must_be_refused():
    from cosmo.data import Sample

    rows = [Sample(id=f"r{i}", task="safety" if i % 3 == 0 else "over_refusal", prompt="q", should_refuse=i % 3 == 0)
            for i in range(6)]
    cfg, sampler, rollout, rewards = _maker(False, REWARDS)
    scored = score(rewards, Rollouts(rollout.generate([0, 1], GROUP), 1.0))
    assert all(it.kl_weight == 1.0 for it in advantages(cfg, scored, rows).items)  # kl_rows=all: every row
    cfg.algorithm.kl_rows = "must_refuse"
    items = advantages(cfg, scored, rows).items
    assert [(it.sample_index, it.kl_weight) for it in items] == [(0, 1.0), (0, 1.0), (1, 0.0), (1, 0.0)]


def test_truncation_above_the_configured_share_warns_naming_the_keys(caplog):
    from cosmo.driver.rl import _warn_truncation

    cfg = load_config(None, ["model.path=m", "data.dir=d", "rl.truncation_warn=0.25", "data.max_length=96"])
    with caplog.at_level("WARNING", logger="cosmo"):
        assert not _warn_truncation(cfg, "rl", 3, 0.25)  # at the share: no warning
        assert caplog.records == []
        assert _warn_truncation(cfg, "rl", 4, 0.5)
    (record,) = caplog.records
    message = record.getMessage()
    assert "step 4: 50% of the responses were cut to fit data.max_length=96" in message
    assert "rollout.max_new_tokens" in message and "rl.truncated=keep" in message


def test_every_stage_of_a_step_is_timed_in_one_place(monkeypatch):
    import cosmo.driver.metrics as metrics
    from cosmo.driver.rl_batch import ScoredRollouts, TrainBatch
    from cosmo.weights import SyncReport

    clock = iter([10.0, 12.5, 13.0, 13.25, 20.0, 21.0, 30.0])  # each block reads the clock twice; then time/step
    monkeypatch.setattr(metrics.time, "perf_counter", lambda: next(clock))
    timer = metrics.StepTimer(began=9.0)
    with timer.block("rollout_wait"):
        pass
    with timer.block("reward"):
        pass
    with timer.block("rollout_wait"):  # async: the next step's rollouts, waited for before the sync
        pass
    stats = metrics.rl_step_metrics(1, ScoredRollouts([], [], rollout_s=4.0), TrainBatch([], {}, 0, []),
                                    {"loss": 0.0}, SyncReport(None), timer, epoch=0)
    assert stats["time/rollout_wait"] == 2.5 + 1.0 and stats["time/reward"] == 0.25
    assert stats["time/rollout"] == 4.0 and stats["time/step"] == 30.0 - 9.0
    assert "time/refill" not in stats and "time/train" not in stats  # blocks that did not run
