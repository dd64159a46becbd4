"""The weight-sync contract: what every transport in `cosmo.weights.TRANSPORTS` must do.

Fast tests run a transport in one process (pack, a pickle round trip standing in for Ray's
delivery, load). The slow ones run the real `LearnerGroup` and `RolloutGroup` on Ray with cheap
stand-in ranks and engines (same methods, a dict of tensors instead of DeepSpeed and vLLM), so an
engine or a rank can die mid-sync in seconds; the real vLLM path's faults are in tests/test_rl.py.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import pytest
import torch

from cosmo.config import load_config
from cosmo.weights import (
    TRANSPORTS,
    SyncReport,
    checkpoint_name,
    digest,
    get_transport,
    pack_weights,
    receive,
    sync_weights,
)

ALL = sorted(TRANSPORTS)


def _weights(seed: int) -> dict[str, torch.Tensor]:
    """A policy's worth of tensor kinds: fp32 matrices, a bf16 vector, a 0-dim scalar, an int buffer."""
    g = torch.Generator().manual_seed(seed)
    return {
        "model.embed_tokens.weight": torch.randn(16, 8, generator=g),
        "visual.blocks.0.attn.qkv.weight": torch.randn(24, 8, generator=g),
        "model.norm.weight": torch.randn(8, generator=g).to(torch.bfloat16),
        "model.scale": torch.tensor(seed + 0.5),
        "model.positions": torch.arange(5, dtype=torch.int64) * seed,
        "lm_head.weight": torch.randn(16, 8, generator=g),
    }


def _deliver(transport: str, tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str, str]:
    """Pack, carry the payload through pickle protocol 5 (what Ray's object store does), load:
    (what the engine loaded, the learner's digest, the engine's digest)."""
    t = get_transport(transport)
    payload, learner_digest = pack_weights(t, tensors)
    delivered = pickle.loads(pickle.dumps(payload, protocol=5))
    loaded: dict[str, torch.Tensor] = {}
    engine_digest = receive(t, delivered, lambda pairs: loaded.update((n, x.clone()) for n, x in pairs))
    return loaded, learner_digest, engine_digest


@pytest.mark.parametrize("transport", ALL)
def test_every_tensor_arrives_bit_exact_and_both_sides_report_the_same_digest(transport):
    sent = _weights(1)
    loaded, learner_digest, engine_digest = _deliver(transport, sent)
    assert sorted(loaded) == sorted(sent)
    for name, x in sent.items():
        assert loaded[name].dtype == x.dtype and loaded[name].shape == x.shape, name
        assert torch.equal(loaded[name], x), name
    assert engine_digest == learner_digest


