"""The interface every positional encoding implements, so the decoder can treat them uniformly.

An encoding is an ``nn.Module`` whose class attribute ``kind`` says where it acts:

* ``"none"``: nothing positional at all (NoPE);
* ``"absolute"``: :meth:`PositionalEncoding.embed` maps positions to vectors added to the token embeddings;
* ``"rotary"``: :meth:`PositionalEncoding.rotate` transforms queries and keys at their positions before the
  dot product (keys are cached after the transform);
* ``"bias"``: :meth:`PositionalEncoding.attention_bias` returns an additive logit bias
  ``[batch or 1, heads, queries, keys]`` from query and key positions (and, for some, the queries).

``shift_invariant`` is True when attention outputs do not change if every position is shifted by the same
constant; it is an instance attribute because for some encodings it depends on the options (RoPE with
Entropy-ABF's log-length query scale or a length-dependent spectrum is not shift invariant).
``position_axes`` is 1 for sequences (positions ``[T]`` or ``[B, T]``) and the number of coordinates for grids
(positions ``[T, A]`` or ``[B, T, A]``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ropescope.errors import RopescopeInputError

KINDS = ("none", "absolute", "rotary", "bias")


class PositionalEncoding(nn.Module):
    """Base class; subclasses set ``kind`` and implement the one method their kind calls."""

    kind: ClassVar[str]
    needs_hidden: ClassVar[bool] = False
    position_axes: int = 1
    shift_invariant: bool

    def embed(self, positions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} is a {self.kind!r} encoding, not 'absolute'")

    def rotate(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        positions: torch.Tensor,
        hidden: torch.Tensor | None = None,
        carry: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Transform ``q`` and ``k`` (``[B, H, T, head_dim]``) at ``positions``; return them and the carry.

        ``carry`` is encoding state handed from one cached decoding step to the next (only CARoPE uses it).
        """
        raise NotImplementedError(f"{type(self).__name__} is a {self.kind!r} encoding, not 'rotary'")

    def attention_bias(
        self, q: torch.Tensor, query_positions: torch.Tensor, key_positions: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} is a {self.kind!r} encoding, not 'bias'")


def sequence_positions(positions: torch.Tensor, name: str) -> torch.Tensor:
    """Check that ``positions`` is ``[T]`` or ``[B, T]`` of integers or floats and return it."""
    if positions.dim() not in (1, 2):
        raise RopescopeInputError(
            f"{name} positions", f"have shape {tuple(positions.shape)}", "pass positions of shape [T] or [B, T]"
        )
    return positions


def integer_positions(positions: torch.Tensor, name: str) -> torch.Tensor:
    """``sequence_positions`` that must hold whole numbers (bucketed or table-indexed encodings)."""
    positions = sequence_positions(positions, name)
    if positions.is_floating_point():
        if not torch.equal(positions, positions.round()):
            raise RopescopeInputError(f"{name} positions", "are not whole numbers", "pass integer positions")
        positions = positions.long()
    return positions


def grid_positions(positions: torch.Tensor, axes: int, name: str) -> torch.Tensor:
    """Check that ``positions`` is ``[T, axes]`` or ``[B, T, axes]`` (a 1-axis encoding also takes ``[T]``)."""
    if axes == 1 and positions.dim() in (1, 2):
        return positions.unsqueeze(-1)
    if positions.dim() not in (2, 3) or positions.shape[-1] != axes:
        raise RopescopeInputError(
            f"{name} positions",
            f"have shape {tuple(positions.shape)}, but this encoding needs {axes} coordinates per token",
            f"pass positions of shape [T, {axes}] or [B, T, {axes}]",
        )
    return positions


def heads_first(table: torch.Tensor) -> torch.Tensor:
    """``[T, F]`` → ``[1, 1, T, F]`` and ``[B, T, F]`` → ``[B, 1, T, F]`` so it broadcasts over heads."""
    return table.unsqueeze(0).unsqueeze(0) if table.dim() == 2 else table.unsqueeze(1)
