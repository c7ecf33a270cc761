"""Predict the context at which a model's RoPE breaks, the mechanism that sets it, and the interval around it.

The critical-dimension argument of Liu et al. 2023 ("Scaling Laws of RoPE-based Extrapolation", arXiv
2310.05209, Lemma 1 and Theorem 3), generalised to every training stage of the model's lineage
(:mod:`ropescope.lineage`) and to every scaling of :mod:`ropescope.spectrum`:

* Stage s trains on T_s tokens with spectrum ω⁽ˢ⁾, so it turns rotary pair i through ω_i⁽ˢ⁾·T_s radians. Over
  the lineage, pair i has seen the angles [0, θ_i] with θ_i = max_s ω_i⁽ˢ⁾·T_s.
* A pair is *trained* when θ_i ≥ π: it has been turned through at least half a period, so every value of its
  cosine has been seen. The others are the under-trained pairs; the first of them is Liu's critical dimension.
* At inference on L tokens the model uses ω(L) (``spectrum(spec, seq_len=L)``: dynamic and LongRoPE spectra
  change with L). The prediction is the largest L at which no under-trained pair leaves its trained angles:

      L* = max { L : ω_i(L)·L ≤ θ_i for every pair with θ_i < π }       (low = context)

  and the top of the interval is where the first of them completes a period, Liu 2023's T_extra = 2π/ω_c:

      L⁺ = max { L : ω_i(L)·L ≤ 2π for every pair with θ_i < π },  capped at 2.5·L*   (high)

  For one unscaled stage L* is the training context itself; it moves past it when the spectrum in use turns
  the under-trained pairs more slowly than training did: a base raised after pretraining (CodeLlama: the pairs
  under-trained at base 10⁴ and 4K are slowed by base 10⁶, T_extra ≈ 2π·10⁶^(92/128)), position interpolation
  (PI, YaRN, llama3, LongRoPE divide those pairs' ω by the factor), or a base that grows with L (dynamic NTK).
* If every pair is trained (Liu 2023's small-base regime) RoPE sets no limit here. Partial rotary and MLA models
  are read on their rotary dimensions only: the other dimensions carry no position.
* Precision wall (Liu 2026, arXiv 2602.10959): when the angles are computed in ``dtype``, the first position m
  whose angle equals that of m + 1 in some pair (:func:`ropescope.bounds.first_collapsed_positions`) ends the
  working context if it comes before L*.

The half-turn threshold and the absence of any tolerance past θ_i are the model's only two constants; neither
is fitted (``ropescope calibrate`` shows the catalog score for other values and why fitting them is worse).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from ropescope import bounds
from ropescope.config import Finding, RopeSpec, rope_parameters, with_rope_parameters
from ropescope.errors import RopescopeInputError
from ropescope.lineage import Lineage, Stage, from_facts, plain_stage
from ropescope.spectrum import spectrum

TRAINED_ANGLE = math.pi  # a pair turned through half a period in training counts as trained
TOLERANCE = 0.0  # how far past its trained angles an under-trained pair may go, as a fraction of 2π − θ_i
MAX_WIDTH = 2.5  # high ≤ MAX_WIDTH · low
SEARCH_LIMIT = 2**40  # tokens: beyond this a length-dependent spectrum is called unlimited
LENGTH_DEPENDENT = frozenset({"dynamic", "longrope"})
INTERPOLATING = frozenset({"linear", "yarn", "llama3", "longrope"})
_SLACK = 1e-9  # relative: angles equal up to rounding count as seen

MECHANISMS = {
    "critical_dimension": "critical dimension (Liu et al. 2023)",
    "base_change": "critical dimension after a base change (Liu et al. 2023, Theorem 3)",
    "interpolation": "end of the interpolation window",
    "dynamic_ntk": "dynamic NTK: the base grows with L until a pair leaves its trained angles",
    "no_rope_limit": "every rotary pair trained: no RoPE limit (Liu et al. 2023, small-base regime)",
    "precision_wall": "precision wall: two positions share an angle (Liu 2026)",
}
FORMULA = (
    "L* = max{L : ω_i(L)·L ≤ θ_i for every pair with θ_i < π}, θ_i = max over training stages of ω_i·T "
    "(Liu et al. 2023, arXiv 2310.05209, critical dimension over the lineage); high: ω_i(L)·L ≤ 2π (T_extra)"
)
PRECISION_FORMULA = (
    "first m with fl(m·ω_i) = fl((m+1)·ω_i) in the angle dtype (Liu 2026, arXiv 2602.10959, precision wall)"
)


@dataclass(frozen=True)
class BreakPrediction:
    """The predicted largest working context (``context``, None when nothing limits it), the interval
    [``low``, ``high``] around it, the ``mechanism`` that sets it, its ``formula`` and the ``inputs`` used."""

    context: int | None
    low: int | None
    high: int | None
    mechanism: str
    formula: str
    inputs: Mapping[str, Any]
    lineage: Lineage
    findings: tuple[Finding, ...] = field(default=())

    def verdict(self, context: int) -> str:
        """``ok`` up to ``low``, ``at_risk`` up to ``high``, ``fail`` beyond."""
        if self.low is None or context <= self.low:
            return "ok"
        return "at_risk" if self.high is None or context <= self.high else "fail"

    @property
    def description(self) -> str:
        return MECHANISMS[self.mechanism]

    def to_dict(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "low": self.low,
            "high": self.high,
            "mechanism": self.mechanism,
            "description": self.description,
            "formula": self.formula,
            "inputs": dict(self.inputs),
            "lineage": self.lineage.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
        }


def assumed_lineage(spec: RopeSpec) -> tuple[Lineage, tuple[Finding, ...]]:
    """What the config alone implies: scaled types were pretrained unscaled at ``original_max_position_embeddings``
    and last trained at ``max_position_embeddings``; unscaled ones trained at ``max_position_embeddings``."""
    trained = spec.max_position_embeddings or spec.original_max_position_embeddings
    if trained is None:
        raise RopescopeInputError(
            f"{spec.source}: training context",
            "is unknown (no max_position_embeddings in the config)",
            "pass --trained-context N, the sequence length of the model's last training stage",
        )
    original = spec.original_max_position_embeddings
    told = f"last training context taken as max_position_embeddings = {trained:,}"
    if spec.rope_type in INTERPOLATING and original is not None and original < trained:
        told += f", pretraining as unscaled RoPE (base {spec.base:g}) at original_max_position_embeddings {original:,}"
    finding = Finding(
        "lineage-assumed",
        "warning",
        f"training lineage assumed from the config: {told}",
        "pass --trained-context N (and --pretrained BASE@N if the base changed after pretraining)",
    )
    return Lineage((Stage(trained),), "assumed"), (finding,)


def user_lineage(spec: RopeSpec, trained_context: int | None, pretrained: tuple[float, int] | None) -> Lineage | None:
    """The lineage from ``--trained-context`` / ``--pretrained``, the other completed from the model's own lineage
    (catalog, config or assumed); None if neither is given."""
    if trained_context is None and pretrained is None:
        return None
    known = spec.lineage or assumed_lineage(spec)[0]
    first = known.stages[0]
    if pretrained is None and len(known.stages) > 1 and first.rope is not None and first.rope["rope_type"] == "default":
        pretrained = (first.rope["rope_theta"], first.context)  # keep the known pretraining stage
    lineage = from_facts(trained_context or known.trained_context, pretrained, "user")
    original = spec.original_max_position_embeddings
    if spec.rope_type in INTERPOLATING and original is not None and lineage.trained_context < original:
        raise RopescopeInputError(
            "--trained-context",
            f"{lineage.trained_context:,} is below the config's original_max_position_embeddings {original:,}",
            "give the sequence length of the last training stage, at least the pretraining context",
        )
    return lineage


def completed_lineage(spec: RopeSpec, lineage: Lineage) -> Lineage:
    """``lineage`` with the unscaled pretraining stage that an interpolating config implies (base ``rope_theta`` at
    ``original_max_position_embeddings``) when the lineage starts with the config's own stage."""
    original = spec.original_max_position_embeddings
    first = lineage.stages[0]
    if first.rope is None and spec.rope_type in INTERPOLATING and original is not None and original < first.context:
        return replace(lineage, stages=(plain_stage(spec.base, original), *lineage.stages))
    return lineage


