"""Sinusoidal absolute positions (Vaswani et al. 2017, "Attention Is All You Need", arXiv 1706.03762, §3.5).

For position ``p`` and ``i = 0 .. d/2 − 1``::

    PE[p, 2i] = sin(p / base^(2i/d)),   PE[p, 2i+1] = cos(p / base^(2i/d)),   base = 10000

added to the token embeddings. The vectors are absolute, so shifting every position changes the model's
input: not shift invariant. Computed in float32 (float64 on request) with autocast off.
"""

from __future__ import annotations

import torch

from ropescope.encodings.base import PositionalEncoding, sequence_positions
from ropescope.encodings.rope import rotary_angles
from ropescope.errors import RopescopeInputError


class SinusoidalEncoding(PositionalEncoding):
    """Fixed sin/cos position vectors of width ``d_model``."""

    kind = "absolute"

    def __init__(self, d_model: int, base: float = 10_000.0, angle_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if d_model <= 0 or d_model % 2:
            raise RopescopeInputError("sinusoidal d_model", f"is {d_model}", "use an even positive width")
        self.shift_invariant = False
        self.angle_dtype = angle_dtype
        exponents = torch.arange(0, d_model, 2, dtype=torch.float64) / d_model
        self.register_buffer("inv_freq", float(base) ** -exponents, persistent=False)

    def embed(self, positions: torch.Tensor) -> torch.Tensor:
        angles = rotary_angles(sequence_positions(positions, "sinusoidal"), self.inv_freq, self.angle_dtype)
        return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)
