"""The exact rotary spectrum a model uses at run time.

RoPE (Su et al. 2021, "RoFormer", arXiv 2104.09864) rotates pair i of a rotary dimension d at angle m·ω_i for
position m, with the base spectrum ω_i = b^(−2i/d), i = 0 … d/2−1. Each scaling method below is a pure function
``(spec, seq_len) -> (ω, attention_factor, interpolation)`` in :data:`SPECTRUM_FUNCTIONS`, computed in float64
and equal to transformers' ``ROPE_INIT_FUNCTIONS`` (which compute in float32) to float32 rounding:

* ``linear`` (Chen et al. 2023, arXiv 2306.15595, Position Interpolation): ω_i / s.
* ``ntk`` (bloc97 2023, NTK-aware scaling; static, not in transformers): base b·s^(d/(d−2)).
* ``dynamic`` (emozilla 2023, dynamic NTK): base b·(s·ℓ/L − (s−1))^(d/(d−2)) with ℓ = max(seq_len, L),
  L = ``max_position_embeddings``.
* ``yarn`` (Peng et al. 2023, arXiv 2309.00071): per pair, blend ω_i/s and ω_i by a ramp that is linear in the
  pair index between the correction dimensions of ``beta_fast`` and ``beta_slow`` rotations over the original
  context (floored/ceiled unless ``truncate`` is false, clamped to [0, d−1]); attention factor ``attention_factor``,
  else (0.1·mscale·ln s + 1)/(0.1·mscale_all_dim·ln s + 1), else 0.1·ln s + 1.
* ``longrope`` (Ding et al. 2024, arXiv 2402.13753): ω_i / λ_i with the long factors λ when seq_len exceeds the
  original context, else the short ones; attention factor √(1 + ln s / ln L_orig).
* ``llama3`` (Meta 2024, arXiv 2407.21783): wavelengths above L_orig/low_freq_factor are divided by s, below
  L_orig/high_freq_factor kept, and smoothly blended in between.
* ``proportional`` (transformers' Gemma-style partial RoPE): the first ⌊p·h/2⌋ pairs use exponent 2i/h over the
  whole head h, the rest have ω = 0; all divided by s.
* ``entropy_abf`` (Zhang et al. 2024, arXiv 2401.07004): the base change is in ``rope_theta``; queries at
  position m are scaled by max(1, log(m+1)/log L_train), which :meth:`Spectrum.query_scale` returns.
* ``qwen_dynamic`` (Qwen-1's ``use_dynamic_ntk``, published remote code ``modeling_qwen.py``): base b·α^(d/(d−2))
  with α = max(1, 2^⌈log2(ℓ/L) + 1⌉ − 1), ℓ = seq_len (default L), L = ``seq_length``.

Query scales (:meth:`Spectrum.query_scale`, a product of those that apply): Entropy-ABF's above; Qwen-1's
``use_logn_attn`` max(1, ln(m+1)/ln L) with L = ``seq_length``; Ministral 3's ``llama_4_scaling_beta`` β:
1 + β·ln(1 + ⌊m / L_orig⌋).

A spectrum is returned only if every number in it is finite, every pair's wavelength 2π/ω (of the rotating
pairs, for ``proportional``) is a finite float64 and the attention factor is positive; otherwise (e.g. a
dynamic factor of 1e300) the computation raises a :class:`~ropescope.errors.RopescopeInputError` naming the
config.

``interpolation`` is, per pair, the weight given to the interpolated (ω/s) frequency: 0 extrapolated, 1
interpolated, in between blended; ``None`` for methods that have no such split.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ropescope.config import RopeSpec
from ropescope.errors import RopescopeInputError

SpectrumFunction = Callable[[RopeSpec, int | None], tuple[np.ndarray, float, np.ndarray | None]]


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Angular frequencies (radians per token) of each rotary pair, and the cos/sin scale."""

    spec: RopeSpec
    seq_len: int | None
    inv_freq: np.ndarray
    attention_factor: float
    interpolation: np.ndarray | None = None

    @property
    def rotary_dim(self) -> int:
        return self.spec.rotary_dim

    @property
    def effective_base(self) -> float:
        """b_eff = 1/ω_min over the rotating pairs: the base of a plain RoPE with the same slowest pair."""
        rotating = self.inv_freq[self.inv_freq > 0]
        return float(1.0 / rotating.min())

    @property
    def wavelengths(self) -> np.ndarray:
        """2π/ω_i tokens per full turn (infinite for pairs that do not rotate)."""
        with np.errstate(divide="ignore"):
            return 2 * np.pi / self.inv_freq

    def rotations(self, context: int) -> np.ndarray:
        """Full turns each pair completes over ``context`` positions (positions 0 … context−1)."""
        return (context - 1) * self.inv_freq / (2 * np.pi)

    def bands(self) -> list[str] | None:
        """Per pair: ``extrapolated``, ``interpolated`` or ``blended`` (YaRN, llama3, linear); else ``None``."""
        if self.interpolation is None:
            return None
        return ["extrapolated" if w <= 0 else "interpolated" if w >= 1 else "blended" for w in self.interpolation]

    def query_scale(self, positions: np.ndarray) -> np.ndarray:
        """Multiplier on the query at each position m (the module docstring lists the scales); 1 if none."""
        positions = np.asarray(positions, dtype=np.float64)
        scale = np.ones_like(positions)
        if self.spec.rope_type == "entropy_abf":
            train = self.spec.training_context
            assert train is not None  # guaranteed by config for entropy_abf
            scale *= np.maximum(1.0, np.log(positions + 1) / math.log(train))
        if "logn_attn" in self.spec.scaling:
            scale *= np.maximum(1.0, np.log(positions + 1) / math.log(self.spec.scaling["logn_attn"]))
        if "llama_4_scaling_beta" in self.spec.scaling:
            original = self.spec.original_max_position_embeddings
            assert original is not None  # guaranteed by config for llama_4_scaling_beta
            scale *= 1 + self.spec.scaling["llama_4_scaling_beta"] * np.log1p(np.floor(positions / original))
        return scale

    def to_dict(self, context: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rope_type": self.spec.rope_type,
            "base": self.spec.base,
            "effective_base": self.effective_base,
            "rotary_dim": self.spec.rotary_dim,
            "head_dim": self.spec.head_dim,
            "seq_len": self.seq_len,
            "training_context": self.spec.training_context,
            "inv_freq": self.inv_freq.tolist(),
            "attention_factor": self.attention_factor,
            "findings": [f.to_dict() for f in self.spec.findings],
        }
        if self.interpolation is not None:
            out["interpolation"] = self.interpolation.tolist()
        if context is not None:
            out["context"] = context
            out["rotations_in_context"] = self.rotations(context).tolist()
        return out