def explicit_lineage(spec: RopeSpec, lineage: Lineage) -> Lineage:
    """The completed lineage with the config's own stages written out as ``rope_parameters``, so that it still
    describes the training after the config is changed."""
    stages = tuple(
        Stage(stage.context, MappingProxyType(rope_parameters(spec)) if stage.rope is None else stage.rope)
        for stage in completed_lineage(spec, lineage).stages
    )
    return replace(lineage, stages=stages)


def seen_angles(spec: RopeSpec, lineage: Lineage) -> tuple[np.ndarray, np.ndarray]:
    """θ_i = max_s ω_i⁽ˢ⁾·T_s per pair, and the index of the stage that reached it."""
    angles = np.stack([_stage_spectrum(spec, stage) * stage.context for stage in lineage.stages])
    return angles.max(axis=0), angles.argmax(axis=0)


def _stage_spectrum(spec: RopeSpec, stage: Stage) -> np.ndarray:
    stage_spec = spec if stage.rope is None else with_rope_parameters(spec, stage.rope)
    return spectrum(stage_spec, seq_len=stage.context).inv_freq


def _largest_fitting(spec: RopeSpec, allowance: np.ndarray, pairs: np.ndarray, start: int) -> int | None:
    """Largest L ≥ ``start`` with ω_i(L)·L ≤ allowance_i on ``pairs``; None if it exceeds SEARCH_LIMIT."""
    if spec.rope_type not in LENGTH_DEPENDENT:
        omega = spectrum(spec, seq_len=start).inv_freq[pairs]
        limit = float(np.min(allowance[pairs] / omega)) * (1 + _SLACK)
        return None if limit > SEARCH_LIMIT else max(start, math.floor(limit))

    def fits(length: int) -> bool:
        omega = spectrum(spec, seq_len=length).inv_freq[pairs]
        return bool(np.all(omega * length <= allowance[pairs] * (1 + _SLACK)))

    if not fits(start):
        return start
    good, bad = start, 2 * start
    while fits(bad):
        if bad >= SEARCH_LIMIT:
            return None
        good, bad = bad, min(2 * bad, SEARCH_LIMIT)
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if fits(middle) else (good, middle)
    return good


