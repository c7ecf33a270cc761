"""ALiBi, attention with linear biases (Press et al. 2022, "Train Short, Test Long", arXiv 2108.12409).

Head ``h`` adds ``−m_h·|i − j|`` to the logit of query ``i`` and key ``j`` (for a causal model ``m_h·(j − i)``).
Slopes for ``n`` heads, ``n`` a power of two: the geometric sequence ``m_h = 2^(−8h/n)``, ``h = 1..n``.
Otherwise (the paper's rule, §3 and its code): take the slopes for the largest power of two ``p < n``, then
append every other slope of the ``2p`` sequence (``2^(−8/(2p)·(2k−1))``, ``k = 1..n−p``).
Depends only on ``i − j``: shift invariant.
"""

from __future__ import annotations

import math

import torch

from ropescope.encodings.base import PositionalEncoding, sequence_positions
from ropescope.errors import RopescopeInputError


def alibi_slopes(num_heads: int) -> list[float]:
    """The paper's per-head slopes."""
    if num_heads <= 0:
        raise RopescopeInputError("alibi num_heads", f"is {num_heads}", "use a positive number of heads")

    def geometric(n: int) -> list[float]:
        return [2.0 ** (-8.0 * h / n) for h in range(1, n + 1)]

    power = 2 ** math.floor(math.log2(num_heads))
    return geometric(power) + geometric(2 * power)[0::2][: num_heads - power]


class AlibiBias(PositionalEncoding):
    """Fixed linear distance penalty with the paper's head slopes."""

    kind = "bias"

    def __init__(self, num_heads: int) -> None:
        super().__init__()
        self.shift_invariant = True
        self.register_buffer("slopes", torch.tensor(alibi_slopes(num_heads), dtype=torch.float32), persistent=False)

    def attention_bias(
        self, q: torch.Tensor, query_positions: torch.Tensor, key_positions: torch.Tensor
    ) -> torch.Tensor:
        queries = sequence_positions(query_positions, "alibi query").to(torch.float32)
        keys = sequence_positions(key_positions, "alibi key").to(torch.float32)
        distance = (queries.unsqueeze(-1) - keys.unsqueeze(-2)).abs()
        bias = -self.slopes.view(-1, 1, 1) * distance.unsqueeze(-3)
        return bias if bias.dim() == 4 else bias.unsqueeze(0)
