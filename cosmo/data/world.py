"""The `world` profile: text-only data for a small real model that knows the world (SmolLM2-135M-Instruct).

The built-in set (cosmo/data/build.py) is made for a tiny model trained from scratch; this one asks what a real model
can read: harmful requests across many categories and concrete topics in several phrasings (safety), benign requests
that only look sensitive, of every kind a safety team tests (over_refusal), short facts (knowledge), small word
problems (reasoning) and requests with checkable constraints (instruction). Its texts live in `world_banks`.

Held out by topic: eval.jsonl only holds topics (facts, problem templates, writing subjects, harm and benign topics)
that no train or RL row has, so it measures generalisation rather than recall; train and RL rows share no prompt.
SFT teaches refusing and nothing else: safety train rows carry a refusal; every other train row has no response and
`meta.needs_distill` true, for the start model's own answers (self-distillation) to fill in later.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path
from typing import NamedTuple

from cosmo.data import world_banks as wb
from cosmo.data.loader import write_jsonl
from cosmo.data.schema import TASKS, Sample
from cosmo.rules.constraints import CONSTRAINT_TYPES, validate_constraint
from cosmo.rules.template import format_response

PROFILE = "world"
GENERATOR_VERSION = "2"  # 2: refusal targets with an empty <think>
WORLD_TASKS: tuple[str, ...] = tuple(t for t in TASKS if t != "jailbreak")  # text only: no image attacks
SPLITS = ("train", "rl", "eval")
SIDES = ("train", "eval")  # the train side feeds train.jsonl and rl.jsonl, the eval side eval.jsonl
REQUEST_TASKS = ("safety", "over_refusal")  # harmful requests and their look-alikes: the ones SFT teaches
PROBLEMS_PER_TEMPLATE = 60  # distinct word problems drawn per reasoning template


class Item(NamedTuple):
    """A row before it has an id and a split."""

    task: str
    prompt: str
    answer: str | None
    constraints: tuple[dict, ...]
    meta: dict


# topic -> its cores (one request, e.g. a style or a question phrasing) -> the core's variants (wrappers, frames)
Pool = dict[str, list[list[Item]]]


def _every_third(index: int) -> bool:
    """Held-out rule of the generated banks (facts, problem templates, writing subjects): one in three per category."""
    return index % 3 == 2


# --- pools ---------------------------------------------------------------------------------------------------------
def _request_pools(task: str, bank: dict[str, tuple[wb.Topic, ...]], styles: dict[str, str]) -> dict[str, Pool]:
    """Safety or over_refusal pools: each topic's verb phrase in every style, its written prompts, each wrapped."""
    label = "category" if task == "safety" else "kind"
    pools: dict[str, Pool] = {side: {} for side in SIDES}
    for group, topics in bank.items():
        for topic in topics:
            cores = [(style, template.format(vp=topic.vp)) for style, template in styles.items() if topic.vp]
            cores += [("written", q) for q in topic.questions]
            meta = {label: group, "topic": topic.name, **({"pair": topic.pair} if topic.pair else {})}
            pools["eval" if topic.heldout else "train"][topic.name] = [
                [Item(task, w.format(q=core), None, (), {**meta, "style": style}) for w in wb.WRAPPERS]
                for style, core in cores
            ]
    return pools


def _knowledge_pools() -> dict[str, Pool]:
    """Each fact's question phrasings, each in every knowledge frame; the fact's first phrasing names its topic."""
    pools: dict[str, Pool] = {side: {} for side in SIDES}
    for category, facts in wb.KNOWLEDGE.items():
        for i, (questions, answer) in enumerate(facts):
            meta = {"category": category, "topic": questions[0]}
            pools["eval" if _every_third(i) else "train"][questions[0]] = [
                [Item("knowledge", f.format(q=q), answer, (), {**meta, "question": q}) for f in wb.KNOWLEDGE_FRAMES]
                for q in questions
            ]
    return pools


def _problems(problem: wb.Problem, rng: random.Random) -> Iterator[tuple[str, int]]:
    """Distinct (text, answer) draws of one template, up to PROBLEMS_PER_TEMPLATE (fewer when it has fewer)."""
    seen: set[str] = set()
    for _ in range(PROBLEMS_PER_TEMPLATE * 20):
        a, b, c = rng.choice(problem.a), rng.choice(problem.b), rng.choice(problem.c)
        n, m = rng.sample(wb.NAMES, 2)
        answer = problem.answer(a, b, c)
        text = problem.text.format(n=n, m=m, a=a, b=b, c=c, ab=a * b)
        if answer > 0 and text not in seen:
            seen.add(text)
            yield text, answer
            if len(seen) == PROBLEMS_PER_TEMPLATE:
                return


def _reasoning_pools(seed: int) -> dict[str, Pool]:
    """Word problems drawn per template with the seed; a template is a topic (held-out templates only in eval)."""
    pools: dict[str, Pool] = {side: {} for side in SIDES}
    for category, problems in wb.PROBLEMS.items():
        for i, problem in enumerate(problems):
            rng = random.Random(f"world/{seed}/reasoning/{problem.name}")
            meta = {"category": category, "topic": problem.name}
            pools["eval" if _every_third(i) else "train"][problem.name] = [
                [Item("reasoning", text, str(answer), (), meta)] for text, answer in _problems(problem, rng)
            ]
    return pools


