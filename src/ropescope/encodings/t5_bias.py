"""T5 relative position bias (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified
Text-to-Text Transformer", arXiv 1910.10683, §2.1).

Each head learns one scalar per bucket of the relative position ``r = key − query``, added to the logit.
Bucketing with ``B`` buckets and ``max_distance`` ``D``:

* bidirectional: half the buckets for ``r > 0`` (offset ``B/2``), half for ``r ≤ 0``; then ``n = |r|`` and
  ``B ← B/2``; causal: ``n = max(−r, 0)`` (future keys share bucket 0, masked anyway);
* with ``E = B/2`` exact buckets: ``n < E`` → bucket ``n``;
  else ``E + ⌊ln(n/E) / ln(D/E) · (B − E)⌋``, capped at ``B − 1`` (logarithmic bins up to ``D``, one bin past it).

Depends only on ``key − query``: shift invariant.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ropescope.encodings.base import PositionalEncoding, integer_positions
from ropescope.errors import RopescopeInputError


def relative_position_bucket(
    relative: torch.Tensor, bidirectional: bool = True, num_buckets: int = 32, max_distance: int = 128
) -> torch.Tensor:
    """The T5 bucket of each relative position ``key − query`` (integer tensor, any shape)."""
    if bidirectional:
        num_buckets //= 2
        offset = (relative > 0).long() * num_buckets
        distance = relative.abs()
    else:
        offset = torch.zeros_like(relative)
        distance = (-relative).clamp(min=0)
    exact = num_buckets // 2
    log_fraction = torch.log(distance.double().clamp(min=1) / exact) / math.log(max_distance / exact)
    far = (exact + (log_fraction * (num_buckets - exact)).long()).clamp(max=num_buckets - 1)
    return offset + torch.where(distance < exact, distance, far)


class T5RelativeBias(PositionalEncoding):
    """Learned per-head bias over bucketed relative positions (``bidirectional=False`` for a decoder)."""

    kind = "bias"

    def __init__(
        self, num_heads: int, num_buckets: int = 32, max_distance: int = 128, bidirectional: bool = False
    ) -> None:
        super().__init__()
        minimum = 4 if bidirectional else 2
        if num_buckets < minimum or num_buckets % minimum:
            raise RopescopeInputError(
                "t5_bias num_buckets", f"is {num_buckets}", f"use a multiple of {minimum} (32 in T5)"
            )
        if max_distance <= num_buckets // minimum:
            raise RopescopeInputError(
                "t5_bias max_distance", f"is {max_distance}, not above the exact range", "use e.g. 128 (T5)"
            )
        self.shift_invariant = True
        self.num_buckets, self.max_distance, self.bidirectional = num_buckets, max_distance, bidirectional
        self.table = nn.Embedding(num_buckets, num_heads)
        nn.init.normal_(self.table.weight, std=0.02)

    def attention_bias(
        self, q: torch.Tensor, query_positions: torch.Tensor, key_positions: torch.Tensor
    ) -> torch.Tensor:
        queries = integer_positions(query_positions, "t5_bias query")
        keys = integer_positions(key_positions, "t5_bias key")
        relative = keys.unsqueeze(-2) - queries.unsqueeze(-1)
        buckets = relative_position_bucket(relative, self.bidirectional, self.num_buckets, self.max_distance)
        bias = self.table(buckets).movedim(-1, -3)
        return bias if bias.dim() == 4 else bias.unsqueeze(0)
