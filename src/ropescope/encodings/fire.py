"""FIRE, functional interpolation for relative positions (Li et al. 2024, ICLR, "Functional Interpolation for
Relative Positions Improves Long Context Transformers", arXiv 2310.04418).

Every head adds a learned function of the normalised distance to the logit of query ``i`` and key ``j ≤ i``::

    b(i, j) = f_θ( ψ(i − j) / ψ(max(L, i)) ),      ψ(x) = log(c·x + 1)

``ψ`` is a monotone log transform with a learnable ``c > 0`` (it spreads out the nearby distances), the
division by ``ψ(i)`` maps every distance of a query into ``[0, 1]`` (progressive interpolation, so longer
contexts reuse the range the MLP was trained on), and the learnable threshold ``L`` keeps short contexts from
being over-normalised: below ``L`` the denominator is the constant ``ψ(L)``. ``f_θ`` is an MLP
``1 → mlp_width → num_heads`` with a ReLU, one output per head.

Parametrisation and defaults follow the authors' published reference listing (read as reproduced in public
repositories; the paper's full text could not be read here): width 32, ``c`` initialised to 0.1 and used as
``|c|`` so ψ stays monotone whatever sign training gives it, ``L = |λ·L₀|`` with a fixed ``L₀ = 512`` and a
learnable multiplier ``λ`` initialised to 1, ``ε = 10⁻⁶`` added to ``ψ(max(L, i))``, default ``nn.Linear``
initialisation of the MLP. Keys after the query (hidden by the causal mask) get ``f_θ`` of ``|i − j|``, as in
that listing, so the bias stays finite everywhere. Computed in the parameters' dtype (float32 unless the
module is converted) with autocast off.

Because the denominator depends on the query position ``i`` once ``i > L``, FIRE is not shift invariant.
"""

from __future__ import annotations

import torch
from torch import nn

from ropescope.encodings.base import PositionalEncoding, sequence_positions
from ropescope.errors import RopescopeInputError

EPS = 1e-6


class FireBias(PositionalEncoding):
    """Learned per-head bias ``f_θ(ψ(i − j)/ψ(max(L, i)))`` from a small MLP on the normalised distance."""

    kind = "bias"

    def __init__(self, num_heads: int, mlp_width: int = 32, init_c: float = 0.1, init_threshold: float = 512.0) -> None:
        super().__init__()
        if mlp_width <= 0:
            raise RopescopeInputError("fire mlp_width", f"is {mlp_width}", "use a positive width (32 in the paper)")
        if init_c <= 0 or init_threshold <= 0:
            raise RopescopeInputError(
                "fire init_c / init_threshold",
                f"are {init_c} / {init_threshold}",
                "use positive values (0.1 and 512 in the paper)",
            )
        self.shift_invariant = False
        self.mlp = nn.Sequential(nn.Linear(1, mlp_width), nn.ReLU(), nn.Linear(mlp_width, num_heads))
        self.c = nn.Parameter(torch.tensor(float(init_c)))
        self.threshold_scale = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("init_threshold", torch.tensor(float(init_threshold)), persistent=False)

    def psi(self, x: torch.Tensor) -> torch.Tensor:
        """``ψ(x) = log(|c|·x + 1)`` for ``x ≥ 0``."""
        return torch.log1p(self.c.abs() * x)

    def normalised_distance(self, query_positions: torch.Tensor, key_positions: torch.Tensor) -> torch.Tensor:
        """``ψ(|i − j|) / (ψ(max(L, i)) + ε)``: shape ``[..., queries, keys]`` in the parameters' dtype."""
        queries = sequence_positions(query_positions, "fire query").to(self.c.dtype)
        keys = sequence_positions(key_positions, "fire key").to(self.c.dtype)
        threshold = (self.threshold_scale * self.init_threshold).abs()
        normaliser = self.psi(torch.maximum(queries, threshold)) + EPS
        distance = (queries.unsqueeze(-1) - keys.unsqueeze(-2)).abs()
        return self.psi(distance) / normaliser.unsqueeze(-1)

    def attention_bias(
        self, q: torch.Tensor, query_positions: torch.Tensor, key_positions: torch.Tensor
    ) -> torch.Tensor:
        with torch.autocast(device_type=self.c.device.type, enabled=False):
            x = self.normalised_distance(query_positions, key_positions)
            bias = self.mlp(x.unsqueeze(-1)).movedim(-1, -3)
        return bias if bias.dim() == 4 else bias.unsqueeze(0)
