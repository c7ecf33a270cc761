"""Rotary position embedding with any spectrum (Su et al. 2021, "RoFormer", arXiv 2104.09864).

Pair ``i`` of the first ``rotary_dim`` dimensions of a query or key at position ``m`` is rotated by the angle
``m·θ_i``::

    (x1, x2) ↦ a·(x1·cos mθ_i − x2·sin mθ_i,  x2·cos mθ_i + x1·sin mθ_i)

with ``θ_i`` the spectrum's ``inv_freq`` (``base^(−2i/rotary_dim)`` unscaled; every scaling method of
:mod:`ropescope.spectrum`) and ``a`` its ``attention_factor`` (multiplying cos and sin as transformers does,
so logits scale by ``a²``). Then ``R(m)ᵀR(n) = R(n−m)``: ``q_m·k_n`` depends only on ``m − n``.
Dimensions past ``rotary_dim`` pass through (partial rotary).

Layouts (named as in PyTorch's proposed rotary API): ``interleaved=False`` pairs dimension ``i`` with
``i + rotary_dim/2`` (GPT-NeoX / transformers ``rotate_half``); ``interleaved=True`` pairs ``2i`` with ``2i+1``
(the paper, Meta's complex-number code). They are the same rotation up to a fixed permutation of dimensions.

Angles ``m·θ_i`` are computed in ``angle_dtype`` (float32 by default, float64 on request) with autocast off:
in bfloat16 positions above 256 collapse onto each other (transformers PR #29285).

Entropy-ABF (arXiv 2401.07004) also multiplies the query by the spectrum's ``query_scale(m)``. Length-dependent
spectra (dynamic NTK, LongRoPE) are recomputed at the current length ``max(position) + 1`` on each call; keys
already in a KV cache keep the rotation of the length at which they were cached (transformers issue #25104),
so cached and uncached decoding differ once the length passes the original context.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ropescope.config import RopeSpec
from ropescope.encodings.base import PositionalEncoding, heads_first, sequence_positions
from ropescope.errors import RopescopeInputError
from ropescope.spectrum import Spectrum, default_inv_freq
from ropescope.spectrum import spectrum as spectrum_of

DEFAULT_BASE = 10_000.0
_LENGTH_DEPENDENT = frozenset({"dynamic", "longrope"})


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, interleaved: bool = False) -> torch.Tensor:
    """Rotate the first ``2·cos.shape[-1]`` dims of ``x`` pairwise; ``cos``/``sin`` broadcast to ``x[..., :r/2]``.

    Without autograd the result is written in place into one output buffer (about 2–4× faster on CPU than
    building it from temporaries); with autograd the same formula is built from differentiable operations.
    """
    half = cos.shape[-1]
    first, second = _pair_halves(x[..., : 2 * half], interleaved)
    if torch.is_grad_enabled() and (x.requires_grad or cos.requires_grad or sin.requires_grad):
        new_first, new_second = first * cos - second * sin, second * cos + first * sin
        joined = (
            torch.stack((new_first, new_second), dim=-1).flatten(-2)
            if interleaved
            else torch.cat((new_first, new_second), dim=-1)
        )
        return torch.cat((joined, x[..., 2 * half :]), dim=-1) if x.shape[-1] > 2 * half else joined
    out = torch.empty_like(x)
    out_first, out_second = _pair_halves(out[..., : 2 * half], interleaved)
    torch.mul(first, cos, out=out_first).addcmul_(second, sin, value=-1)
    torch.mul(second, cos, out=out_second).addcmul_(first, sin)
    out[..., 2 * half :] = x[..., 2 * half :]
    return out


def _pair_halves(x: torch.Tensor, interleaved: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The two members of every pair: even/odd dims (interleaved) or first/second half (half split)."""
    if interleaved:
        return x[..., 0::2], x[..., 1::2]
    half = x.shape[-1] // 2
    return x[..., :half], x[..., half:]


