"""2-D axial RoPE for grids (RoPE-Mixed/axial form of Heo et al. 2024, "Rotary Position Embedding for Vision
Transformer", arXiv 2403.13298; RoFormer's rotation, Su et al. 2021, per axis).

A token at grid position ``(y, x)``: the first half of the rotary pairs rotate by ``y·θ_i``, the second half
by ``x·θ_i``, with ``θ_i = base^(−4i/d)``, ``i = 0 .. d/4 − 1`` (each axis gets ``d/2`` dimensions). Then
``q·k`` depends only on ``(y_q − y_k, x_q − x_k)``: shifting every position by one constant vector changes
nothing. Positions are ``[T, 2]`` or ``[B, T, 2]``; layouts as for :mod:`ropescope.encodings.rope`.
"""

from __future__ import annotations

from typing import Any

import torch

from ropescope.encodings.base import PositionalEncoding, grid_positions, heads_first
from ropescope.encodings.rope import apply_rotary, rotary_angles
from ropescope.errors import RopescopeInputError
from ropescope.spectrum import default_inv_freq


class AxialRotaryEncoding(PositionalEncoding):
    """RoPE along each grid axis on its own slice of the pairs."""

    kind = "rotary"

    def __init__(
        self,
        head_dim: int,
        base: float = 10_000.0,
        interleaved: bool = False,
        angle_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if head_dim <= 0 or head_dim % 4:
            raise RopescopeInputError(
                "axial_rope head_dim", f"is {head_dim}", "use a multiple of 4 (two axes, pairs of dimensions)"
            )
        self.shift_invariant = True
        self.position_axes = 2
        self.interleaved, self.angle_dtype = interleaved, angle_dtype
        self.register_buffer("inv_freq", torch.from_numpy(default_inv_freq(base, head_dim // 2)), persistent=False)

    def angles(self, positions: torch.Tensor) -> torch.Tensor:
        """``[..., T, head_dim/2]``: ``y·θ`` for the first half of the pairs, ``x·θ`` for the second."""
        positions = grid_positions(positions, 2, "axial_rope")
        rows = rotary_angles(positions[..., 0], self.inv_freq, self.angle_dtype)
        columns = rotary_angles(positions[..., 1], self.inv_freq, self.angle_dtype)
        return torch.cat((rows, columns), dim=-1)

    def rotate(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        positions: torch.Tensor,
        hidden: torch.Tensor | None = None,
        carry: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        angles = heads_first(self.angles(positions))
        cos, sin = angles.cos().to(q.dtype), angles.sin().to(q.dtype)
        return apply_rotary(q, cos, sin, self.interleaved), apply_rotary(k, cos, sin, self.interleaved), carry