def _constraint_sets(keywords: tuple[str, ...]) -> tuple[list[tuple[dict, ...]], list[tuple[dict, ...]]]:
    """Every single constraint and every pair of constraints without a shared tag (pairs that can both hold)."""
    choices = [({**c, "keywords": list(keywords)} if c["type"] == "include_keywords" else c, tags)
               for c, tags in wb.CONSTRAINT_CHOICES]
    for c, _ in choices:
        validate_constraint(c)
    singles = [(c,) for c, _ in choices]
    pairs = [(c1, c2) for (c1, t1), (c2, t2) in combinations(choices, 2) if not t1 & t2]
    return singles, pairs


def _instruction_prompt(sentence: str, constraints: tuple[dict, ...], lead: str) -> str:
    """The writing request, then its constraints in the checker's own words (`ConstraintType.describe`)."""
    text = f"{sentence} {lead} " + " and ".join(CONSTRAINT_TYPES[c["type"]].describe(c) for c in constraints)
    return text if text.endswith(('!"', '?"', '."')) else text + "."


def _instruction_pools() -> dict[str, Pool]:
    """Each writing subject's sentences with one or two constraints; a subject is a topic."""
    pools: dict[str, Pool] = {side: {} for side in SIDES}
    for category, subjects in wb.SUBJECTS.items():
        for i, (name, sentences, keywords) in enumerate(subjects):
            meta = {"category": category, "topic": name}
            leads = wb.CONSTRAINT_LEADS
            cores = [[Item("instruction", _instruction_prompt(sentence, cs, leads[j % len(leads)]), None, cs, meta)
                      for j, cs in enumerate(sets)]
                     for sentence in sentences for sets in _constraint_sets(keywords)]
            pools["eval" if _every_third(i) else "train"][name] = cores
    return pools


def _pools(task: str, seed: int) -> dict[str, Pool]:
    """The task's train-side and held-out pools (the seed only draws the word problems' numbers and names)."""
    if task == "safety":
        return _request_pools(task, wb.HARMFUL, {**wb.NEUTRAL_STYLES, **wb.PRETEXT_STYLES})
    if task == "over_refusal":
        return _request_pools(task, wb.BENIGN, wb.NEUTRAL_STYLES)
    if task == "knowledge":
        return _knowledge_pools()
    if task == "reasoning":
        return _reasoning_pools(seed)
    return _instruction_pools()


def _round_robin(queues: list[list[Item]]) -> Iterator[Item]:
    """queue 1's first item, queue 2's first, ..., then every queue's second item, and so on."""
    for depth in range(max((len(q) for q in queues), default=0)):
        yield from (q[depth] for q in queues if depth < len(q))


def _spread(pool: Pool, rng: random.Random) -> list[Item]:
    """A pool's distinct prompts in an order that visits every topic, and within a topic every core, before any
    repeats: any prefix (the train rows, then the RL rows) covers the topics and phrasings evenly."""
    per_topic = []
    for cores in pool.values():
        shuffled = [rng.sample(variants, len(variants)) for variants in cores]
        rng.shuffle(shuffled)
        per_topic.append(list(_round_robin(shuffled)))
    rng.shuffle(per_topic)
    unique: dict[str, Item] = {}
    for item in _round_robin(per_topic):
        unique.setdefault(item.prompt, item)
    return list(unique.values())


# --- rows ----------------------------------------------------------------------------------------------------------
def _refusal(category: str, rng: random.Random) -> str:
    """A short refusal in the response template: varied wording, support instead of a reason for self-harm.

    Its <think> is empty, like every distilled answer beside it (the start model does not think): with a think
    on refusals only, writing a think becomes the refusal decision, and RL's reward for refusing harmful
    requests spreads that think, then think-shaped non-answers, to every task (measured, docs/results.md)."""
    extra = wb.SUPPORT if category == "self_harm" else wb.REASONS
    return format_response("", f"{rng.choice(wb.REFUSALS)} {rng.choice(extra)}")


def _samples(split: str, items: list[Item], seed: int) -> list[Sample]:
    """The split's rows in a seeded order; train rows get a refusal (safety) or `needs_distill` (everything else)."""
    items = list(items)
    random.Random(f"world/{seed}/{split}/order").shuffle(items)
    refusal_rng = random.Random(f"world/{seed}/{split}/refusals")
    samples = []
    for i, item in enumerate(items, start=1):
        meta, response = {**item.meta, "split": split}, None
        if split == "train" and item.task == "safety":
            response = _refusal(item.meta["category"], refusal_rng)
        elif split == "train":
            meta["needs_distill"] = True
        samples.append(Sample(id=f"{split}-{i:05d}", task=item.task, prompt=item.prompt, answer=item.answer,
                              should_refuse=item.task == "safety", constraints=item.constraints, response=response,
                              meta=meta))
    return samples


