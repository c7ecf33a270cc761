"""Positional encodings as PyTorch modules, built by name.

``names()`` lists the registry; ``build(name, **options)`` constructs one. Every encoding is a
:class:`~ropescope.encodings.base.PositionalEncoding`: its ``kind`` (``none``, ``absolute``, ``rotary`` or
``bias``) tells the decoder where it acts, ``shift_invariant`` says whether attention is unchanged when all
positions move by one constant, and its module docstring states the formula and cites the paper.

========================  ==========  ==============================================================
name                      kind        paper
========================  ==========  ==============================================================
``nope``                  none        Kazemnejad et al. 2023, arXiv 2305.19466
``sinusoidal``            absolute    Vaswani et al. 2017, arXiv 1706.03762
``learned``               absolute    Gehring et al. 2017, arXiv 1705.03122
``t5_bias``               bias        Raffel et al. 2020, arXiv 1910.10683
``alibi``                 bias        Press et al. 2022, arXiv 2108.12409
``rope``                  rotary      Su et al. 2021, arXiv 2104.09864 (+ every spectrum)
``xpos``                  rotary      Sun et al. 2022, arXiv 2212.10554
``carope``                rotary      Veisi et al. 2025, arXiv 2507.23083
``comrope_ap``            rotary      Yu et al. 2025, arXiv 2506.03737 (axial-partition variant)
``comrope_ld``            rotary      Yu et al. 2025, arXiv 2506.03737 (linearly-dependent variant)
``wavelet``               bias        Oka et al. 2025, arXiv 2502.02004
``axial_rope``            rotary      2-D RoPE for grids (Heo et al. 2024, arXiv 2403.13298)
``fire``                  bias        Li et al. 2024, arXiv 2310.04418
``seqpe``                 absolute    Li et al. 2025, arXiv 2506.13277
========================  ==========  ==============================================================
"""

from __future__ import annotations

import inspect
from typing import Any

from ropescope.encodings.alibi import AlibiBias
from ropescope.encodings.axial_rope import AxialRotaryEncoding
from ropescope.encodings.base import KINDS, PositionalEncoding
from ropescope.encodings.carope import ContextAwareRotaryEncoding
from ropescope.encodings.comrope import AxialPartitionComRoPE, LinearlyDependentComRoPE
from ropescope.encodings.fire import FireBias
from ropescope.encodings.learned import LearnedAbsoluteEncoding
from ropescope.encodings.nope import NoPositionalEncoding
from ropescope.encodings.rope import RotaryEncoding, apply_rotary
from ropescope.encodings.seqpe import SeqPositionEncoding
from ropescope.encodings.sinusoidal import SinusoidalEncoding
from ropescope.encodings.t5_bias import T5RelativeBias
from ropescope.encodings.wavelet import WaveletBias
from ropescope.encodings.xpos import XPosEncoding
from ropescope.errors import RopescopeInputError

_REGISTRY: dict[str, type[PositionalEncoding]] = {
    "nope": NoPositionalEncoding,
    "sinusoidal": SinusoidalEncoding,
    "learned": LearnedAbsoluteEncoding,
    "t5_bias": T5RelativeBias,
    "alibi": AlibiBias,
    "rope": RotaryEncoding,
    "xpos": XPosEncoding,
    "carope": ContextAwareRotaryEncoding,
    "comrope_ap": AxialPartitionComRoPE,
    "comrope_ld": LinearlyDependentComRoPE,
    "wavelet": WaveletBias,
    "axial_rope": AxialRotaryEncoding,
    "fire": FireBias,
    "seqpe": SeqPositionEncoding,
}


def names() -> tuple[str, ...]:
    """The registered encoding names."""
    return tuple(_REGISTRY)


def accepted_options(name: str) -> tuple[str, ...]:
    """The keyword options ``build(name, ...)`` accepts."""
    return tuple(p for p in inspect.signature(_lookup(name).__init__).parameters if p != "self")


def build(name: str, **options: Any) -> PositionalEncoding:
    """Construct the encoding registered as ``name`` with ``options`` (see its class for their meaning)."""
    accepted = accepted_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise RopescopeInputError(
            f"encoding {name!r} options",
            f"{unknown} are not options of this encoding",
            f"use only: {', '.join(accepted) or '(none)'}",
        )
    return _lookup(name)(**options)


def _lookup(name: str) -> type[PositionalEncoding]:
    if name not in _REGISTRY:
        raise RopescopeInputError("encoding", f"unknown name {name!r}", f"use one of: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


__all__ = ["KINDS", "PositionalEncoding", "RotaryEncoding", "accepted_options", "apply_rotary", "build", "names"]
