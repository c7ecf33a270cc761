"""xPos (Sun et al. 2022, "A Length-Extrapolatable Transformer", arXiv 2212.10554, §3.2).

RoPE (base ``b``) plus an exponential decay per pair: with ``ζ_i = (2i/d + γ)/(1 + γ)`` (``γ = 0.4``) and
``scale_base`` ``S`` (512), the query at position ``n`` is rotated and multiplied by ``ζ_i^(n/S)``, the key at
``m`` by ``ζ_i^(−m/S)``; so the logit of pair ``i`` carries ``ζ_i^((n−m)/S)`` — a decay in the relative
distance only, hence shift invariant. Scales are computed in ``angle_dtype`` from absolute positions (keys are
cached already scaled); with float32 they stay finite up to roughly ``S·87/ln(1/ζ_0) ≈ 35 000`` positions for the
default ``γ``, which is the reference implementation's reason for centring positions within one forward pass.
"""

from __future__ import annotations

from typing import Any

import torch

from ropescope.encodings.base import PositionalEncoding, heads_first, sequence_positions
from ropescope.encodings.rope import apply_rotary, rotary_angles
from ropescope.errors import RopescopeInputError
from ropescope.spectrum import default_inv_freq


class XPosEncoding(PositionalEncoding):
    """RoPE with xPos's per-pair exponential scale on queries (×ζ^(n/S)) and keys (×ζ^(−m/S))."""

    kind = "rotary"

    def __init__(
        self,
        head_dim: int,
        base: float = 10_000.0,
        gamma: float = 0.4,
        scale_base: float = 512.0,
        interleaved: bool = False,
        angle_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if head_dim <= 0 or head_dim % 2:
            raise RopescopeInputError("xpos head_dim", f"is {head_dim}", "use an even positive head dimension")
        if gamma <= 0 or scale_base <= 0:
            raise RopescopeInputError("xpos gamma/scale_base", "must be positive", "use gamma 0.4, scale_base 512")
        self.shift_invariant = True
        self.interleaved, self.angle_dtype, self.scale_base = interleaved, angle_dtype, float(scale_base)
        self.register_buffer("inv_freq", torch.from_numpy(default_inv_freq(base, head_dim)), persistent=False)
        zeta = (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim + gamma) / (1 + gamma)
        self.register_buffer("zeta", zeta, persistent=False)

    def cos_sin_scale(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``cos(nθ)``, ``sin(nθ)`` and ``ζ^(n/S)``, each ``[..., T, head_dim/2]`` in ``angle_dtype``."""
        angles = rotary_angles(positions, self.inv_freq, self.angle_dtype)
        decay = rotary_angles(positions, self.zeta.log() / self.scale_base, self.angle_dtype).exp()
        return angles.cos(), angles.sin(), decay

    def rotate(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        positions: torch.Tensor,
        hidden: torch.Tensor | None = None,
        carry: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        cos, sin, decay = self.cos_sin_scale(sequence_positions(positions, "xpos"))
        cos, sin, decay = (heads_first(t) for t in (cos, sin, decay))
        q = apply_rotary(q, (cos * decay).to(q.dtype), (sin * decay).to(q.dtype), self.interleaved)
        k = apply_rotary(k, (cos / decay).to(k.dtype), (sin / decay).to(k.dtype), self.interleaved)
        return q, k, carry
