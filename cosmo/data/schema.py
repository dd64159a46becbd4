"""The one row type every stage shares (`Sample`), the task list, and the data error type."""

from __future__ import annotations

from dataclasses import dataclass, field

TASKS: tuple[str, ...] = ("reasoning", "instruction", "knowledge", "safety", "over_refusal", "jailbreak")

# Tasks whose prompts must be refused, when a row does not say `should_refuse` itself.
REFUSE_BY_DEFAULT: frozenset[str] = frozenset({"safety", "jailbreak"})


class DataError(ValueError):
    """A data row (or file) is wrong; the message says where and what.

    Form: "<file>:<line>: row '<id>': field '<field>': <problem>" (parts that are unknown are
    left out), e.g. "train.jsonl:12: row 'train-00012': field 'answer': expected a string or
    null, found int 3".
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str | None = None,
        line: int | None = None,
        row_id: str | None = None,
        field: str | None = None,
    ) -> None:
        self.problem, self.path, self.line, self.row_id, self.field = problem, path, line, row_id, field
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        if row_id is not None:
            where += f"row {row_id!r}: "
        if field is not None:
            where += f"field {field!r}: "
        super().__init__(where + problem)


@dataclass(frozen=True)
class Sample:
    """One prompt with everything needed to score responses to it.

    images are absolute paths once loaded; answer is the reference for verifiable tasks;
    constraints are checked by `cosmo.rules.constraints`; response is an optional SFT
    target in the `<think>…</think><answer>…</answer>` template. source ("file:line", set by
    the loader) only serves error messages; it is not written back and not compared.
    """

    id: str
    task: str
    prompt: str
    images: tuple[str, ...] = ()
    answer: str | None = None
    should_refuse: bool = False
    constraints: tuple[dict, ...] = ()
    response: str | None = None
    meta: dict = field(default_factory=dict)
    source: str | None = field(default=None, compare=False, repr=False)