def _mechanism(spec: RopeSpec, lineage: Lineage, pair: int, stage: int, context: int) -> str:
    if spec.rope_type == "dynamic":
        return "dynamic_ntk"
    used = spectrum(spec, seq_len=context)
    if spec.rope_type in INTERPOLATING and used.interpolation is not None and used.interpolation[pair] > 0:
        return "interpolation"
    if spec.rope_type == "longrope" and context > (spec.original_max_position_embeddings or context):
        return "interpolation"
    return "base_change" if lineage.stages[stage].rope is not None else "critical_dimension"


def _precision_limit(spec: RopeSpec, up_to: int | None, dtype: str) -> int | None:
    """The first position whose angle collides with the next one's, up to ``up_to`` (None: up to where the
    positions themselves stop being exact, or SEARCH_LIMIT), as a context length (positions 0 … m fit in m + 1
    tokens). No collision can occur below 2^p − 1 (p significand bits), so shorter reaches cost nothing."""
    reach = min(bounds.largest_exact_integer(dtype) + 2, SEARCH_LIMIT, SEARCH_LIMIT if up_to is None else up_to + 1)
    if reach < 2 ** bounds.MANTISSA_BITS[dtype] - 1:
        return None
    inv_freq = spectrum(spec, seq_len=reach).inv_freq
    collapsed = bounds.first_collapsed_positions(inv_freq, reach, dtype)
    hits = collapsed[collapsed >= 0]
    return int(hits.min()) + 1 if hits.size else None


