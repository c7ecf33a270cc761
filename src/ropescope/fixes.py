"""The cheapest change that moves a model's predicted break (:mod:`ropescope.predict`) past a target context.

Candidates, cheapest first; each is checked by predicting the changed model with the same training lineage,
and the first whose predicted break reaches the target (``low ≥ L``, so the verdict is ``ok``) is chosen:

1. **fp64 angles** when the precision wall sets the break (Liu 2026, arXiv 2602.10959): form position × ω in
   float64 and cast cos/sin afterwards. A code change in the rotary kernel, not a config change.
2. **A larger scaling factor, no fine-tuning**: YaRN (Peng et al. 2023, arXiv 2309.00071) with
   ``original_max_position_embeddings`` = the last training context for unscaled RoPE, or the model's own
   scaling with a larger ``factor`` (YaRN, llama3, dynamic NTK; LongRoPE's long factors all multiplied by the
   same integer). The interpolated pairs turn s times slower, so the under-trained ones stay inside their trained
   angles about s times longer. The factor is the smallest integer that reaches L. YaRN and dynamic NTK are used
   without fine-tuning in practice; a larger linear (PI, Chen et al. 2023, arXiv 2306.15595), llama3 or LongRoPE
   factor is marked as needing fine-tuning, as those methods were fine-tuned at their factor.
   When L is past the precision wall of the angle dtype, the candidates are tried with fp64 angles.
3. **A new base and fine-tuning at L**: ``rope_theta`` × (L/T)^(d/(d−2)) (the NTK-aware base for the length
   ratio, as Code Llama and ABF raise the base before long-context training), then training on L-token
   sequences, which adds a stage at L to the lineage.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from ropescope import bounds
from ropescope.config import RopeSpec, rope_parameters, with_rope_parameters
from ropescope.lineage import CONFIG_KEY, Lineage, Stage
from ropescope.predict import BreakPrediction, explicit_lineage, predict_break
from ropescope.spectrum import longrope_factor

TRAINING_FREE = frozenset({"yarn", "dynamic"})
RESCALABLE = TRAINING_FREE | {"linear", "llama3", "longrope"}
MAX_FACTOR = 2**20


@dataclass(frozen=True)
class Fix:
    """A change to the model and what the predictor says of the changed model."""

    kind: str  # "fp64_angles", "rescale" or "rebase"
    summary: str
    needs_fine_tuning: bool
    rope_parameters: Mapping[str, Any] | None  # transformers v5, rope_theta inside
    max_position_embeddings: int | None
    lineage: Lineage
    dtype: str
    predicted: BreakPrediction

    @property
    def rope_scaling(self) -> dict[str, Any] | None:
        """The same change as a transformers v4 ``rope_scaling`` dict (``rope_theta`` stays a top-level key)."""
        if self.rope_parameters is None or self.rope_parameters["rope_type"] == "default":
            return None
        return {k: v for k, v in self.rope_parameters.items() if k != "rope_theta"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "summary": self.summary,
            "needs_fine_tuning": self.needs_fine_tuning,
            "rope_parameters": None if self.rope_parameters is None else dict(self.rope_parameters),
            "rope_scaling": self.rope_scaling,
            "rope_theta": None if self.rope_parameters is None else self.rope_parameters["rope_theta"],
            "max_position_embeddings": self.max_position_embeddings,
            "dtype": self.dtype,
            "predicted_break": {k: self.predicted.to_dict()[k] for k in ("context", "low", "high", "mechanism")},
        }


def recommend_fix(spec: RopeSpec, prediction: BreakPrediction, context: int, dtype: str = "fp32") -> Fix | None:
    """The cheapest change whose predicted break reaches ``context``; None when the prediction already does."""
    if prediction.verdict(context) == "ok":
        return None
    lineage = explicit_lineage(spec, prediction.lineage)
    if prediction.mechanism == "precision_wall" and dtype != "fp64":
        after = predict_break(spec, lineage, "fp64")
        if after.verdict(context) == "ok":
            return Fix(
                "fp64_angles",
                f"compute the rotary angles position × inv_freq in fp64 (then cast cos/sin): in {dtype}, "
                f"positions from {prediction.context:,} share angles",
                False,
                None,
                None,
                lineage,
                "fp64",
                after,
            )
    # past 2^(p+1) + 1 tokens the positions themselves are not exact in the dtype: only fp64 angles can work
    exact = bounds.largest_exact_integer(dtype) + 1 >= context
    dtypes = (dtype,) if dtype == "fp64" else ((dtype, "fp64") if exact else ("fp64",))
    for angle_dtype in dtypes:
        fix = _rescale(spec, lineage, context, angle_dtype)
        if fix is not None:
            return fix
    rebased = [_rebase(spec, lineage, context, angle_dtype) for angle_dtype in dtypes]
    return next((fix for fix in rebased if fix.predicted.verdict(context) == "ok"), rebased[-1])


def _current_factor(spec: RopeSpec) -> int:
    """The factor the search starts from; for LongRoPE the multiplier of its long factors (1)."""
    return 1 if spec.rope_type == "longrope" or spec.rope_type not in RESCALABLE else int(spec.factor or 1)


def _rescaled_parameters(spec: RopeSpec, trained_context: int, factor: int) -> dict[str, Any] | None:
    params = rope_parameters(spec)
    if spec.rope_type == "longrope":
        params["long_factor"] = [value * factor for value in params["long_factor"]]
        params["factor"] = float(longrope_factor(spec) * factor)
        return params
    if spec.rope_type in RESCALABLE:
        params["factor"] = float(factor)
        return params
    if spec.rope_type in {"default", "ntk", "entropy_abf"}:
        base = (
            spec.base
            if spec.rope_type != "ntk"
            else spec.base * spec.scaling["factor"] ** (spec.rotary_dim / (spec.rotary_dim - 2))
        )
        return {
            "rope_type": "yarn",
            "rope_theta": base,
            "factor": float(factor),
            "original_max_position_embeddings": trained_context,
        }
    return None


def _changed(spec: RopeSpec, params: Mapping[str, Any], context: int) -> tuple[RopeSpec, int | None]:
    """The spec with ``params``; dynamic NTK keeps max_position_embeddings (its reference length)."""
    if params["rope_type"] == "dynamic":
        return with_rope_parameters(spec, params), spec.max_position_embeddings
    positions = max(context, spec.max_position_embeddings or 0)
    original = params.get("original_max_position_embeddings", spec.original_max_position_embeddings)
    if params["rope_type"] in ("yarn", "longrope") and original is not None:
        positions = max(positions, math.ceil(params["factor"] * original))
    return with_rope_parameters(spec, params, positions), positions


def _rescale(spec: RopeSpec, lineage: Lineage, context: int, dtype: str) -> Fix | None:
    current = _current_factor(spec)

    def attempt(
        factor: int, angles: str = "fp64"
    ) -> tuple[dict[str, Any], RopeSpec, int | None, BreakPrediction] | None:
        params = _rescaled_parameters(spec, lineage.trained_context, factor)
        if params is None:
            return None
        changed, positions = _changed(spec, params, context)
        return params, changed, positions, predict_break(changed, lineage, angles)

    def reaches(factor: int) -> bool:
        tried = attempt(factor)
        return tried is not None and tried[3].verdict(context) == "ok"

    low, high = current, current + 1
    while not reaches(high):
        if high >= MAX_FACTOR or attempt(high) is None:
            return None
        low, high = high, min(2 * high, MAX_FACTOR)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if reaches(middle) else (middle, high)
    tried = attempt(high, dtype)  # the search ran with fp64 angles (no precision wall); check the wall once here
    assert tried is not None
    params, _, positions, after = tried
    if after.verdict(context) != "ok":
        return None
    kind = params["rope_type"]
    fine_tune = kind not in TRAINING_FREE
    if spec.rope_type == "longrope":
        summary = f"LongRoPE long_factor × {high} (factor {params['factor']:g}, max_position_embeddings {positions:,})"
    elif spec.rope_type == kind:
        summary = f"{kind} factor {high} (from {current})"
        if kind != "dynamic":
            summary += f", max_position_embeddings {positions:,}"
    else:
        summary = f"YaRN factor {high} over the last training context {lineage.trained_context:,}"
    if dtype == "fp64":
        summary += ", angles computed in fp64"
    return Fix("rescale", summary, fine_tune, MappingProxyType(params), positions, lineage, dtype, after)


def _rebase(spec: RopeSpec, lineage: Lineage, context: int, dtype: str) -> Fix:
    d, trained = spec.rotary_dim, lineage.trained_context
    raw = spec.base * max(1.0, context / trained) ** (d / (d - 2))
    base = float(f"{raw:.2g}") if float(f"{raw:.2g}") >= raw else float(f"{raw * 1.05:.2g}")
    params = {**rope_parameters(spec), "rope_theta": base}
    changed, positions = _changed(spec, params, context)
    tuned = replace(lineage, stages=(*lineage.stages, Stage(context, MappingProxyType(params))))
    after = predict_break(changed, tuned, dtype)
    wall = bounds.precision_wall_max_base(dtype)
    summary = f"raise rope_theta to {base:g} and fine-tune on {context:,}-token sequences"
    if base >= wall:
        summary += f" (above the {dtype} precision wall 1/ε = {wall:g}: compute the angles in fp64)"
    return Fix("rebase", summary, True, MappingProxyType(params), positions, tuned, dtype, after)


def patched_config(config: Mapping[str, Any], fix: Fix) -> dict[str, Any]:
    """``config`` with ``fix`` applied in the schema it uses, and the lineage under ``ropescope_lineage``."""
    out = copy.deepcopy(dict(config))
    target = out
    if isinstance(out.get("text_config"), dict) and not any(k in out for k in ("rope_theta", "rope_scaling")):
        target = out["text_config"]
    if fix.rope_parameters is not None:
        params = dict(fix.rope_parameters)
        nested = target.get("rope_parameters")
        if isinstance(nested, dict) and nested and all(isinstance(v, dict) for v in nested.values()):
            nested["full_attention" if "full_attention" in nested else next(iter(nested))] = params
        elif "rope_parameters" in target and "rope_scaling" not in target:
            target["rope_parameters"] = params
        else:
            target.pop("rope_parameters", None)
            target["rope_theta"] = params["rope_theta"]
            target["rope_scaling"] = fix.rope_scaling
            for key in ("rotary_emb_base", "rope_ratio"):
                target.pop(key, None)
    if fix.max_position_embeddings is not None:
        key = (
            "seq_length"
            if "seq_length" in target and "max_position_embeddings" not in target
            else "max_position_embeddings"
        )
        target[key] = fix.max_position_embeddings
    out[CONFIG_KEY] = {
        "stages": [stage.to_dict() for stage in fix.lineage.stages],
        "sources": [f"ropescope audit --emit-config: {fix.summary}"],
    }
    return out
