"""No positional encoding (NoPE): attention sees only the causal mask.

Kazemnejad et al. 2023, "The Impact of Positional Encoding on Length Generalization in Transformers",
arXiv 2305.19466: a causal decoder can still infer positions (the mask breaks permutation symmetry), and NoPE
generalises to longer inputs better than several explicit encodings on their tasks. Nothing depends on
position indices, so shifting them changes nothing.
"""

from __future__ import annotations

from ropescope.encodings.base import PositionalEncoding


class NoPositionalEncoding(PositionalEncoding):
    """The identity: no positional signal besides causality."""

    kind = "none"

    def __init__(self) -> None:
        super().__init__()
        self.shift_invariant = True
