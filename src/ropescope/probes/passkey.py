"""Passkey retrieval by context length and needle depth (Mohtashami & Jaggi 2023, Landmark Attention,
arXiv 2305.16300; reused by Chen et al. 2023, Position Interpolation, arXiv 2306.15595).

The prompt keeps that test's five parts, joined by newlines: the task line, filler, the needle
``The pass key is K. Remember it. K is the pass key.``, more filler, and ``What is the pass key? The pass key is``.
The filler is the test's block of five short sentences repeated. Here the prompt is assembled in tokens so it is
exactly ``length`` tokens long: the filler budget is what the fixed parts leave, and a fraction ``depth`` of it
goes before the needle (0 = right after the task line, 1 = right before the question). Keys are random 5-digit
numbers drawn from a seeded generator; the model decodes greedily and a trial succeeds when the first integer in
its continuation equals the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

TASK = (
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
    "I will quiz you about the important information there."
)
FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
QUESTION = "What is the pass key? The pass key is"
NEW_TOKENS = 8


def needle(key: int) -> str:
    return f"The pass key is {key}. Remember it. {key} is the pass key."


@dataclass(frozen=True)
class PasskeyTrial:
    length: int
    depth: float
    key: int
    answer: str
    correct: bool


def _encode(tokenizer: Any, text: str, special: bool = False) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def minimum_length(tokenizer: Any) -> int:
    """Tokens the fixed parts of a prompt take (with a 5-digit key), before any filler."""
    return len(passkey_prompt(tokenizer, 0, 0.0, 99999))


def passkey_prompt(tokenizer: Any, length: int, depth: float, key: int) -> list[int]:
    """Token ids of a prompt of exactly ``length`` tokens (or the bare fixed parts when ``length`` is smaller)."""
    head = _encode(tokenizer, TASK + "\n", special=True)
    middle = _encode(tokenizer, "\n" + needle(key) + "\n")
    tail = question_ids(tokenizer)
    budget = max(0, length - len(head) - len(middle) - len(tail))
    block = _encode(tokenizer, " " + FILLER)
    filler = (block * (budget // len(block) + 1))[:budget]
    before = round(depth * budget)
    return head + filler[:before] + middle + filler[before:] + tail


def run_trial(model: Any, tokenizer: Any, length: int, depth: float, key: int) -> PasskeyTrial:
    """One greedy retrieval at ``length`` tokens with the needle at ``depth``."""
    ids = torch.tensor([passkey_prompt(tokenizer, length, depth, key)])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.no_grad():
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=pad
        )
    answer = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    return PasskeyTrial(length, depth, key, answer, retrieved(answer, key))


def retrieved(answer: str, key: int) -> bool:
    """A trial succeeds when the first integer in the continuation equals the key."""
    found = re.search(r"\d+", answer)
    return found is not None and int(found.group()) == key


def question_ids(tokenizer: Any) -> list[int]:
    """The prompt's last part, the question, in tokens (what a compressed cache is asked after compression)."""
    return _encode(tokenizer, "\n" + QUESTION)


def cell_keys(seed: int, length: int, depth_index: int, trials: int) -> list[int]:
    """The seeded 5-digit keys of one (length, depth) cell; the same for every model and run."""
    rng = np.random.default_rng([seed, length, depth_index])
    return rng.integers(10_000, 100_000, size=trials).tolist()
