"""The multi-document retrieval task that measures position bias, generated from a seed.

A trial is K short documents, each stating one key–value fact (``The password of Anna's box is apple.``), and
a question about one key. The documents are shown in K orders, the gold document at slot 0, 1, …, K−1 and the
others in one fixed random order around it, so the orders differ only in where documents sit. The answer is
the model's greedy next token after ``Answer: The password of Anna's box is``; values are words the tokenizer
writes as one token (with the leading space), so greedy exact match of the value is that token being the
value's (Lost-in-the-Middle, Liu et al. 2024, arXiv 2307.03172, moves the gold document the same way).

* accuracy by position: the fraction of trials answered correctly with the gold document at slot g;
* order sensitivity: the fraction of pairs of orders of the same trial whose answers differ, averaged over
  trials (0 for a model whose answer ignores the order);
* paired gain: two interventions answer the same trials, so the gain of one over the other is the mean of their
  per-trial accuracy differences d_t, with standard error ``sd(d) / √n`` (sample standard deviation, n trials).

A document ends with its newline, so documents tile one token range and can be permuted as blocks.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ropescope.errors import RopescopeInputError

PREFIX = "Below are some facts. Read them, then answer the question.\n\n"
NAMES = (
    "Anna", "Ben", "Carla", "David", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jack", "Kate", "Leo", "Mia",
    "Noah", "Olga", "Paul", "Rosa", "Sam", "Tina", "Victor", "Wendy", "Omar", "Lucy", "Peter", "Nina",
)  # fmt: skip
THINGS = ("box", "car", "house", "bag", "boat", "phone", "safe", "bike", "laptop", "locker")
VALUES = (
    "apple", "river", "tiger", "piano", "candle", "silver", "rocket", "garden", "pepper", "violet", "marble",
    "falcon", "orange", "dragon", "castle", "winter", "summer", "forest", "ocean", "mountain", "banana", "lemon",
    "coffee", "guitar", "butter", "rabbit", "monkey", "spider", "hammer", "pencil", "bottle", "window", "shadow",
    "thunder", "crystal", "diamond", "planet", "island", "desert", "bridge",
)  # fmt: skip


@dataclass(frozen=True)
class Trial:
    """One set of documents (in generation order), the question about ``documents[gold]`` and its answer."""

    documents: tuple[str, ...]
    question: str
    answer: str  # the value, with its leading space
    gold: int
    others: tuple[int, ...]  # the order of the other documents around the gold one

    def order(self, slot: int) -> tuple[int, ...]:
        """Document indices in prompt order with the gold document at ``slot``."""
        rest = list(self.others)
        return (*rest[:slot], self.gold, *rest[slot:])


def single_token_values(tokenizer: Any) -> tuple[str, ...]:
    """The values the tokenizer writes as one token after a space."""
    return tuple(v for v in VALUES if len(tokenizer(" " + v, add_special_tokens=False)["input_ids"]) == 1)


def make_trials(count: int, documents: int, seed: int, values: Sequence[str] = VALUES) -> list[Trial]:
    """``count`` trials of ``documents`` facts each, reproducibly from ``seed``."""
    if documents < 2:
        raise RopescopeInputError("--documents", f"K = {documents}", "give K ≥ 2 documents")
    keys = [(name, thing) for name in NAMES for thing in THINGS]
    if documents > min(len(keys), len(values)):
        limit = min(len(keys), len(values))
        raise RopescopeInputError(
            "--documents", f"K = {documents} exceeds the {limit} distinct values", f"use K ≤ {limit}"
        )
    generator = random.Random(seed)
    trials = []
    for _ in range(count):
        chosen = generator.sample(keys, documents)
        answers = generator.sample(list(values), documents)
        texts = tuple(
            f"The password of {name}'s {thing} is {value}.\n"
            for (name, thing), value in zip(chosen, answers, strict=True)
        )
        gold = generator.randrange(documents)
        others = [d for d in range(documents) if d != gold]
        generator.shuffle(others)
        name, thing = chosen[gold]
        question = f"\nQuestion: What is the password of {name}'s {thing}?\nAnswer: The password of {name}'s {thing} is"
        trials.append(Trial(texts, question, " " + answers[gold], gold, tuple(others)))
    return trials


def encode(tokenizer: Any, trial: Trial, order: Sequence[int]) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of the prompt with the documents in ``order``, and each document's (start, stop)."""
    ids = list(tokenizer(PREFIX, add_special_tokens=True)["input_ids"])
    spans = []
    for d in order:
        piece = tokenizer(trial.documents[d], add_special_tokens=False)["input_ids"]
        spans.append((len(ids), len(ids) + len(piece)))
        ids += piece
    ids += tokenizer(trial.question, add_special_tokens=False)["input_ids"]
    return ids, spans


def order_sensitivity(answers: Sequence[int]) -> float:
    """The fraction of pairs of orders whose answers differ."""
    pairs = [(a, b) for i, a in enumerate(answers) for b in answers[i + 1 :]]
    return sum(a != b for a, b in pairs) / len(pairs)


def paired_gain(accuracy: Sequence[float], baseline: Sequence[float]) -> tuple[float, float] | None:
    """Mean and standard error of ``accuracy[t] − baseline[t]`` over the trials t; None for fewer than two trials
    or lists of different lengths."""
    if len(accuracy) != len(baseline) or len(accuracy) < 2:
        return None
    differences = [a - b for a, b in zip(accuracy, baseline, strict=True)]
    mean = sum(differences) / len(differences)
    variance = sum((d - mean) ** 2 for d in differences) / (len(differences) - 1)
    return mean, (variance / len(differences)) ** 0.5
