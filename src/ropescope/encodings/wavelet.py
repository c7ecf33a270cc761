"""Wavelet-based relative positional representation (Oka et al. 2025, ICLR, "Wavelet-based Positional
Representation for Long Context", arXiv 2502.02004).

Like Shaw et al.'s relative representation, the logit of query ``m`` and key ``n`` is
``q_m·(k_n + p_{m−n})/√d``, but ``p`` is not learned: dimension ``j`` of ``p`` is a wavelet at its own scale
``a_j`` and shift ``b_j`` evaluated at the relative distance ``r = m − n``::

    p_r[j] = a_j^(−1/2) · ψ((r − b_j)/a_j),      ψ(t) = (1 − t²)·exp(−t²/2)   (Ricker / Mexican hat)

so the head dimension is spent on several window sizes instead of RoPE's single one. The grid of scales and
shifts is ours: ``S = num_scales`` dyadic scales ``a = 2^0 … 2^(S−1)`` and, for each, ``d/S`` shifts
``b = 0, a, 2a, …``. Beyond the largest window ``p`` vanishes, so the bias fades instead of
forbidding attention. The value-side term of Shaw et al. is not used. Depends only on ``m − n``: shift
invariant. Returned as an additive bias ``q_m·p_{m−n}/√d`` for scaled-dot-product attention.
"""

from __future__ import annotations

import torch

from ropescope.encodings.base import PositionalEncoding, integer_positions
from ropescope.errors import RopescopeInputError


def ricker(t: torch.Tensor) -> torch.Tensor:
    """The Ricker (Mexican-hat) mother wavelet ``(1 − t²)·exp(−t²/2)``."""
    return (1 - t * t) * torch.exp(-0.5 * t * t)


class WaveletBias(PositionalEncoding):
    """Query-dependent bias from Ricker wavelets at ``num_scales`` dyadic scales and evenly spaced shifts."""

    kind = "bias"

    def __init__(self, head_dim: int, num_scales: int = 8) -> None:
        super().__init__()
        if num_scales < 1 or head_dim % num_scales:
            raise RopescopeInputError(
                "wavelet num_scales",
                f"{num_scales} does not divide head_dim {head_dim}",
                "use a number of scales that divides the head dimension (e.g. 8 for 64)",
            )
        self.shift_invariant = True
        shifts_per_scale = head_dim // num_scales
        scale = (2.0 ** torch.arange(num_scales, dtype=torch.float64)).repeat_interleave(shifts_per_scale)
        shift = torch.arange(shifts_per_scale, dtype=torch.float64).repeat(num_scales) * scale
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)

    def representation(self, distance: torch.Tensor) -> torch.Tensor:
        """``p_r`` for each relative distance ``r``: shape ``[..., head_dim]`` (float64)."""
        r = distance.to(torch.float64).unsqueeze(-1)
        return ricker((r - self.shift) / self.scale) / self.scale.sqrt()

    def attention_bias(
        self, q: torch.Tensor, query_positions: torch.Tensor, key_positions: torch.Tensor
    ) -> torch.Tensor:
        queries = integer_positions(query_positions, "wavelet query")
        keys = integer_positions(key_positions, "wavelet key")
        relative = queries.unsqueeze(-1) - keys.unsqueeze(-2)
        lowest = int(relative.min())
        table = self.representation(torch.arange(lowest, int(relative.max()) + 1, device=q.device))
        scores = q @ (table.to(q.dtype).T / q.shape[-1] ** 0.5)
        index = relative - lowest
        index = index.unsqueeze(0) if index.dim() == 2 else index
        index = index.unsqueeze(1).expand(q.shape[0], q.shape[1], *index.shape[-2:])
        return scores.gather(-1, index)