def spectrum(spec: RopeSpec, seq_len: int | None = None) -> Spectrum:
    """The spectrum ``spec`` uses when the sequence is ``seq_len`` tokens long (matters for dynamic/longrope)."""
    if seq_len is not None and (isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len <= 0):
        raise RopescopeInputError("seq_len", f"must be a positive integer, got {seq_len!r}", "e.g. --seq-len 8192")
    try:
        with np.errstate(all="ignore"):
            inv_freq, attention_factor, interpolation = SPECTRUM_FUNCTIONS[spec.rope_type](spec, seq_len)
    except (ArithmeticError, ValueError) as error:  # overflow or a domain error in float arithmetic
        raise _not_computable(spec, seq_len, str(error)) from None
    rotating = inv_freq[: proportional_pairs(spec)] if spec.rope_type == "proportional" else inv_freq
    if not np.isfinite(inv_freq).all() or (rotating < _SMALLEST_FREQUENCY).any():
        raise _not_computable(spec, seq_len, "frequencies overflow or underflow float64")
    if not (math.isfinite(attention_factor) and attention_factor > 0):
        raise _not_computable(spec, seq_len, f"the attention factor is {attention_factor:g}, not a positive number")
    return Spectrum(spec, seq_len, inv_freq, float(attention_factor), interpolation)


