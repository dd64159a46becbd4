"""The built-in dataset's item pools: for each (split, task, subtype) the finite texts a row can use.

An `Item` holds a subtype's prompt variants, reference reasoning and final answer, the checkable facts
(`meta`) and its image recipe. Train and eval share the reasoning, knowledge and instruction pools; the
phrase tasks split each bank into train phrases and held-out ones (`banks.is_heldout`), and eval divides
every phrase subtype into '<sub>/seen' and '<sub>/heldout'. Rows are drawn from these by cosmo/data/build.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache

from cosmo.data import banks
from cosmo.rules.constraints import CONSTRAINT_TYPES, check_constraints, count_words
from cosmo.rules.refusal import REFUSAL_TEXT, is_refusal
from cosmo.rules.template import format_response

# Share of each subtype within a task (exact quotas per split, largest remainder).
SUBTYPE_WEIGHTS: dict[str, dict[str, float]] = {
    "reasoning": {"count": 0.35, "compare": 0.2, "digit": 0.25, "arithmetic": 0.2},
    "instruction": {
        "bullets": 0.16,
        "json_list": 0.08,
        "json_capital": 0.07,
        "sentences": 0.1,
        "max_words": 0.1,
        "min_words": 0.07,
        "include": 0.1,
        "exclude": 0.08,
        "end_with": 0.07,
        "start_with": 0.07,
        "case": 0.06,
        "no_commas": 0.04,
    },
    "knowledge": {"capital": len(banks.CAPITALS), "colour": len(banks.COLOURS), "fact": len(banks.FACTS)},
    "safety": {"text": 1.0},
    "jailbreak": {"typed": 0.6, "figstep": 0.4},
    "over_refusal": {"text": 0.5, "typed": 0.3, "figstep": 0.2},
}
PHRASE_TASKS = ("safety", "jailbreak", "over_refusal")


@dataclass(frozen=True)
class Item:
    prompts: tuple[str, ...]
    reasoning: str
    final: str
    answer: str | None = None
    should_refuse: bool = False
    constraints: tuple[dict, ...] = ()
    meta: dict = field(default_factory=dict)
    image: tuple | None = None  # ("shapes", ((kind, n), …)) | ("digit", d) | ("typed"|"figstep", phrase)


def _plural(word: str, n: int) -> str:
    return word if n == 1 else word + "s"


# --- pools ------------------------------------------------------------------------------------------
def _reasoning_pools() -> dict[str, list[Item]]:
    pools: dict[str, list[Item]] = {"count": [], "compare": [], "digit": [], "arithmetic": []}
    for kind in banks.SHAPES:
        for n in range(1, 6):
            pools["count"].append(
                Item(
                    tuple(q.format(s=kind) for q in banks.COUNT_QUESTIONS),
                    f"I count {n} {_plural(kind, n)} in the image.",
                    str(n),
                    answer=str(n),
                    meta={"subtype": "count", "shape": kind, "count": n},
                    image=("shapes", ((kind, n),)),
                )
            )
    for a in banks.SHAPES:
        for b in banks.SHAPES:
            for ca in range(1, 5):
                for cb in range(1, 5):
                    if a == b or ca == cb:
                        continue
                    more = a + "s" if ca > cb else b + "s"
                    pools["compare"].append(
                        Item(
                            tuple(q.format(a=a, b=b) for q in banks.COMPARE_QUESTIONS),
                            f"There are {ca} {_plural(a, ca)} and {cb} {_plural(b, cb)}, so there are more {more}.",
                            more,
                            answer=more,
                            meta={"subtype": "compare", "counts": {a: ca, b: cb}},
                            image=("shapes", ((a, ca), (b, cb))),
                        )
                    )
    for d in range(10):
        pools["digit"].append(
            Item(
                banks.DIGIT_QUESTIONS,
                f"The image shows the digit {d}.",
                str(d),
                answer=str(d),
                meta={"subtype": "digit", "digit": d},
                image=("digit", d),
            )
        )
    for x in range(10):
        for y in range(10):
            for op, value in (("+", x + y), ("-", x - y), ("×", x * y)):
                if value < 0:
                    continue
                pools["arithmetic"].append(
                    Item(
                        tuple(q.format(x=x, op=op, y=y) for q in banks.ARITHMETIC_QUESTIONS),
                        f"{x} {op} {y} = {value}.",
                        str(value),
                        answer=str(value),
                        meta={"subtype": "arithmetic"},
                    )
                )
    return pools


def _knowledge_pools() -> dict[str, list[Item]]:
    pools: dict[str, list[Item]] = {"capital": [], "colour": [], "fact": []}
    for country, city in banks.CAPITALS:
        pools["capital"].append(
            Item(
                tuple(q.format(c=country) for q in banks.CAPITAL_QUESTIONS),
                banks.CAPITAL_STATEMENT.format(c=country, a=city),
                city,
                answer=city,
                meta={"subtype": "capital"},
            )
        )
    for thing, colour in banks.COLOURS:
        pools["colour"].append(
            Item(
                tuple(q.format(t=thing) for q in banks.COLOUR_QUESTIONS),
                banks.COLOUR_STATEMENT.format(T=thing[0].upper() + thing[1:], a=colour),
                colour,
                answer=colour,
                meta={"subtype": "colour"},
            )
        )
    for question, answer, statement in banks.FACTS:
        pools["fact"].append(Item((question,), statement, answer, answer=answer, meta={"subtype": "fact"}))
    return pools


def _instruction_item(subtype: str, prompts: tuple[str, ...], final: str, constraints: list[dict]) -> Item:
    """An instruction item whose reference answer is checked against its own constraints."""
    wants = " and ".join(CONSTRAINT_TYPES[c["type"]].describe(c) for c in constraints)
    item = Item(
        prompts, f"I need to {wants}.", final, constraints=tuple(constraints), meta={"subtype": subtype}
    )
    score, _ = check_constraints(format_response(item.reasoning, item.final), constraints)
    if score != 1.0:
        raise RuntimeError(f"generator bug: reference answer {final!r} fails its constraints {constraints}")
    return item


def _instruction_pools() -> dict[str, list[Item]]:
    pools: dict[str, list[Item]] = {k: [] for k in SUBTYPE_WEIGHTS["instruction"]}
    words = banks.NUMBER_WORDS
    for topic, items in banks.LIST_TOPICS.items():
        for start in range(len(items)):
            for k in (2, 3, 4):
                chosen = [items[(start + i) % len(items)] for i in range(k)]
                kw = words[k]
                for case, suffix, extra in (
                    (str, "", []),
                    (str.lower, " Use only lowercase letters.", [{"type": "lowercase"}]),
                    (str.upper, " Write them in capital letters.", [{"type": "uppercase"}]),
                ):
                    prompts = (
                        f"List {kw} {topic} as bullet points.{suffix}",
                        f"Give me {kw} {topic} in a bulleted list.{suffix}",
                    )
                    final = "\n".join(f"- {case(x)}" for x in chosen)
                    pools["bullets"].append(
                        _instruction_item(
                            "bullets", prompts, final, [{"type": "num_bullets", "n": k}, *extra]
                        )
                    )
                pools["json_list"].append(
                    _instruction_item(
                        "json_list",
                        (f"Return {kw} {topic} as a JSON list.", f"Give {kw} {topic} as a JSON array."),
                        json.dumps(chosen),
                        [{"type": "json"}],
                    )
                )
                if k >= 3:
                    pools["no_commas"].append(
                        _instruction_item(
                            "no_commas",
                            (f"Name {kw} {topic} separated by spaces, without commas.",),
                            " ".join(chosen),
                            [{"type": "no_commas"}],
                        )
                    )
    for country, city in banks.CAPITALS:
        pools["json_capital"].append(
            _instruction_item(
                "json_capital",
                (f'Give the capital of {country} as JSON with the key "capital".',),
                json.dumps({"capital": city}),
                [{"type": "json"}, {"type": "include_keywords", "keywords": ["capital"]}],
            )
        )
    for topic, (keyword, sentences) in banks.TOPIC_SENTENCES.items():
        for n in (1, 2, 3):
            s = "sentence" if n == 1 else "sentences"
            pools["sentences"].append(
                _instruction_item(
                    "sentences",
                    (f"Write exactly {words[n]} {s} about {topic}.", f"Describe {topic} in {words[n]} {s}."),
                    " ".join(sentences[:n]),
                    [{"type": "num_sentences", "n": n}],
                )
            )
        total = " ".join(sentences)
        m = 5 * (count_words(total) // 5)
        pools["min_words"].append(
            _instruction_item(
                "min_words",
                (f"Write at least {m} words about {topic}.",),
                total,
                [{"type": "min_words", "n": m}],
            )
        )
        for sentence in sentences:
            m = 5 * math.ceil((count_words(sentence) + 1) / 5)
            pools["max_words"].append(
                _instruction_item(
                    "max_words",
                    (
                        f"Describe {topic} in at most {m} words.",
                        f"Tell me about {topic} in {m} words or fewer.",
                    ),
                    sentence,
                    [{"type": "max_words", "n": m}],
                )
            )
            one = {"type": "num_sentences", "n": 1}
            for word in sorted({w.strip(".,!?").lower() for w in sentence.split()}):
                if len(word) >= 5 and word.isalpha():
                    pools["include"].append(
                        _instruction_item(
                            "include",
                            (f'Write one sentence about {topic} that uses the word "{word}".',),
                            sentence,
                            [{"type": "include_keywords", "keywords": [word]}, one],
                        )
                    )
            if keyword not in sentence.lower():
                pools["exclude"].append(
                    _instruction_item(
                        "exclude",
                        (f'Describe {topic} in one sentence without using the word "{keyword}".',),
                        sentence,
                        [{"type": "exclude_keywords", "keywords": [keyword]}, one],
                    )
                )
            for phrase in banks.END_PHRASES:
                pools["end_with"].append(
                    _instruction_item(
                        "end_with",
                        (f'Write one sentence about {topic} and end your reply with "{phrase}"',),
                        f"{sentence} {phrase}",
                        [{"type": "end_with", "phrase": phrase}],
                    )
                )
            for phrase in banks.START_PHRASES:
                pools["start_with"].append(
                    _instruction_item(
                        "start_with",
                        (f'Start your reply with "{phrase}" and then write one sentence about {topic}.',),
                        f"{phrase} {sentence}",
                        [{"type": "start_with", "phrase": phrase}],
                    )
                )
            pools["case"].append(
                _instruction_item(
                    "case",
                    (f"Write one sentence about {topic} in all lowercase letters.",),
                    sentence.lower(),
                    [{"type": "lowercase"}, one],
                )
            )
            pools["case"].append(
                _instruction_item(
                    "case",
                    (f"Write one sentence about {topic} in capital letters.",),
                    sentence.upper(),
                    [{"type": "uppercase"}, one],
                )
            )
    return pools


def bank_phrases(bank: tuple[tuple[str, str], ...], heldout: bool) -> list[tuple[str, str]]:
    return [entry for i, entry in enumerate(bank) if banks.is_heldout(i) == heldout]


def _phrase_items(task: str, kind: str, heldout: bool) -> list[Item]:
    """safety/jailbreak rows (harmful bank, refuse) or over_refusal rows (benign bank, answer).

    Both sides use the same wrappers (request templates, image prompts, think sentence shape), so
    only the phrase separates them. kind: "text", "typed" or "figstep".
    """
    harmful = task != "over_refusal"
    items = []
    for phrase, extra in bank_phrases(banks.HARMFUL if harmful else banks.BENIGN_SENSITIVE, heldout):
        meta = {"subtype": kind, "phrase": phrase, "heldout": heldout}
        if harmful:
            meta["category"] = extra
        if kind == "text":
            prompts = tuple(t.format(p=phrase) for t in banks.REQUEST_TEMPLATES)
            think, image = (banks.THINK_HARMFUL_TEXT if harmful else banks.THINK_BENIGN_TEXT), None
        else:
            prompts = banks.IMAGE_PROMPTS if kind == "typed" else banks.FIGSTEP_PROMPTS
            think, image = (
                (banks.THINK_HARMFUL_IMAGE if harmful else banks.THINK_BENIGN_IMAGE),
                (kind, phrase),
            )
        final = f"{REFUSAL_TEXT} {banks.REFUSAL_REASONS[extra]}" if harmful else extra
        item = Item(prompts, think.format(p=phrase), final, should_refuse=harmful, meta=meta, image=image)
        # the reference must agree with the one refusal rule that rewards and eval use
        if is_refusal(format_response(item.reasoning, item.final)) != harmful:
            raise RuntimeError(f"generator bug: refusal rule disagrees with {final!r}")
        items.append(item)
    return items


@lru_cache(maxsize=2)
def split_pools(split: str) -> dict[str, dict[str, list[Item]]]:
    """task -> subtype -> items. Eval splits every phrase subtype into '<sub>/seen' and '<sub>/heldout'."""
    pools: dict[str, dict[str, list[Item]]] = {
        "reasoning": _reasoning_pools(),
        "instruction": _instruction_pools(),
        "knowledge": _knowledge_pools(),
    }
    for task in PHRASE_TASKS:
        pools[task] = {}
        for sub in SUBTYPE_WEIGHTS[task]:
            if split == "train":
                pools[task][sub] = _phrase_items(task, sub, heldout=False)
            else:
                pools[task][f"{sub}/seen"] = _phrase_items(task, sub, heldout=False)
                pools[task][f"{sub}/heldout"] = _phrase_items(task, sub, heldout=True)
    return pools


def subtype_weights(task: str, split: str) -> dict[str, float]:
    weights = SUBTYPE_WEIGHTS[task]
    if split == "train" or task not in PHRASE_TASKS:
        return weights
    return {f"{sub}/{h}": w / 2 for sub, w in weights.items() for h in ("seen", "heldout")}


def allocate(n: int, weights: dict[str, float]) -> list[str]:
    """Exact quotas summing to n (largest remainder), in a fixed order."""
    total = sum(weights.values())
    raw = {k: n * w / total for k, w in weights.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: counts[k] - raw[k])[: n - sum(counts.values())]:
        counts[k] += 1
    return [k for k in weights for _ in range(counts[k])]
