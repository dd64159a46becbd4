"""`reward_model`: an HF sequence classifier scoring (prompt, response), hosted by the reward worker.

Range [0, 1]. Input: the classifier's chat template applied to [user: prompt, assistant: response] when
its tokenizer has one, else the pair (prompt, response) as two segments; truncated from the left to
`max_length` tokens, so the end of the response (its answer) is always seen. Images are not passed:
rows with images are scored on their text. Score: sigmoid(logit) for a one-logit classifier (the usual
Bradley-Terry reward model), else the softmax probability of the configured label.
Diagnostics (per worker, `ObjectiveStats`): items, failures, seconds per item, load time; per item
`info` holds the raw logit (one-logit models) or the label's probability.
"""

from __future__ import annotations

import math
import time

from cosmo.config import RewardModelConfig
from rewards.objectives.base import Item, ObjectiveStats, Outcome, response_view


def _label_index(id2label: dict, num_labels: int, label: str) -> int:
    names = {str(v): int(k) for k, v in id2label.items()}
    if label in names:
        return names[label]
    if label.isdigit() and int(label) < num_labels:
        return int(label)
    raise ValueError(f"reward_model: label {label!r} is neither a name of the classifier's labels "
                     f"{sorted(names)} nor an index below {num_labels}")


def _sigmoid(x: float) -> float:
    if math.isnan(x):
        return x
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)  # no overflow for very negative x
    return e / (1.0 + e)


class RewardModelObjective:
    name = "reward_model"
    low, high = 0.0, 1.0

    def __init__(self, cfg: RewardModelConfig, device: str = "cpu") -> None:
        import torch  # noqa: PLC0415 - heavy; only workers that host the objective import it
        from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: PLC0415 - heavy; only workers that host it

        started = time.perf_counter()
        self.cfg = cfg
        self.stats = ObjectiveStats(self.name)
        self.device = "cuda" if device == "cuda" and torch.cuda.is_available() else "cpu"
        dtype = {"auto": torch.bfloat16 if self.device == "cuda" else torch.float32,
                 "float32": torch.float32, "bfloat16": torch.bfloat16}[cfg.dtype]
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.path)
        self.tokenizer.truncation_side = "left"  # keep the response's end: its final answer
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(cfg.path, dtype=dtype).to(self.device).eval()
        if self.model.config.pad_token_id is None:  # decoder classifiers pool the last non-pad token
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        n = self.model.config.num_labels
        if cfg.label is None:
            if n != 1:
                raise ValueError(f"reward_model: {cfg.path} has {n} labels; set reward.reward_model.label")
            self.label = None
        else:
            self.label = _label_index(self.model.config.id2label, n, cfg.label)
        self.stats.loaded_s = round(time.perf_counter() - started, 3)

    def render(self, item: Item) -> str | tuple[str, str]:
        """The classifier's input for one item (a chat-formatted string, or a text pair)."""
        response = response_view(item.text, self.cfg.response_part)
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": item.sample.prompt}, {"role": "assistant", "content": response}]
            return self.tokenizer.apply_chat_template(messages, tokenize=False)
        return item.sample.prompt, response

    def score(self, items: list[Item]) -> list[Outcome]:
        started = time.perf_counter()
        try:
            outcomes = self._score(items)
        except Exception as exc:  # a failed batch fails its items, never the worker
            outcomes = [Outcome(error=f"reward_model: {type(exc).__name__}: {str(exc)[:200]}") for _ in items]
        self.stats.record(outcomes, started)
        return outcomes

    def _score(self, items: list[Item]) -> list[Outcome]:
        import torch  # noqa: PLC0415 - heavy; only workers that host it

        outcomes: list[Outcome] = []
        for start in range(0, len(items), self.cfg.batch_size):
            inputs = [self.render(it) for it in items[start : start + self.cfg.batch_size]]
            if isinstance(inputs[0], tuple):
                enc = self.tokenizer([a for a, _ in inputs], [b for _, b in inputs], truncation=True,
                                     max_length=self.cfg.max_length, padding=True, return_tensors="pt")
            else:
                enc = self.tokenizer(inputs, truncation=True, max_length=self.cfg.max_length, padding=True,
                                     add_special_tokens=False, return_tensors="pt")
            with torch.no_grad():
                logits = self.model(**{k: v.to(self.device) for k, v in enc.items()}).logits.float()
            for row in logits:
                if self.label is None:
                    logit = float(row[0])
                    value, info = _sigmoid(logit), {"logit": logit}
                else:
                    value = float(torch.softmax(row, dim=-1)[self.label])
                    info = {"prob": value}
                if not math.isfinite(value):
                    outcomes.append(Outcome(error=f"reward_model: non-finite score ({value})", info=info))
                else:
                    outcomes.append(Outcome(value=value, info=info))
        return outcomes
