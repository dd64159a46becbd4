"""Waiting on Ray workers under a deadline: the one shape rollout, learner and reward rooms share.

Each room runs shares of work on its workers (rollout actors, learner ranks, reward workers), then
waits: `settle` hands back every call's outcome as it arrives (`ok`, `died`, `failed`: raised, `hung`:
no answer by the deadline); the room decides what an outcome means (rollout actors are restarted
and redo their share, reward workers replaced and retried once, a learner rank ends the run, named).
`wait_started` is the start-up wait, whose every failure is a `WorkerError` naming the worker and
the setting to change.

Not part of the Ray-free core (cosmo.config, data, models, algorithms...): it imports Ray. It sits
in `cosmo` so that the three rooms share it without importing each other; it imports nothing of
COSMO's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import ray

K = TypeVar("K", bound=Hashable)

OK, DIED, FAILED, HUNG = "ok", "died", "failed", "hung"


class WorkerError(RuntimeError):
    """A worker failed beyond what its room recovers from; the one-line message names the worker, what
    it was doing, and the setting that bounds it. The CLI prints it as one line."""


@dataclass
class Settled(Generic[K]):
    """One call's outcome: `value` when ok, `error` when it died (its process is gone) or failed (it
    raised); neither when hung."""

    key: K
    status: str
    value: Any = None
    error: BaseException | None = None

    @property
    def detail(self) -> str:
        """What went wrong, on one line: the exception a call raised, or the first line of Ray's report."""
        if isinstance(self.error, ray.exceptions.RayTaskError):
            return repr(self.error.cause)
        return str(self.error).splitlines()[0] if self.error is not None else ""


def settle(refs: Mapping[K, ray.ObjectRef], deadline: float) -> Iterator[Settled[K]]:
    """Each call's outcome, first come first served; once `deadline` (a `time.perf_counter()` time) has
    passed, every call still running is yielded as HUNG, together (in key order)."""
    keys = {ref: key for key, ref in refs.items()}
    waiting = list(refs.values())
    while waiting:
        done, waiting = ray.wait(waiting, num_returns=1, timeout=max(0.0, deadline - time.perf_counter()))
        if not done:
            yield from (Settled(keys[ref], HUNG) for ref in waiting)
            return
        key = keys[done[0]]
        try:
            value = ray.get(done[0])
        except ray.exceptions.RayActorError as exc:  # its process is gone (killed, crashed, node lost)
            yield Settled(key, DIED, error=exc)
        except ray.exceptions.RayTaskError as exc:  # the call raised
            yield Settled(key, FAILED, error=exc)
        except ray.exceptions.RayError as exc:  # Ray lost the answer (object lost, worker crashed)
            yield Settled(key, DIED, error=exc)
        else:
            yield Settled(key, OK, value)


def wait_started(refs: Mapping[K, ray.ObjectRef], timeout_s: float, key: str, who: Callable[[K], str],
                 error: type[WorkerError] = WorkerError) -> dict[K, Any]:
    """Each worker's answer to its first call (engine or model loaded); a worker that raises, dies or
    takes longer than `timeout_s` (the setting `key`) stops the run with `error` naming it."""
    results: dict[K, Any] = {}
    for s in settle(refs, time.perf_counter() + timeout_s):
        if s.status == HUNG:
            raise error(f"{who(s.key)} did not start within {key}={timeout_s:g} s; raise {key} or check its "
                        "log (ray logs)")
        if s.status != OK:
            raise error(f"{who(s.key)} failed to start: {s.detail}")
        results[s.key] = s.value
    return results
