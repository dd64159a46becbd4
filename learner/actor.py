"""One learner rank: a DeepSpeed engine around the policy, driven by the driver one step at a time.

The class is plain Python (testable without Ray); `learner.group` wraps it in Ray actors. The
driver sends sample indices, never tensors or weights: every rank reads the same JSONL file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import torch

from cosmo.algorithms import importance_weights, policy_loss
from cosmo.algorithms.losses import clip_eps_schedule
from cosmo.algorithms.microbatch import UpdateTotals, fixed_count, local_totals, pack_by_tokens, place, token_weights
from cosmo.config import CosmoConfig
from cosmo.data import Sample, load_images, load_jsonl
from cosmo.models import encode_response_batch, encode_sft_batch, load_model
from cosmo.trajectory import LearnerItem
from cosmo.weights import get_transport, pack_weights
from learner.checkpoint import (
    DRIVER_STATE,
    TRAIN_STATE,
    finalize_checkpoint,
    gathered_parameters,
    model_side_files,
    staging_dir,
    write_hf_model,
)
from learner.engine import (
    OptimSpec,
    build_engine,
    build_frozen,
    deepspeed_config,
    init_process_group,
    resolve_backend,
)
from learner.forward import blank_image_inputs, response_logprobs, vision_in_every_pass, vision_tower
from learner.train_state import base_optimizer, load_train_state, master_partitions, save_train_state
from learner.weights import export_state_dict


def resolve_device(name: str) -> torch.device:
    """auto: CUDA when this process sees a GPU, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """auto: fp32 on CPU, bf16 on CUDA."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def supervised_rows(rows: list[Sample], which: str, path: str) -> list[Sample]:
    """The SFT rows of the RL updates' supervised loss (algorithm.sft_rows): `must_refuse` ones or `all`,
    those with a reference response."""
    chosen = [r for r in rows if r.response is not None and (which == "all" or r.should_refuse)]
    if not chosen:
        raise ValueError(f"algorithm.sft_coef > 0 but {path} has no {which} row with a 'response' "
                         "(the SFT rows' targets)")
    return chosen


class LearnerRank:
    """Owns the model, optimizer and data view of one rank; every public method is one RPC."""

    def __init__(self, rank: int, world_size: int, cfg: CosmoConfig) -> None:
        self.rank = rank
        self.world_size = world_size
        self.cfg = cfg
        self.engine = None
        self.samples: list[Sample] = []
        self.side_files: dict[str, bytes] = {}  # the start model's tokenizer and configs, for every checkpoint
        self.spec: OptimSpec | None = None
        self.reference: torch.nn.Module | None = None
        self.blank_image: dict[str, torch.Tensor] | None = None  # runs the vision tower in text-only passes
        self.sft_rows: list[Sample] = []  # the rows of the RL updates' supervised loss (algorithm.sft_coef)

    def setup(
        self, rendezvous: str, model_path: str, train_file: str, spec: OptimSpec, threads: int,
        reference: str | None = None, train_state: str | None = None, sft_file: str | None = None,
    ) -> dict:
        """Join the process group, load the model, build the engine, read the training data.

        `reference`: a model to hold frozen, for a KL penalty against it. `train_state`: a
        checkpoint's train_state directory to restore (resume); `model_path` is then that checkpoint.
        `sft_file`: SFT rows for the supervised loss each RL update adds (algorithm.sft_coef).
        """
        started = time.perf_counter()
        if threads > 0:
            torch.set_num_threads(threads)
        # every RNG seeded (resume restores them from the checkpoint): runs are reproducible
        torch.manual_seed(self.cfg.seed)
        np.random.seed(self.cfg.seed)
        random.seed(self.cfg.seed)
        device = resolve_device(self.cfg.device)
        if device.type == "cuda":
            torch.cuda.set_device(0)
        init_process_group(self.rank, self.world_size, rendezvous, resolve_backend(self.cfg.learner, device))
        dtype = resolve_dtype(self.cfg.model.dtype, device)
        bf16 = dtype == torch.bfloat16
        keep = None
        if self.cfg.learner.zero_stage == 3:
            # ZeRO-3 partitions parameters while from_pretrained loads them; transformers
            # reads this global config object, which must stay alive as long as the model.
            from transformers.integrations import HfDeepSpeedConfig  # noqa: PLC0415 - ZeRO-3 only

            keep = HfDeepSpeedConfig(deepspeed_config(self.cfg.learner, spec, self.world_size, bf16))
        lm = load_model(model_path, dtype=torch.float32, attn_implementation=self.cfg.model.attn_implementation)
        self._hf_ds_config = keep
        self.lm = lm
        if self.cfg.model.freeze_vision:
            vision = vision_tower(lm.model)
            if vision is None:
                raise ValueError(f"model.freeze_vision=true but {model_path} has no vision tower")
            vision.requires_grad_(False)
        if self.cfg.learner.gradient_checkpointing:
            # HF's own switch: each decoder/vision block recomputes its activations in backward
            lm.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        lm.model.train()
        self.engine = build_engine(lm.model, self.cfg.learner, spec, self.world_size, bf16)
        self.device = self.engine.device
        self.blank_image = blank_image_inputs(lm.processor, self.device) if vision_tower(lm.model) else None
        if train_state:
            load_train_state(self.engine, Path(train_state), self.rank)
        if reference:
            ref = load_model(reference, dtype=torch.float32, attn_implementation=self.cfg.model.attn_implementation)
            self.reference = build_frozen(ref.model, self.cfg.learner, spec, self.world_size, bf16, self.device)
        self.samples = load_jsonl(train_file)
        if sft_file:
            self.sft_rows = supervised_rows(load_jsonl(sft_file), self.cfg.algorithm.sft_rows, sft_file)
        self.side_files = model_side_files(model_path)
        self.spec = spec
        n_params = sum(p.numel() for p in lm.model.parameters())
        n_train = sum(p.numel() for p in lm.model.parameters() if p.requires_grad)
        return {"rank": self.rank, "params": n_params, "trainable": n_train, "rows": len(self.samples),
                "device": str(self.device), "setup_s": time.perf_counter() - started}

    def sft_step(self, indices: list[int]) -> dict:
        """One optimizer step over this rank's share: `grad_accum` micro-batches of SFT loss.

        The loss is the token mean over the whole step on every rank (`UpdateTotals`), so the gradient
        does not depend on the micro-batch size or the number of ranks."""
        assert self.engine is not None and self.spec is not None, "setup() must run first"
        started = time.perf_counter()
        mb = self.spec.micro_batch_size
        if len(indices) != mb * self.spec.grad_accum:
            raise ValueError(f"rank {self.rank} got {len(indices)} samples, expected {mb * self.spec.grad_accum}")
        batches = [self._sft_batch([self.samples[i] for i in indices[start : start + mb]])
                   for start in range(0, len(indices), mb)]
        counts = [int((batch["labels"][:, 1:] != -100).sum()) for batch in batches]
        totals = self._step_totals(UpdateTotals(tokens=sum(counts), sequences=0, micro_batches=len(batches)))
        loss_sum = 0.0
        for j, (batch, n) in enumerate(zip(batches, counts, strict=True)):
            self.engine.set_gradient_accumulation_boundary(j == len(batches) - 1)
            with vision_in_every_pass(self.engine, batch, self.blank_image):
                loss = self.engine(**batch).loss  # HF: the mean over this micro-batch's n label tokens
            # n x mean = this micro-batch's sum; x ranks / step tokens: its share of the step's token mean
            self.engine.backward(loss * (n * totals.ranks / max(totals.tokens, 1)), scale_wrt_gas=False)
            self.engine.step()
            loss_sum += float(loss.detach()) * n
        return {
            "loss": loss_sum / max(sum(counts), 1),
            "tokens": sum(counts),
            "lr": self.engine.get_lr()[0],
            "grad_norm": self._grad_norm(),
            "skipped": float(not self.engine.was_step_applied()),
            "step_s": time.perf_counter() - started,
        }

    def _sft_batch(self, rows: list[Sample]) -> dict:
        """One micro-batch of SFT rows on the device: prompt and reference response, labels on the response."""
        missing = [r.id for r in rows if r.response is None]
        if missing:
            raise ValueError(f"SFT needs a reference 'response' in every row; missing in {missing[:5]}")
        batch = encode_sft_batch(self.lm, [r.prompt for r in rows], [load_images(r) for r in rows],
                                 [r.response for r in rows],  # type: ignore[misc]
                                 max_length=self.cfg.data.max_length)
        return {k: v.to(self.device) for k, v in batch.items()}

    def _supervised_loss(self) -> torch.Tensor:
        """The SFT loss (token mean) of `algorithm.sft_batch` SFT rows, drawn afresh for each optimizer step
        from a generator seeded by the seed, the rank and the engine's step count (which a resume restores),
        so a resumed run draws the same rows."""
        a = self.cfg.algorithm
        draw = random.Random(f"{self.cfg.seed}:{self.rank}:{self.engine.global_steps}")
        batch = self._sft_batch(draw.sample(self.sft_rows, min(a.sft_batch, len(self.sft_rows))))
        with vision_in_every_pass(self.engine, batch, self.blank_image):
            return self.engine(**batch).loss  # the mean over its label tokens; DeepSpeed averages the ranks

    def _step_totals(self, local: UpdateTotals) -> UpdateTotals:
        """This optimizer step's counts summed over every rank (micro-batches: the most of any rank),
        in one all_gather: the loss normalises by them, and a rank with fewer micro-batches pads to the
        most, since ZeRO reduces gradients in every backward (and ZeRO-3 gathers parameters in every
        forward), so unequal counts would hang or corrupt the collectives."""
        if self.world_size == 1:
            return local
        mine = torch.tensor([local.tokens, local.sequences, local.micro_batches], dtype=torch.long, device=self.device)
        every = [torch.zeros_like(mine) for _ in range(self.world_size)]
        torch.distributed.all_gather(every, mine)
        table = torch.stack(every).cpu()
        return UpdateTotals(tokens=int(table[:, 0].sum()), sequences=int(table[:, 1].sum()), ranks=self.world_size,
                            micro_batches=int(table[:, 2].max()))

    def rl_step(self, items: list[LearnerItem]) -> dict:
        """The policy updates over this rank's trajectories: `epochs` passes of `mini_batches` optimizer
        steps (as the stage's OptimSpec resolved them), each over its micro-batches (fixed count or token budget).

        With one update the old log-probs are the behaviour's (sync) or this step's pre-update
        policy (async), as computed in the update's own forward; with several they are computed
        once, before the first update, and stay fixed, so CPGD's clip and drift act from the second.
        Returns the token-weighted averages over every micro-batch of every update.
        """
        assert self.engine is not None and self.spec is not None, "setup() must run first"
        started = time.perf_counter()
        mb = self.spec.micro_batch_size
        if len(items) != mb * self.spec.grad_accum:
            raise ValueError(f"rank {self.rank} got {len(items)} trajectories, expected {mb * self.spec.grad_accum}")
        spec = self.spec
        updates = spec.updates_per_step
        if len(items) % spec.mini_batches:
            raise ValueError(f"rank {self.rank}: {len(items)} trajectories do not split into "
                             f"rl.mini_batches={spec.mini_batches}")
        size = len(items) // spec.mini_batches
        fixed_old = self._learner_logprobs(items) if updates > 1 else None
        totals: dict[str, float] = {}
        counts = dict.fromkeys(("tokens", "truncated_rows", "micro_batches", "padded_micro_batches"), 0)
        skipped = 0
        for epoch in range(spec.epochs):
            for k in range(spec.mini_batches):
                stats, done = self._update(items[k * size : (k + 1) * size],
                                           None if fixed_old is None else fixed_old[k * size : (k + 1) * size])
                for key, value in stats.items():
                    totals[key] = totals.get(key, 0.0) + value * done["tokens"]
                for key, value in done.items():  # tokens and cut rows once per batch, passes every update
                    counts[key] += value if epoch == 0 or key.endswith("micro_batches") else 0
                skipped += not self.engine.was_step_applied()
        out = {key: value / max(counts["tokens"] * spec.epochs, 1) for key, value in totals.items()}
        # skipped: no update applied, so the weights did not change (the driver then broadcasts nothing)
        out.update(counts, lr=self.engine.get_lr()[0], step_s=time.perf_counter() - started,
                   grad_norm=self._grad_norm(), skipped=float(skipped == updates), optimizer_steps=updates,
                   skipped_updates=skipped, rows=len(items))
        return out

    def _micro_batches(self, items: list[LearnerItem]) -> list[list[int]]:
        """Indices into `items` per micro-batch: `micro_batch_size` in order, or packed by token budget."""
        budget = self.cfg.learner.max_tokens_per_micro_batch
        if budget == 0:
            return fixed_count(len(items), self.spec.micro_batch_size)
        lengths = [int(self._encode([it])[0]["input_ids"].shape[1]) for it in items]
        return pack_by_tokens(lengths, budget)

    def _encode(self, chunk: list[LearnerItem]) -> tuple[dict, torch.Tensor]:
        """One micro-batch on the device, and its labels ([rows, length], -100 off the response)."""
        rows = [self.samples[it.sample_index] for it in chunk]
        batch = encode_response_batch(
            self.lm, [r.prompt for r in rows], [load_images(r) for r in rows],
            [it.response_ids for it in chunk], max_length=self.cfg.data.max_length,
        )
        batch = {k: v.to(self.device) for k, v in batch.items()}
        return batch, batch.pop("labels")

    @torch.no_grad()
    def _learner_logprobs(self, items: list[LearnerItem]) -> list[torch.Tensor]:
        """This policy's log-probs of every item's response tokens before the step's first update."""
        out: list[torch.Tensor] = [torch.empty(0)] * len(items)
        for idx in fixed_count(len(items), self.spec.micro_batch_size):
            batch, labels = self._encode([items[i] for i in idx])
            logprobs, _ = response_logprobs(self.engine, batch, labels, chunk=self.cfg.learner.logprob_chunk_tokens,
                                             temperature=self.cfg.rollout.temperature, blank=self.blank_image)
            mask = labels[:, 1:] != -100
            for row, i in enumerate(idx):
                out[i] = logprobs[row][mask[row]]
        return out

    def _update(self, items: list[LearnerItem],
                fixed_old: list[torch.Tensor] | None) -> tuple[dict[str, float], dict[str, int]]:
        """One optimizer step over `items`; returns the token-weighted stats, and counts: the tokens trained
        on, the responses `data.max_length` cut (left out of the loss with rl.truncated=drop), the forward/
        backward passes and how many of them were padding.

        The loss is `algorithm.aggregation` over the step's tokens on every rank (`token_weights` with the
        exchanged `UpdateTotals`); a rank with fewer micro-batches than another runs its first one again
        with zero weight, so every rank makes the same collective calls."""
        a, ln = self.cfg.algorithm, self.cfg.learner
        encoded = [(self._encode([items[i] for i in idx]), idx) for idx in self._micro_batches(items)]
        label_masks = [labels[:, 1:] != -100 for (_, labels), _ in encoded]
        cut = [torch.tensor([len(items[i].response_ids) > int(n) for i, n in zip(idx, m.sum(-1), strict=True)],
                            device=m.device) for m, (_, idx) in zip(label_masks, encoded, strict=True)]
        masks = []
        for m, c, (_, idx) in zip(label_masks, cut, encoded, strict=True):
            left_out = torch.tensor([items[i].exclude for i in idx], device=m.device)
            if self.cfg.rl.truncated == "drop":
                left_out |= c
            masks.append(m & ~left_out[:, None])
        step_totals = self._step_totals(local_totals(masks))
        weights = token_weights(masks, a.aggregation, step_totals)
        padding = step_totals.micro_batches - len(encoded)
        for _ in range(padding):  # the same passes as the busiest rank, no gradient
            encoded.append(encoded[0])
            label_masks.append(label_masks[0])
            masks.append(torch.zeros_like(masks[0]))
            weights.append(torch.zeros_like(weights[0]))
        totals: dict[str, float] = {}
        out: dict[str, float] = {}
        tokens = 0
        for j, ((batch, labels), idx) in enumerate(encoded):
            chunk = [items[i] for i in idx]
            label_mask, mask = label_masks[j], masks[j]
            last = j == len(encoded) - 1
            self.engine.set_gradient_accumulation_boundary(last)
            logprobs, entropy = response_logprobs(self.engine, batch, labels, chunk=ln.logprob_chunk_tokens,
                                                  temperature=self.cfg.rollout.temperature, blank=self.blank_image)
            behaviour = place(label_mask, [it.logprobs for it in chunk], dtype=logprobs.dtype)
            adv = torch.tensor([it.advantage for it in chunk], dtype=logprobs.dtype, device=logprobs.device)
            # the learner's own pre-update log-probs: fixed at the batch's start, or (one update) this forward's
            start = logprobs.detach() if fixed_old is None else place(label_mask, [fixed_old[i] for i in idx],
                                                                      dtype=logprobs.dtype)
            extra: dict[str, torch.Tensor] = {}
            if self.cfg.rl.mode == "async":
                # one step off-policy: clip around this step's pre-update policy, correct for the
                # older sampler with truncated IS
                old = start
                is_weights, is_cut = importance_weights(old, behaviour, a.is_cap)
                adv = adv[:, None] * is_weights
                extra = {"is_weight": is_weights, "is_truncated_frac": is_cut.float()}
            else:  # the learner's own log-probs: vLLM reports them before temperature and logit bias
                old = start
            ref = self._reference_logprobs(batch, labels) if self.reference is not None else None
            kl_weights = None if ref is None else torch.tensor([it.kl_weight for it in chunk],
                                                               dtype=logprobs.dtype, device=logprobs.device)
            loss, stats = policy_loss(
                a.name, logprobs, old, ref, adv, mask,
                clip_eps=clip_eps_schedule(label_mask, a.clip_schedule, a.clip_eps, a.clip_eps_min),
                drift_coef=a.drift_coef, drift_clip=a.drift_clip, kl_coef=a.kl_coef, aggregation=a.aggregation,
                weights=weights[j], truncated_ratio=fixed_old is not None, kl_weights=kl_weights,
            )
            if last and self.sft_rows:  # in this backward: under ZeRO-2 every backward reduces the gradients
                supervised = self._supervised_loss()
                loss = loss + a.sft_coef * supervised
                out["sft_loss"] = float(supervised.detach())
            # the weights already normalise over the update: DeepSpeed must not divide by its GAS
            self.engine.backward(loss, scale_wrt_gas=False)
            with torch.no_grad():
                n = int(mask.sum())
                m = mask.float()
                stats["entropy"] = float((entropy * m).sum() / max(n, 1))
                # rollout engine vs learner log-probs of the same tokens (before this step's updates)
                stats["logprob_gap"] = float(((start - behaviour).abs() * m).sum() / max(n, 1))
                stats.update({k: float((v * m).sum() / max(n, 1)) for k, v in extra.items()})
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + value * n
            tokens += n
        out.update({key: value / max(tokens, 1) for key, value in totals.items()})
        self.engine.step()
        return out, {
            "tokens": tokens, "truncated_rows": int(sum(c.sum() for c in cut)), "micro_batches": len(encoded),
            "padded_micro_batches": padding}

    @torch.no_grad()
    def _reference_logprobs(self, batch: dict, labels: torch.Tensor) -> torch.Tensor:
        """Log-probs of the sampled tokens under the frozen start model."""
        return response_logprobs(self.reference, batch, labels, chunk=self.cfg.learner.logprob_chunk_tokens,
                                 temperature=self.cfg.rollout.temperature, blank=self.blank_image)[0]

    def _grad_norm(self) -> float | None:
        """The last optimizer step's global gradient norm; None when DeepSpeed did not compute a finite one."""
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None and math.isfinite(float(norm)) else None

    def export_weights(self) -> tuple[object, str | None]:
        """Collective: rank 0 returns the full policy packed by `rollout.weight_transport`, and its
        digest; the other ranks (None, None)."""
        tensors = export_state_dict(self.engine.module, self.cfg.learner.zero_stage, self.rank)
        if tensors is None:
            return None, None
        return pack_weights(get_transport(self.cfg.rollout.weight_transport), tensors)

    def prepare_checkpoint(self, out_dir: str) -> str:
        """Rank 0, before a save: an empty staging directory for every rank to write into."""
        tmp = staging_dir(Path(out_dir))
        if tmp.exists():
            shutil.rmtree(tmp)
        (tmp / TRAIN_STATE).mkdir(parents=True)
        return str(tmp)

    def save(self, tmp: str) -> None:
        """Collective: the HF model (rank 0) and every rank's training state into the staging dir."""
        write_hf_model(self.engine.module, side_files=self.side_files, tmp=Path(tmp),
                       zero_stage=self.cfg.learner.zero_stage, rank=self.rank)
        save_train_state(self.engine, Path(tmp) / TRAIN_STATE, self.rank)

    def finalize_checkpoint(self, tmp: str, out_dir: str, meta: dict, driver_state: dict) -> str:
        """Rank 0, after every rank saved: the driver's state, the manifest and marker, the rename."""
        (Path(tmp) / DRIVER_STATE).write_text(json.dumps(driver_state))
        return str(finalize_checkpoint(Path(tmp), Path(out_dir), meta))

    def state_digest(self) -> dict:
        """SHA-256 of this rank's weights and of its optimizer state (moments, fp32 master partitions,
        LR, step counters): equal digests mean a bit-exact training state."""

        def sha(tensors) -> str:
            h = hashlib.sha256()
            for t in tensors:
                h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
            return h.hexdigest()

        module = self.engine.module
        with gathered_parameters(module, self.cfg.learner.zero_stage):
            weights = sha(p for _, p in sorted(module.named_parameters()))
        state = base_optimizer(self.engine).state_dict()["state"]
        moments = sha(v for pid in sorted(state) for _, v in sorted(state[pid].items()) if torch.is_tensor(v))
        return {"weights": weights, "optimizer": moments, "masters": sha(master_partitions(self.engine)),
                "lr": self.engine.get_lr()[0], "global_steps": self.engine.global_steps}

    def param_digest(self) -> float:
        """A cheap fingerprint of the full weights (sum of |w|): equal on every rank after each step."""
        module = self.engine.module
        with gathered_parameters(module, self.cfg.learner.zero_stage):
            return float(sum(p.detach().double().abs().sum() for p in module.parameters()))

    def process(self) -> dict:
        """Where this rank runs: the driver names a hung rank by it."""
        import ray  # noqa: PLC0415 - the rank itself is plain Python, testable without Ray

        return {"rank": self.rank, "pid": os.getpid(), "host": ray.util.get_node_ip_address()}

    def store_address(self) -> tuple[str, int]:
        """This node's address and a free TCP port on it, for the process group's store (rank 0 hosts it)."""
        import ray  # noqa: PLC0415 - the rank itself is plain Python, testable without Ray

        host = ray.util.get_node_ip_address()
        with socket.socket() as sock:
            sock.bind((host, 0))
            return host, sock.getsockname()[1]

