"""Learned absolute position embeddings (Gehring et al. 2017, "Convolutional Sequence to Sequence Learning",
arXiv 1705.03122; the GPT/BERT table).

A trainable table ``E ∈ R^{max_positions × d_model}``; the vector ``E[p]`` is added to the token at position
``p``. Positions outside ``[0, max_positions)`` have no row, so they raise a clear error naming the limit.
Absolute, hence not shift invariant.
"""

from __future__ import annotations

import torch
from torch import nn

from ropescope.encodings.base import PositionalEncoding, sequence_positions
from ropescope.errors import RopescopeInputError


class LearnedAbsoluteEncoding(PositionalEncoding):
    """A trainable row per position, initialised N(0, 0.02²) as in GPT-2."""

    kind = "absolute"

    def __init__(self, d_model: int, max_positions: int = 2048) -> None:
        super().__init__()
        if max_positions <= 0:
            raise RopescopeInputError("learned max_positions", f"is {max_positions}", "use a positive table size")
        self.shift_invariant = False
        self.max_positions = int(max_positions)
        self.table = nn.Embedding(self.max_positions, d_model)
        nn.init.normal_(self.table.weight, std=0.02)

    def embed(self, positions: torch.Tensor) -> torch.Tensor:
        positions = sequence_positions(positions, "learned")
        if positions.is_floating_point():
            raise RopescopeInputError("learned positions", "are not integers", "pass integer positions")
        low, high = int(positions.min()), int(positions.max())
        if low < 0 or high >= self.max_positions:
            raise RopescopeInputError(
                "learned positions",
                f"span {low}..{high}, outside the table of positions 0..{self.max_positions - 1}",
                f"keep positions below {self.max_positions} or build with a larger max_positions",
            )
        return self.table(positions)