class _TiedLM(torch.nn.Module):
    """SmolLM2's shape in miniature: the output head is the input embedding (one tensor, two names)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(16, 8)
        self.norm = torch.nn.LayerNorm(8)
        self.lm_head = torch.nn.Linear(8, 16, bias=False)
        self.lm_head.weight = self.embed_tokens.weight


@pytest.mark.parametrize("transport", ALL)
def test_a_tied_output_head_is_exported_under_both_names_and_every_transport_packs_it(transport):
    from learner.weights import export_state_dict

    module = _TiedLM()
    exported = export_state_dict(module, zero_stage=2, rank=0)
    assert sorted(exported) == ["embed_tokens.weight", "lm_head.weight", "norm.bias", "norm.weight"]
    loaded, learner_digest, engine_digest = _deliver(transport, exported)  # safetensors refuses shared storage
    assert torch.equal(loaded["lm_head.weight"], module.embed_tokens.weight.detach())
    assert torch.equal(loaded["embed_tokens.weight"], module.embed_tokens.weight.detach())
    assert engine_digest == learner_digest
    assert export_state_dict(module, zero_stage=2, rank=1) is None  # only rank 0 packs


def test_the_digest_is_the_same_for_every_transport_and_tells_weights_apart():
    sent = _weights(1)
    digests = {t: _deliver(t, sent)[2] for t in ALL}
    assert len(set(digests.values())) == 1, digests  # a transport cannot change what the engines load
    assert digest(reversed(list(sent.items()))) == digest(sent.items())  # delivery order does not matter
    nudged = dict(sent)
    nudged["model.embed_tokens.weight"] = sent["model.embed_tokens.weight"].clone()
    nudged["model.embed_tokens.weight"][3, 4] += 1e-6  # one element of one tensor
    renamed = {("model.other" if n == "model.scale" else n): x for n, x in sent.items()}
    retyped = {**sent, "model.scale": sent["model.scale"].double()}
    assert len({digest(d.items()) for d in (sent, nudged, renamed, retyped)}) == 4


def test_checkpoint_names_are_the_ones_vllm_loads():
    assert checkpoint_name("model.language_model.layers.0.mlp.up_proj.weight") == "model.layers.0.mlp.up_proj.weight"
    assert checkpoint_name("model.visual.blocks.1.norm1.weight") == "visual.blocks.1.norm1.weight"
    assert checkpoint_name("lm_head.weight") == "lm_head.weight"


def test_sync_report_metrics_are_the_loops_digest_match_and_slowest_load():
    reports = [{"index": 0, "version": 3, "digest": "a", "load_s": 0.25},
               {"index": 1, "version": 3, "digest": "a", "load_s": 0.5}]
    assert SyncReport("a", reports).metrics() == {"sync/digest_match": 1.0, "sync/load_s": 0.5}
    assert SyncReport("b", reports).metrics()["sync/digest_match"] == 0.0
    # a skipped update syncs nothing: the loop logged all([]) = 1.0 and a load time of 0 for it
    assert SyncReport(None, []).metrics() == {"sync/digest_match": 1.0, "sync/load_s": 0.0}


class _Learner:
    def export_weights(self):
        return "ref", "d"


class _Engines:
    def __init__(self, lag: int = 0) -> None:
        self.lag = lag

    def update_weights(self, weights_ref, version):
        return [{"index": i, "version": version - (self.lag if i == 1 else 0), "digest": "d", "load_s": 0.1}
                for i in range(2)]


def test_sync_weights_checks_that_every_engine_reached_the_new_version():
    assert sync_weights(_Learner(), _Engines(), version=4).digest_match
    with pytest.raises(RuntimeError, match=r"rollout actors \[1\] did not reach policy version 4"):
        sync_weights(_Learner(), _Engines(lag=1), version=4)


def test_an_unknown_transport_is_a_config_error_naming_the_key():
    from cosmo.config import ConfigError

    with pytest.raises(ConfigError, match="rollout.weight_transport"):
        load_config(None, ["model.path=m", "data.dir=d", "rollout.weight_transport=carrier_pigeon"])


# --- on Ray: the real groups around stand-in ranks and engines -------------------------------------------


class FakeRank:
    """A learner rank holding a dict of tensors; each export is a new version of them. Rank 1 exits
    mid-export when `die_file` exists."""

    def __init__(self, rank: int, world_size: int, cfg) -> None:
        self.rank, self.cfg, self.exports = rank, cfg, 0
        self.die_file = Path(cfg.logging.runs_dir) / "rank-dies"

    def process(self) -> dict:
        import ray

        return {"rank": self.rank, "pid": os.getpid(), "host": ray.util.get_node_ip_address()}

    def export_weights(self):
        self.exports += 1
        if self.rank == 1 and self.die_file.exists():
            os._exit(1)
        if self.rank != 0:
            return None, None
        return pack_weights(get_transport(self.cfg.rollout.weight_transport), _weights(self.exports))


class FakeEngine:
    """A rollout engine whose 'model' is the tensors it loaded, through the same `receive` as vLLM's
    worker. Engine 0 exits mid-load once when `die_file` exists (it removes the file first)."""

    def __init__(self, model_path: str, train_file: str, cfg, index: int, version: int = 0) -> None:
        self.cfg, self.index, self.version, self.weights = cfg, index, version, {}
        self.die_file = Path(cfg.logging.runs_dir) / "engine-dies"

    def info(self) -> dict:
        import ray

        return {"index": self.index, "version": self.version, "pid": os.getpid(),
                "host": ray.util.get_node_ip_address()}

    def update_weights(self, payload, version: int) -> dict:
        def load(pairs):
            for k, (name, x) in enumerate(pairs):
                if k == 2 and self.index == 0 and self.die_file.exists():  # mid-transfer
                    self.die_file.unlink()
                    os._exit(1)
                self.weights[name] = x.clone()

        got = receive(get_transport(self.cfg.rollout.weight_transport), payload, load)
        self.version = version
        return {"index": self.index, "version": version, "digest": got, "load_s": 0.0}

    def held(self) -> tuple[int, str]:
        """The version and the digest of the tensors this engine holds now."""
        return self.version, digest(self.weights.items())

    def generate(self, indices: list[int], n: int, version: int) -> list:
        if version != self.version:
            raise RuntimeError(f"engine {self.index} holds version {self.version}, asked for {version}")
        return [(i, version) for i in indices for _ in range(n)]


@pytest.fixture
def fake_groups(ray_cluster, tmp_path, request):
    from ray import cloudpickle

    from actors.group import RolloutGroup
    from learner.group import LearnerGroup

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this test module
    cfg = load_config(None, ["model.path=m", f"data.dir={tmp_path}", f"logging.runs_dir={tmp_path}",
                             f"rollout.weight_transport={request.param}", "learner.cpus_per_rank=0.25",
                             "rollout.cpus_per_actor=0.25", "rollout.timeout_s=30", "learner.timeout_s=30"])
    learner = LearnerGroup(cfg, rank_cls=FakeRank)
    try:
        rollout = RolloutGroup(cfg, "m", "t", worker_cls=FakeEngine)
    except BaseException:
        learner.shutdown()
        raise
    yield learner, rollout, tmp_path
    rollout.shutdown()
    learner.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("fake_groups", ALL, indirect=True)
def test_contract_every_engine_loads_the_digest_an_engine_death_is_survived_a_rank_death_named(fake_groups):
    import ray

    from learner.group import LearnerError

    learner, rollout, tmp_path = fake_groups
    first = sync_weights(learner, rollout, version=1)
    assert first.digest_match and [r["version"] for r in first.loaded] == [1, 1]
    held = ray.get([a.held.remote() for a in rollout.actors])
    # what every engine holds equals the learner's first export, digested here independently
    assert held == [(1, digest(_weights(1).items()))] * 2

    (tmp_path / "engine-dies").touch()  # engine 0 exits after loading two tensors of version 2
    second = sync_weights(learner, rollout, version=2)
    assert second.digest_match and second.learner_digest == digest(_weights(2).items())
    assert ray.get([a.held.remote() for a in rollout.actors]) == [(2, second.learner_digest)] * 2
    assert [e["event"] for e in rollout.events] == ["rollout actor 0 restarted"]
    assert rollout.events[0]["while"] == "loading policy version 2" and "died" in rollout.events[0]["why"]
    # the run continues: both engines sample at the new version
    assert rollout.generate([0, 1, 2, 3], n=2) == [(i, 2) for i in range(4) for _ in range(2)]

    # a learner rank that dies mid-export ends the sync with one line naming it; no engine moves
    (tmp_path / "rank-dies").touch()
    with pytest.raises(LearnerError) as caught:
        sync_weights(learner, rollout, version=3)
    message = str(caught.value)
    assert message.startswith("learner rank 1 died during a weight export: ") and "\n" not in message, message
    assert rollout.version == 2


class RankThatDiesAtStart(FakeRank):
    """A rank whose process exits before it reports itself (a crash while loading, a full disk)."""

    def process(self) -> dict:
        os._exit(1)


@pytest.mark.slow
def test_a_learner_that_dies_at_start_releases_its_placement_group_for_the_relaunch(ray_cluster, tmp_path):
    from ray import cloudpickle
    from ray.util.placement_group import get_placement_group

    from learner.group import LearnerError, LearnerGroup

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cfg = load_config(None, ["model.path=m", f"data.dir={tmp_path}", f"logging.runs_dir={tmp_path}",
                             "logging.run_name=dies", "learner.cpus_per_rank=0.25", "learner.startup_timeout_s=60"])
    with pytest.raises(LearnerError, match=r"^learner rank \d died during start: "):
        LearnerGroup(cfg, rank_cls=RankThatDiesAtStart)
    with pytest.raises(ValueError):  # Ray's answer for a name no placement group holds
        get_placement_group("dies-learner")
    # the relaunch of the same run in the same cluster gets its learner
    learner = LearnerGroup(cfg, rank_cls=FakeRank)
    try:
        assert [p["rank"] for p in learner.processes] == [0, 1]
    finally:
        learner.shutdown()


def test_the_config_accepts_exactly_the_transports_that_exist():
    from cosmo.config import WEIGHT_TRANSPORTS

    assert sorted(WEIGHT_TRANSPORTS) == ALL