def rotary_angles(positions: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``positions[..., None] · inv_freq`` in ``dtype``, never lowered by autocast."""
    with torch.autocast(device_type=positions.device.type, enabled=False):
        return positions.to(dtype).unsqueeze(-1) * inv_freq.to(device=positions.device, dtype=dtype)


class RotaryEncoding(PositionalEncoding):
    """RoPE from a :class:`~ropescope.config.RopeSpec`, a :class:`~ropescope.spectrum.Spectrum`, or a base."""

    kind = "rotary"

    def __init__(
        self,
        *,
        spec: RopeSpec | None = None,
        spectrum: Spectrum | None = None,
        base: float | None = None,
        head_dim: int | None = None,
        rotary_dim: int | None = None,
        interleaved: bool = False,
        angle_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if sum(x is not None for x in (spec, spectrum, base)) > 1:
            raise RopescopeInputError(
                "rope options", "more than one of spec, spectrum and base given", "give exactly one of them"
            )
        if angle_dtype not in (torch.float32, torch.float64):
            raise RopescopeInputError(
                "angle_dtype", f"is {angle_dtype}", "use torch.float32 or torch.float64 (lower loses positions)"
            )
        self.interleaved = bool(interleaved)
        self.angle_dtype = angle_dtype
        self.spec = spec
        self._latest: tuple[int, Spectrum] | None = None  # length-dependent spectra: the last length used
        if spec is not None:
            spectrum = spectrum_of(spec)
        if spectrum is not None:
            inv_freq = np.asarray(spectrum.inv_freq, dtype=np.float64)
            self.attention_factor = float(spectrum.attention_factor)
            self._query_scale = spectrum.query_scale
            scaled = not np.all(spectrum.query_scale(np.array([0.0, 1e9])) == 1.0)
        else:
            dim = rotary_dim if rotary_dim is not None else head_dim
            if dim is None or dim <= 0 or dim % 2:
                raise RopescopeInputError(
                    "rope rotary_dim", f"is {dim}", "give an even positive rotary_dim (or head_dim), or a spec"
                )
            inv_freq = default_inv_freq(DEFAULT_BASE if base is None else float(base), dim)
            self.attention_factor, self._query_scale, scaled = 1.0, None, False
        if rotary_dim is not None and rotary_dim != 2 * len(inv_freq):
            raise RopescopeInputError(
                "rope rotary_dim",
                f"is {rotary_dim} but the spectrum has {len(inv_freq)} pairs",
                f"drop rotary_dim or set it to {2 * len(inv_freq)}",
            )
        self.rotary_dim = 2 * len(inv_freq)
        if head_dim is not None and self.rotary_dim > head_dim:
            raise RopescopeInputError(
                "rope rotary_dim",
                f"{self.rotary_dim} exceeds head_dim {head_dim}",
                "use a spec or rotary_dim no larger than the model's head dimension",
            )
        self.length_dependent = spec is not None and spec.rope_type in _LENGTH_DEPENDENT
        self.query_scaled = scaled
        self.shift_invariant = not (self.length_dependent or scaled)
        self.register_buffer("inv_freq", torch.from_numpy(inv_freq.copy()), persistent=False)

    def _spectrum_at(self, seq_len: int) -> Spectrum:
        if self._latest is None or self._latest[0] != seq_len:
            assert self.spec is not None  # only length-dependent specs get here
            self._latest = (seq_len, spectrum_of(self.spec, seq_len=seq_len))
        return self._latest[1]

    def cos_sin(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``a·cos(mθ)`` and ``a·sin(mθ)``, ``[..., T, rotary_dim/2]``, in ``angle_dtype``."""
        inv_freq, factor = self.inv_freq, self.attention_factor
        if self.length_dependent:
            current = self._spectrum_at(int(positions.max()) + 1)
            inv_freq = torch.from_numpy(np.asarray(current.inv_freq, dtype=np.float64))
            factor = float(current.attention_factor)
        angles = rotary_angles(positions, inv_freq, self.angle_dtype)
        return angles.cos() * factor, angles.sin() * factor

    def rotate(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        positions: torch.Tensor,
        hidden: torch.Tensor | None = None,
        carry: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        positions = sequence_positions(positions, "rope")
        cos, sin = (heads_first(t).to(q.dtype) for t in self.cos_sin(positions))
        q = apply_rotary(q, cos, sin, self.interleaved)
        k = apply_rotary(k, cos, sin, self.interleaved)
        if self.query_scaled:
            scale = self._query_scale(positions.detach().cpu().numpy().astype(np.float64))
            q = q * heads_first(torch.as_tensor(scale, dtype=q.dtype, device=q.device).unsqueeze(-1))
        return q, k, carry
