"""CARoPE, context-aware rotary position embedding (Veisi et al. 2025, arXiv 2507.23083).

RoPE's frequency of pair ``i`` is ``θ_i = θ_1^i`` with ``θ_1 = b^(−2/d)``. CARoPE makes the base frequency a
bounded, head-specific function of each token's input ``x_t``::

    f(x_t) = 1 / (softplus(x_t·W + c) + 1)  ∈ (0, 1)        (one value per head)
    φ_i^(h)(m) = Σ_{t=1..m} f_h(x_t)^i                       (phase accumulated over the tokens up to m)

and rotates pair ``i`` of head ``h`` at token ``m`` by ``φ_i^(h)(m)``. The paper initialises CARoPE from RoPE;
here ``W = 0`` and ``c = softplus⁻¹(b^(2/d) − 1)``, so every ``f`` equals ``θ_1`` and CARoPE starts as RoPE at
positions ``1..T``, departing from it smoothly as ``W`` trains.

The relative phase between tokens ``n < m`` is ``Σ_{t=n+1..m} f(x_t)^i``: it depends on the tokens in between,
not on position indices, which CARoPE never reads — shifting them changes nothing (shift invariant). During
cached decoding the running phase of the last token is the ``carry`` handed to the next step.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ropescope.encodings.base import PositionalEncoding
from ropescope.encodings.rope import apply_rotary
from ropescope.errors import RopescopeInputError


class ContextAwareRotaryEncoding(PositionalEncoding):
    """Head-specific, input-dependent RoPE frequencies with phases summed over the sequence."""

    kind = "rotary"
    needs_hidden = True

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        head_dim: int,
        base: float = 10_000.0,
        interleaved: bool = False,
        angle_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if head_dim <= 0 or head_dim % 2:
            raise RopescopeInputError("carope head_dim", f"is {head_dim}", "use an even positive head dimension")
        self.shift_invariant = True
        self.num_heads, self.interleaved, self.angle_dtype = num_heads, interleaved, angle_dtype
        self.frequency = nn.Linear(d_model, num_heads)
        nn.init.zeros_(self.frequency.weight)
        # softplus(c) = b^(2/d) − 1 makes f = b^(−2/d), RoPE's θ_1.
        target = base ** (2.0 / head_dim) - 1.0
        nn.init.constant_(self.frequency.bias, math.log(math.expm1(target)))
        self.register_buffer("exponents", torch.arange(head_dim // 2, dtype=torch.float64), persistent=False)

    def phases(self, hidden: torch.Tensor, carry: torch.Tensor | None = None) -> torch.Tensor:
        """``φ`` of every token, ``[B, H, T, head_dim/2]``, continuing from ``carry`` (the last phase)."""
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            logits = self.frequency(hidden.to(self.frequency.weight.dtype)).to(self.angle_dtype)
            base_frequency = 1.0 / (nn.functional.softplus(logits) + 1.0)
            steps = torch.exp(base_frequency.log().unsqueeze(-1) * self.exponents.to(self.angle_dtype))
            phase = steps.transpose(1, 2).cumsum(dim=2)
            return phase if carry is None else phase + carry.unsqueeze(2)

    def rotate(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        positions: torch.Tensor,
        hidden: torch.Tensor | None = None,
        carry: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        if hidden is None:
            raise RopescopeInputError("carope", "needs the attention input (hidden)", "pass hidden=[B, T, d_model]")
        phase = self.phases(hidden, carry)
        cos, sin = phase.cos().to(q.dtype), phase.sin().to(q.dtype)
        q = apply_rotary(q, cos, sin, self.interleaved)
        k = apply_rotary(k, cos, sin, self.interleaved)
        return q, k, phase[:, :, -1]