_SMALLEST_FREQUENCY = 2 * math.pi / np.finfo(np.float64).max
"""Below this ω the wavelength 2π/ω is not a finite float64."""


def _not_computable(spec: RopeSpec, seq_len: int | None, why: str) -> RopescopeInputError:
    at = f" at seq_len {seq_len}" if seq_len else ""
    return RopescopeInputError(
        spec.source,
        f"the {spec.rope_type} spectrum (base {spec.base:g}, scaling {dict(spec.scaling)}){at} "
        f"cannot be computed: {why}",
        "check rope_theta and the scaling parameters for values no model uses",
    )


def default_inv_freq(base: float, rotary_dim: int, exponent_dim: int | None = None) -> np.ndarray:
    """ω_i = base^(−2i/D) for i = 0 … rotary_dim/2 − 1, with D = exponent_dim (default rotary_dim)."""
    exponent_dim = exponent_dim or rotary_dim
    return base ** (-np.arange(0, rotary_dim, 2, dtype=np.float64) / exponent_dim)


def ntk_base(base: float, factor: float, rotary_dim: int) -> float:
    """NTK-aware base b·s^(d/(d−2)) (bloc97 2023)."""
    return base * factor ** (rotary_dim / (rotary_dim - 2))


def yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN's magnitude correction 0.1·mscale·ln s + 1 (1 for s ≤ 1)."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def _default(spec: RopeSpec, seq_len: int | None) -> tuple[np.ndarray, float, None]:
    return default_inv_freq(spec.base, spec.rotary_dim), 1.0, None


def _linear(spec: RopeSpec, seq_len: int | None) -> tuple[np.ndarray, float, np.ndarray]:
    inv_freq = default_inv_freq(spec.base, spec.rotary_dim) / spec.scaling["factor"]
    return inv_freq, 1.0, np.ones_like(inv_freq)


def _ntk(spec: RopeSpec, seq_len: int | None) -> tuple[np.ndarray, float, None]:
    return default_inv_freq(ntk_base(spec.base, spec.scaling["factor"], spec.rotary_dim), spec.rotary_dim), 1.0, None


def _dynamic(spec: RopeSpec, seq_len: int | None) -> tuple[np.ndarray, float, None]:
    trained = spec.max_position_embeddings
    if trained is None:
        raise RopescopeInputError(
            f"{spec.source}: max_position_embeddings", "is needed by dynamic NTK", "add max_position_embeddings"
        )
    factor, d = spec.scaling["factor"], spec.rotary_dim
    length = max(seq_len or trained, trained)
    base = spec.base * (factor * length / trained - (factor - 1)) ** (d / (d - 2))
    return default_inv_freq(base, d), 1.0, None


