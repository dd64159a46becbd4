"""What a model-based objective receives and returns, and the diagnostics every one of them keeps.

A model objective scores a batch of `Item`s at once (one forward pass, one vLLM call, concurrent HTTP
requests) and returns one `Outcome` per item: a value in the objective's range, or an error. An error
excludes that trajectory from the update; it is never turned into a score of 0.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cosmo.rules.template import parse_response

if TYPE_CHECKING:
    from cosmo.data import Sample


@dataclass(frozen=True)
class Item:
    """One response to score, with the training row it answers."""

    sample: Sample
    text: str
    sample_id: str

    @property
    def response_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8", "replace")).hexdigest()[:16]


@dataclass
class Outcome:
    value: float | None = None
    error: str | None = None
    info: dict = field(default_factory=dict)


def response_view(text: str, part: str) -> str:
    """`full`: the whole response; `answer`: its <answer> part (the whole text when there is none)."""
    if part == "answer":
        answer = parse_response(text).answer
        return text if answer is None else answer
    return text


class ObjectiveStats:
    """Running diagnostics of one objective in one worker: items scored and failed, retries, time, the
    most recent error (already free of secrets: objectives build their own messages)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = self.items = self.failed = self.retries = 0
        self.seconds = 0.0
        self.last_error: str | None = None
        self.loaded_s: float | None = None

    def record(self, outcomes: list[Outcome], started: float) -> None:
        self.calls += 1
        self.items += len(outcomes)
        self.seconds += time.perf_counter() - started
        for o in outcomes:
            self.retries += int(o.info.get("retries", 0))
            if o.error is not None:
                self.failed += 1
                self.last_error = o.error

    def as_dict(self) -> dict:
        return {"calls": self.calls, "items": self.items, "failed": self.failed, "retries": self.retries,
                "seconds": round(self.seconds, 4), "seconds_per_item": round(self.seconds / self.items, 6)
                if self.items else None, "load_s": self.loaded_s, "last_error": self.last_error}