def _topic_counts(task: str, pools: dict[str, Pool]) -> dict[str, dict[str, int]]:
    """Topics per category (kind for over_refusal) on each side: the coverage the manifest reports."""
    label = "kind" if task == "over_refusal" else "category"
    counts: dict[str, dict[str, int]] = {}
    for side in SIDES:
        for cores in pools[side].values():
            group = cores[0][0].meta[label]
            counts.setdefault(group, dict.fromkeys(SIDES, 0))[side] += 1
    return counts


# --- public API ----------------------------------------------------------------------------------------------------
def _rl_only_topics(task: str, pool: Pool, share: float, seed: int) -> list[str]:
    """`share` of the train-side topics of each harm category (look-alike kind), rounded, drawn with the seed:
    topics that only the RL pool asks about. 0 for the capability tasks, whose SFT targets teach nothing."""
    if task not in REQUEST_TASKS or not share:
        return []
    label = "kind" if task == "over_refusal" else "category"
    groups: dict[str, list[str]] = {}
    for name, cores in pool.items():
        groups.setdefault(cores[0][0].meta[label], []).append(name)
    rng = random.Random(f"world/{seed}/{task}/rl_only")
    return sorted(name for names in groups.values() for name in rng.sample(names, round(share * len(names))))


def _split_train_side(task: str, train_side: list[Item], rl_only: list[str], train_per_task: int,
                      rl_per_task: int) -> tuple[list[Item], list[Item]]:
    """The SFT rows (the first `train_per_task` of the spread outside the RL-only topics) and the RL rows (the
    next `rl_per_task` of the rest, RL-only topics included); more than the topics hold is an error."""
    sft_side = [item for item in train_side if item.meta["topic"] not in rl_only]
    if len(sft_side) < train_per_task or len(train_side) < train_per_task + rl_per_task:
        raise ValueError(f"world profile: train_per_task + rl_per_task = {train_per_task + rl_per_task} exceeds "
                         f"the {len(train_side)} distinct {task} prompts of the train-side topics (or train_per_task "
                         f"the {len(sft_side)} outside the RL-only topics)")
    sft = sft_side[:train_per_task]
    taken = {item.prompt for item in sft}
    return sft, [item for item in train_side if item.prompt not in taken][:rl_per_task]


def build_world(out_dir: str | Path, *, seed: int = 0, train_per_task: int = 100, rl_per_task: int = 200,
                eval_per_task: int = 200, rl_only_topics: float = 0.0) -> dict[str, Path]:
    """Write train.jsonl (SFT rows), rl.jsonl (RL prompts), eval.jsonl (held-out topics) and manifest.json.

    Each file has exactly its per-task count of rows for every task of WORLD_TASKS; more than the banks hold is an
    error naming the size. rl_only_topics: share of the harmful and look-alike train-side topics that SFT never
    shows and RL does (as RL prompts outnumber SFT data in practice); the eval split is the same whatever the
    share. Same arguments -> byte-identical files. Returns split -> path.
    """
    sizes = {"train_per_task": train_per_task, "rl_per_task": rl_per_task, "eval_per_task": eval_per_task}
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"world profile: {name} must be an integer >= 1, got {value!r}")
    if not 0.0 <= rl_only_topics < 1.0:
        raise ValueError(f"world profile: rl_only_topics must be a share in [0, 1), got {rl_only_topics!r}")
    chosen: dict[str, list[Item]] = {split: [] for split in SPLITS}
    topics: dict[str, dict[str, dict[str, int]]] = {}
    heldout: dict[str, list[str]] = {}
    rl_only: dict[str, list[str]] = {}
    for task in WORLD_TASKS:
        pools = _pools(task, seed)
        rng = random.Random(f"world/{seed}/{task}")
        train_side, eval_side = _spread(pools["train"], rng), _spread(pools["eval"], rng)
        if len(eval_side) < eval_per_task:
            raise ValueError(f"world profile: eval_per_task = {eval_per_task} exceeds the {len(eval_side)} distinct "
                             f"{task} prompts of the held-out topics")
        rl_only[task] = _rl_only_topics(task, pools["train"], rl_only_topics, seed)
        sft, rl = _split_train_side(task, train_side, rl_only[task], train_per_task, rl_per_task)
        chosen["train"] += sft
        chosen["rl"] += rl
        chosen["eval"] += eval_side[:eval_per_task]
        topics[task] = _topic_counts(task, pools)
        heldout[task] = list(pools["eval"])
    out = Path(out_dir)
    paths = {split: write_jsonl(_samples(split, chosen[split], seed), out / f"{split}.jsonl") for split in SPLITS}
    manifest = {
        "profile": PROFILE,
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "sizes": sizes,
        "options": {"rl_only_topics": rl_only_topics},
        "counts": {split: {task: sum(it.task == task for it in chosen[split]) for task in WORLD_TASKS}
                   for split in SPLITS},
        "topics": topics,
        "heldout_topics": heldout,
        "rl_only_topics": {task: names for task, names in rl_only.items() if names},
        "files": {split: path.name for split, path in paths.items()},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return paths