def _yarn(spec: RopeSpec, seq_len: int | None) -> tuple[np.ndarray, float, np.ndarray]:
    s, d, base = spec.scaling["factor"], spec.rotary_dim, spec.base
    original = spec.original_max_position_embeddings
    assert original is not None  # config guarantees it for yarn
    attention_factor = spec.scaling.get("attention_factor")
    if attention_factor is None:
        mscale, mscale_all_dim = spec.scaling.get("mscale"), spec.scaling.get("mscale_all_dim")
        if mscale and mscale_all_dim:
            attention_factor = yarn_mscale(s, mscale) / yarn_mscale(s, mscale_all_dim)
        else:
            attention_factor = yarn_mscale(s)

    def correction_dim(rotations: float) -> float:
        return d * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low = correction_dim(spec.scaling.get("beta_fast") or 32.0)
    high = correction_dim(spec.scaling.get("beta_slow") or 1.0)
    if spec.scaling.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, d - 1)
    if low == high:
        high += 0.001
    interpolation = np.clip((np.arange(d // 2, dtype=np.float64) - low) / (high - low), 0.0, 1.0)
    base_freq = default_inv_freq(base, d)
    inv_freq = base_freq / s * interpolation + base_freq * (1.0 - interpolation)
    return inv_freq, attention_factor, interpolation


def qwen_ntk_alpha(seq_len: int, trained: int) -> int:
    """Qwen-1's α = max(1, 2^⌈log2(ℓ/L) + 1⌉ − 1) for a prompt of ℓ tokens trained at L, in the remote code's
    float arithmetic (``math.log(ℓ / L, 2)``)."""
    return max(1, 2 ** math.ceil(math.log(seq_len / trained, 2) + 1) - 1)


def _qwen_dynamic(spec: RopeSpec, seq_len: int | None) -> tuple[np.ndarray, float, None]:
    trained = spec.original_max_position_embeddings
    assert trained is not None  # config reads seq_length for qwen_dynamic
    alpha = qwen_ntk_alpha(seq_len or trained, trained)
    return default_inv_freq(ntk_base(spec.base, alpha, spec.rotary_dim), spec.rotary_dim), 1.0, None


def longrope_factor(spec: RopeSpec) -> float:
    """LongRoPE's factor: ``factor``, else max_position_embeddings / original_max_position_embeddings, else 1."""
    if spec.factor is not None:
        return spec.factor
    if spec.max_position_embeddings and spec.original_max_position_embeddings:
        return spec.max_position_embeddings / spec.original_max_position_embeddings
    return 1.0


def _longrope(spec: RopeSpec, seq_len: int | None) -> tuple[np.ndarray, float, None]:
    original = spec.original_max_position_embeddings
    assert original is not None
    factor = longrope_factor(spec)
    attention_factor = spec.scaling.get("attention_factor")
    if attention_factor is None:
        attention_factor = 1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(original))
    use_long = bool(seq_len) and seq_len > original  # type: ignore[operator]
    rescale = np.asarray(spec.scaling["long_factor" if use_long else "short_factor"], dtype=np.float64)
    return default_inv_freq(spec.base, spec.rotary_dim) / rescale, attention_factor, None


def _llama3(spec: RopeSpec, seq_len: int | None) -> tuple[np.ndarray, float, np.ndarray]:
    s = spec.scaling["factor"]
    low_factor, high_factor = spec.scaling["low_freq_factor"], spec.scaling["high_freq_factor"]
    original = spec.original_max_position_embeddings
    assert original is not None
    base_freq = default_inv_freq(spec.base, spec.rotary_dim)
    wavelength = 2 * np.pi / base_freq
    smooth = (original / wavelength - low_factor) / (high_factor - low_factor)
    interpolation = np.where(
        wavelength > original / low_factor, 1.0, np.where(wavelength < original / high_factor, 0.0, 1.0 - smooth)
    )
    inv_freq = base_freq / s * interpolation + base_freq * (1.0 - interpolation)
    return inv_freq, 1.0, interpolation


def proportional_pairs(spec: RopeSpec) -> int:
    """How many pairs rotate under ``proportional``: ⌊p·h/2⌋ (the others have ω = 0)."""
    return int(spec.scaling.get("partial_rotary_factor", 1.0) * spec.head_dim // 2)


def _proportional(spec: RopeSpec, seq_len: int | None) -> tuple[np.ndarray, float, None]:
    head_dim = spec.head_dim
    rotating_pairs = proportional_pairs(spec)
    inv_freq = np.zeros(head_dim // 2)
    inv_freq[:rotating_pairs] = default_inv_freq(spec.base, 2 * rotating_pairs, exponent_dim=head_dim)
    return inv_freq / spec.scaling.get("factor", 1.0), 1.0, None


SPECTRUM_FUNCTIONS: dict[str, SpectrumFunction] = {
    "default": _default,
    "linear": _linear,
    "ntk": _ntk,
    "dynamic": _dynamic,
    "yarn": _yarn,
    "longrope": _longrope,
    "llama3": _llama3,
    "proportional": _proportional,
    "entropy_abf": _default,
    "qwen_dynamic": _qwen_dynamic,
}