def predict_break(
    spec: RopeSpec,
    lineage: Lineage | None = None,
    dtype: str = "fp32",
    *,
    trained_angle: float = TRAINED_ANGLE,
    tolerance: float = TOLERANCE,
) -> BreakPrediction:
    """Where ``spec`` breaks (see the module docstring), for ``lineage`` (default: the spec's own, else assumed)
    and angles computed in ``dtype``. ``trained_angle`` and ``tolerance`` (the fraction of the unseen arc
    2π − θ_i an under-trained pair may enter) exist for ``ropescope calibrate``'s sensitivity study."""
    dtype = bounds.check_dtype(dtype)
    findings: tuple[Finding, ...] = ()
    if lineage is None:
        lineage = spec.lineage
    if lineage is None:
        lineage, findings = assumed_lineage(spec)
    lineage = completed_lineage(spec, lineage)
    if spec.sliding_window is not None:
        findings += (
            Finding(
                "dense-attention-assumed",
                "info",
                f"sliding_window {spec.sliding_window:,}: layers that attend through the window never see a "
                "distance beyond it; the predicted break assumes dense attention",
            ),
        )
    theta, stage_of = seen_angles(spec, lineage)
    rotating = spectrum(spec, seq_len=lineage.trained_context).inv_freq > 0
    under = np.flatnonzero(rotating & (theta < trained_angle))
    start = lineage.trained_context
    inputs: dict[str, Any] = {
        "trained_context": start,
        "rotary_dim": spec.rotary_dim,
        "head_dim": spec.head_dim,
        "rope_type": spec.rope_type,
        "base": spec.base,
        "trained_pairs": int(rotating.sum() - under.size),
        "under_trained_pairs": int(under.size),
        "dtype": dtype,
    }
    if under.size:
        low = _largest_fitting(spec, theta + tolerance * (2 * math.pi - theta), under, start)
        full_turn = _largest_fitting(spec, np.full_like(theta, 2 * math.pi), under, start)
        cap = None if low is None else math.floor(MAX_WIDTH * low)
        high = cap if full_turn is None else (full_turn if cap is None else min(full_turn, cap))
        at = low or SEARCH_LIMIT
        omega = spectrum(spec, seq_len=at).inv_freq
        pair = int(under[np.argmin(theta[under] / omega[under])])
        stage_context = lineage.stages[int(stage_of[pair])].context
        inputs.update(
            critical_pair=pair,
            critical_pair_seen_angle=float(theta[pair]),
            critical_pair_period_in_training=float(2 * math.pi * stage_context / theta[pair]),
            critical_pair_period_in_use=float(2 * math.pi / omega[pair]),
            critical_pair_stage_context=stage_context,
        )
        mechanism = _mechanism(spec, lineage, pair, int(stage_of[pair]), at)
        formula = FORMULA
    else:
        low = high = None
        mechanism, formula = "no_rope_limit", FORMULA
    wall = _precision_limit(spec, high, dtype)
    if wall is not None and (low is None or wall < low):
        inputs.update(first_collapsed_position=wall - 1, largest_exact_position=bounds.largest_exact_integer(dtype))
        high_wall = min(bounds.largest_exact_integer(dtype), math.floor(MAX_WIDTH * wall))
        return BreakPrediction(
            wall, wall, max(wall, high_wall), "precision_wall", PRECISION_FORMULA, inputs, lineage, findings
        )
    return BreakPrediction(low, low, high, mechanism, formula, inputs, lineage, findings)
