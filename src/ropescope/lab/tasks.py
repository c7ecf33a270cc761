"""Synthetic tasks for length generalisation, generated from a seed, and the bundled-text language model task.

Every algorithmic task maps an input of n symbols to a target; a sequence is ``input SEP target EOS`` and the
model is trained on the target tokens only. Exact match under teacher forcing (every target token is the argmax
given the true prefix) equals exact match of greedy decoding. The tasks follow Kazemnejad et al. 2023 ("The
Impact of Positional Encoding on Length Generalization in Transformers", arXiv 2305.19466):

* ``copy``: the n symbols; ``reverse``: them reversed; ``sort``: them in ascending order;
* ``sum_mod10``: one digit, the sum of n digits mod 10; ``parity``: one bit, the parity of n bits;
* ``addition``: two n-digit numbers and their sum, in the formats of Shen et al. 2023 ("Positional Description
  Matters for Transformers Arithmetic", arXiv 2311.14737): ``addition`` writes them most significant digit
  first (``a+b=c``), ``addition_reversed`` least significant first (operands and sum), ``addition_spaced``
  inserts a random number (0–2) of blank tokens after each operand digit, so a digit's place is not its
  position;
* ``lm``: next-byte prediction on the bundled text (``data/probe_text.txt``); scored by loss per position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

PAD, SEP, EOS, PLUS, BLANK = 0, 1, 2, 3, 4
DIGIT0 = 5  # digits 0–9 are tokens 5–14
VOCAB_SIZE = DIGIT0 + 10
LM_VOCAB_SIZE = 256

Example = tuple[np.ndarray, np.ndarray]  # (input tokens, target tokens)


def _digits(values: np.ndarray) -> np.ndarray:
    return values + DIGIT0


def _copy(rng: np.random.Generator, n: int) -> Example:
    x = rng.integers(0, 10, n)
    return _digits(x), _digits(x)


def _reverse(rng: np.random.Generator, n: int) -> Example:
    x = rng.integers(0, 10, n)
    return _digits(x), _digits(x[::-1])


def _sort(rng: np.random.Generator, n: int) -> Example:
    x = rng.integers(0, 10, n)
    return _digits(x), _digits(np.sort(x))


def _sum_mod10(rng: np.random.Generator, n: int) -> Example:
    x = rng.integers(0, 10, n)
    return _digits(x), _digits(np.array([x.sum() % 10]))


def _parity(rng: np.random.Generator, n: int) -> Example:
    x = rng.integers(0, 2, n)
    return _digits(x), _digits(np.array([x.sum() % 2]))


def _operands(rng: np.random.Generator, n: int) -> tuple[list[int], list[int], list[int]]:
    """Two n-digit numbers (leading digit non-zero unless n = 1) and their sum, most significant digit first."""
    a = [int(rng.integers(1 if n > 1 else 0, 10)), *rng.integers(0, 10, n - 1).tolist()]
    b = [int(rng.integers(1 if n > 1 else 0, 10)), *rng.integers(0, 10, n - 1).tolist()]
    total = int("".join(map(str, a))) + int("".join(map(str, b)))
    return a, b, [int(c) for c in str(total)]


def _addition(rng: np.random.Generator, n: int) -> Example:
    a, b, c = _operands(rng, n)
    return np.array([*_digits(np.array(a)), PLUS, *_digits(np.array(b))]), _digits(np.array(c))


def _addition_reversed(rng: np.random.Generator, n: int) -> Example:
    a, b, c = _operands(rng, n)
    return np.array([*_digits(np.array(a[::-1])), PLUS, *_digits(np.array(b[::-1]))]), _digits(np.array(c[::-1]))


def _spaced(rng: np.random.Generator, digits: list[int]) -> list[int]:
    out: list[int] = []
    for digit in digits:
        out += [digit + DIGIT0] + [BLANK] * int(rng.integers(0, 3))
    return out


def _addition_spaced(rng: np.random.Generator, n: int) -> Example:
    a, b, c = _operands(rng, n)
    return np.array([*_spaced(rng, a), PLUS, *_spaced(rng, b)]), _digits(np.array(c))


TaskFunction = Callable[[np.random.Generator, int], Example]
TASKS: dict[str, TaskFunction] = {
    "copy": _copy,
    "reverse": _reverse,
    "addition": _addition,
    "addition_reversed": _addition_reversed,
    "addition_spaced": _addition_spaced,
    "sort": _sort,
    "sum_mod10": _sum_mod10,
    "parity": _parity,
}
TASK_NAMES = (*TASKS, "lm")


@dataclass(frozen=True)
class Batch:
    """Token ids ``[B, T]`` and a mask of the positions whose next token is scored (the target tokens)."""

    tokens: np.ndarray
    scored: np.ndarray  # bool [B, T-1]: True where tokens[:, t+1] is a target token


def sequence(example: Example) -> np.ndarray:
    """``input SEP target EOS``."""
    source, target = example
    return np.concatenate([source, [SEP], target, [EOS]]).astype(np.int64)


def batch(task: str, rng: np.random.Generator, n: int, size: int) -> Batch:
    """``size`` examples of input length ``n``; for ``lm``, ``size`` windows of ``n`` bytes of the bundled text."""
    if task == "lm":
        text = corpus()
        starts = rng.integers(0, text.size - n, size)
        tokens = np.stack([text[s : s + n] for s in starts])
        return Batch(tokens, np.ones((size, n - 1), dtype=bool))
    examples = [TASKS[task](rng, n) for _ in range(size)]
    lengths = {len(sequence(e)) for e in examples}
    if len(lengths) > 1:  # sums may carry into an extra digit, and spacing varies: pad on the left
        width = max(lengths)
        rows = [np.concatenate([np.full(width - len(sequence(e)), PAD), sequence(e)]) for e in examples]
    else:
        rows = [sequence(e) for e in examples]
    tokens = np.stack(rows).astype(np.int64)
    scored = np.zeros((size, tokens.shape[1] - 1), dtype=bool)
    for row, example in enumerate(examples):
        target = len(example[1]) + 1  # the target tokens and EOS are predicted
        scored[row, -target:] = True
    return Batch(tokens, scored)


def sequence_length(task: str, n: int) -> int:
    """Tokens in the longest example of input length n: ``input SEP target EOS`` (lm: n bytes)."""
    longest = {
        "copy": 2 * n + 2,
        "reverse": 2 * n + 2,
        "sort": 2 * n + 2,
        "sum_mod10": n + 3,
        "parity": n + 3,
        "addition": 3 * n + 4,  # n + 1 + n input, n + 1 digits of sum
        "addition_reversed": 3 * n + 4,
        "addition_spaced": 7 * n + 4,  # up to 2 blanks after each of the 2n operand digits
        "lm": n,
    }
    return longest[task]


def vocab_size(task: str) -> int:
    return LM_VOCAB_SIZE if task == "lm" else VOCAB_SIZE


@cache
def corpus() -> np.ndarray:
    """The bundled prose as bytes (74 KB, original text; provenance in ``data/probe_text.md``)."""
    text = resources.files("ropescope").joinpath("data/probe_text.txt").read_bytes()
    return np.frombuffer(text, dtype=np.uint8).astype(np.int64)
