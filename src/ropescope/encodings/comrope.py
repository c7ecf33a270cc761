"""ComRoPE: rotary embedding with trainable commuting angle matrices (Yu et al. 2025, CVPR, arXiv 2506.03737).

The head dimension is cut into ``m`` blocks of size ``b``. A position ``x ∈ R^N`` (``N`` axes) is encoded by
the block-diagonal rotation ``R(x) = exp(Σ_a x_a·A_a)``, ``A_a = diag(B_{a1}, …, B_{am})`` with skew-symmetric
blocks. The paper's "RoPE equation" ``R(x)ᵀR(y) = R(y − x)`` — so ``q_x·k_y`` depends only on ``y − x`` — holds
iff the ``B_{aj}`` of each block commute pairwise. Two trainable families guarantee it:

* AP (axial partition): ``B_{aj} = P_j − P_jᵀ`` if ``j ≡ a (mod N)``, else 0 — each block serves one axis;
* LD (linearly dependent): ``B_{aj} = θ_{aj}·(P_j − P_jᵀ)`` — one shared skew matrix per block, a trainable
  scalar per axis.

Both make block ``j``'s exponent ``c_j(x)·S_j`` with ``S_j = P_j − P_jᵀ`` and a linear coordinate ``c_j``
(``x_{j mod N}`` for AP, ``Σ_a θ_{aj} x_a`` for LD); ``torch.matrix_exp`` gives the rotation. Each head has its
own ``P``. Initialisation (ours): ``P ~ N(0, init_std²)`` scaled by ``base^(−j/m)`` per block, so blocks start
at RoPE-like spread of speeds, and LD's ``θ`` start at 1. With ``b = 2`` this is RoPE with learned frequencies.
Shift invariant (that is the RoPE equation).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ropescope.encodings.base import PositionalEncoding, grid_positions
from ropescope.errors import RopescopeInputError


class ComRoPE(PositionalEncoding):
    """Shared machinery of the two variants; build ``comrope_ap`` or ``comrope_ld``."""

    kind = "rotary"
    variant: ClassVar[str]

    def __init__(
        self,
        num_heads: int,
        head_dim: int,
        block_size: int = 4,
        num_axes: int = 1,
        init_std: float = 1.0,
        base: float = 10_000.0,
        angle_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if block_size < 2 or head_dim % block_size:
            raise RopescopeInputError(
                f"comrope_{self.variant} block_size",
                f"{block_size} does not divide head_dim {head_dim} (or < 2)",
                "use a block size >= 2 that divides the head dimension",
            )
        if num_axes < 1:
            raise RopescopeInputError(f"comrope_{self.variant} num_axes", f"is {num_axes}", "use 1 or more axes")
        self.shift_invariant = True
        self.position_axes, self.block_size, self.angle_dtype = num_axes, block_size, angle_dtype
        blocks = head_dim // block_size
        spread = float(base) ** (-torch.arange(blocks, dtype=torch.float32) / blocks)
        self.generators = nn.Parameter(
            torch.randn(num_heads, blocks, block_size, block_size) * init_std * spread.view(1, -1, 1, 1)
        )
        self._add_axis_parameters(blocks)

    def _add_axis_parameters(self, blocks: int) -> None:
        """Variant-specific parameters tying blocks to axes (none for AP)."""

    def block_coordinates(self, positions: torch.Tensor) -> torch.Tensor:
        """``c_j(x)`` for every token and block: ``[..., T, blocks]``."""
        raise NotImplementedError

    def rotations(self, positions: torch.Tensor) -> torch.Tensor:
        """``R(x)`` per token, head and block: ``[B or 1, heads, T, blocks, b, b]`` in ``angle_dtype``."""
        positions = grid_positions(positions, self.position_axes, f"comrope_{self.variant}")
        with torch.autocast(device_type=positions.device.type, enabled=False):
            skew = (self.generators - self.generators.transpose(-1, -2)).to(self.angle_dtype)
            coordinates = self.block_coordinates(positions.to(self.angle_dtype))
            if coordinates.dim() == 2:
                coordinates = coordinates.unsqueeze(0)
            exponent = coordinates[:, None, :, :, None, None] * skew[None, :, None]
            return torch.linalg.matrix_exp(exponent)

    def rotate(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        positions: torch.Tensor,
        hidden: torch.Tensor | None = None,
        carry: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        rotation = self.rotations(positions).to(q.dtype)
        with torch.autocast(device_type=q.device.type, enabled=False):  # a matmul: keep it out of autocast
            return _apply_blocks(q, rotation), _apply_blocks(k, rotation), carry


def _apply_blocks(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    blocks = x.unflatten(-1, (rotation.shape[-3], rotation.shape[-1]))
    return (rotation @ blocks.unsqueeze(-1)).squeeze(-1).flatten(-2)


class AxialPartitionComRoPE(ComRoPE):
    """ComRoPE-AP: block ``j`` rotates with axis ``j mod N`` only."""

    variant = "ap"

    def block_coordinates(self, positions: torch.Tensor) -> torch.Tensor:
        blocks = self.generators.shape[1]
        axis_of_block = torch.arange(blocks, device=positions.device) % self.position_axes
        return positions[..., axis_of_block]


class LinearlyDependentComRoPE(ComRoPE):
    """ComRoPE-LD: block ``j`` rotates by ``Σ_a θ_{aj}·x_a`` times its one skew matrix."""

    variant = "ld"

    def _add_axis_parameters(self, blocks: int) -> None:
        self.axis_scales = nn.Parameter(torch.ones(self.position_axes, blocks))

    def block_coordinates(self, positions: torch.Tensor) -> torch.Tensor:
        return positions @ self.axis_scales.to(positions.dtype)
