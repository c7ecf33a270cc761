"""Audit a model's positional encoding at a target context: the predicted break and every bound as a diagnostic.

The verdict comes from the break-point predictor (:mod:`ropescope.predict`): ``ok`` when L ≤ the predicted
break's low end, ``at_risk`` inside its interval, ``fail`` beyond. When it is not ``ok`` the audit carries the
cheapest fix that moves the break past L (:mod:`ropescope.fixes`).

Every bound of :mod:`ropescope.bounds` is evaluated in the forms that apply, as a diagnostic whose measured
false-alarm and miss counts ``ropescope calibrate`` reports. The paper form reads ``rope_theta`` as published
(Liu 2026, arXiv 2602.10959; Liu et al. 2023, arXiv 2310.05209). The exact form uses the spectrum the model runs
at L (``spectrum(spec, seq_len=L)``): b_eff = 1/ω_min in the Liu 2026 lower bounds; for the precision wall, the
kernel simulation (no two consecutive positions below L may get the same angle when position × inv_freq is
computed in the dtype), with b_eff < 1/ε_mach reported beside it; for Liu 2023, the period of the critical pair
(d_extra/2, from the unscaled base and training context) in the used spectrum. The Men et al. 2024 condition
(arXiv 2405.14591) B(m) = Σ_i cos(m·ω_i) ≥ 0 for m < L is checked on the used spectrum. The bounds' own verdict
(``bounds_verdict``: ``fail`` if aliasing or the precision wall is violated, else ``at_risk`` if a stability or
the Men bound is, else ``ok``) is kept beside it, for each ε of ``SENSITIVITY_EPS``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ropescope import bounds
from ropescope.config import Finding, RopeSpec
from ropescope.fixes import Fix, recommend_fix
from ropescope.lineage import Lineage
from ropescope.model_types import PositionalScheme
from ropescope.predict import BreakPrediction, predict_break
from ropescope.spectrum import spectrum

SENSITIVITY_EPS = (0.1, 0.5, 0.9)
MEN_SEARCH_LIMIT = 2**21  # tokens: the single audit's Men minimum-base search stops here by default
VERDICTS = ("ok", "at_risk", "fail")
_FAIL_BOUNDS = frozenset({"aliasing", "precision_wall"})
_RISK_BOUNDS = frozenset({"dc_stability", "depth_stability", "men2024"})


@dataclass(frozen=True)
class BoundCheck:
    """One bound in one form: ``quantity`` (base, effective_base or context) must be ≥ (lower) or ≤ (upper)
    ``limit``; ``value`` is the model's quantity. ``detail`` carries what else the bound computed."""

    name: str
    form: str | None
    kind: str
    quantity: str
    limit: float | None
    value: float
    satisfied: bool
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "form": self.form,
            "kind": self.kind,
            "quantity": self.quantity,
            "limit": _finite(self.limit),
            "value": _finite(self.value),
            "satisfied": self.satisfied,
            **{key: _finite(value) for key, value in self.detail.items()},
        }


@dataclass(frozen=True)
class AuditReport:
    """One model at one context, dtype and ε: the predicted break, the verdict, the fix, and every bound."""

    model: str
    rope_type: str
    context: int
    dtype: str
    eps: float
    layers: int
    rotary_dim: int
    base: float
    effective_base: float
    prediction: BreakPrediction
    fix: Fix | None
    checks: tuple[BoundCheck, ...]
    zone: bounds.Zone | None
    bounds_verdict: str
    sensitivity: Mapping[float, str]
    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        return self.prediction.verdict(self.context)

    @property
    def trained_context(self) -> int:
        return self.prediction.lineage.trained_context

    def check(self, name: str, form: str | None = "exact") -> BoundCheck:
        return next(c for c in self.checks if c.name == name and c.form in (form, None))

    def to_dict(self) -> dict[str, Any]:
        prediction = self.prediction.to_dict()
        return {
            "model": self.model,
            "rope_type": self.rope_type,
            "context": self.context,
            "trained_context": self.trained_context,
            "predicted_break": {k: prediction[k] for k in ("context", "low", "high", "mechanism", "description")},
            "verdict": self.verdict,
            "fix": None if self.fix is None else self.fix.to_dict(),
            "prediction": prediction,
            "dtype": self.dtype,
            "eps": self.eps,
            "layers": self.layers,
            "rotary_dim": self.rotary_dim,
            "base": self.base,
            "effective_base": self.effective_base,
            "bounds": [c.to_dict() for c in self.checks],
            "bounds_verdict": self.bounds_verdict,
            "sensitivity": {str(eps): verdict for eps, verdict in self.sensitivity.items()},
            "zone": None if self.zone is None else {k: _finite(v) for k, v in self.zone.to_dict().items()},
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
        }


def _finite(value: Any) -> Any:
    """JSON has no infinity: +inf becomes None (no limit / not reachable)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _liu2026_checks(base: float, effective_base: float, context: int, eps: float, layers: int) -> list[BoundCheck]:
    lower = bounds.exact_lower_effective_bases(context, eps, layers)
    checks = []
    for name, limit in lower.items():
        strict = name == "aliasing"  # L < 2π·b is strict; the stability bounds allow equality
        for form, value, quantity in (("paper", base, "base"), ("exact", effective_base, "effective_base")):
            satisfied = value > limit if strict else value >= limit
            checks.append(BoundCheck(name, form, "lower", quantity, limit, value, satisfied))
    return checks


def _precision_checks(
    base: float, effective_base: float, inv_freq: np.ndarray, context: int, dtype: str
) -> list[BoundCheck]:
    """Paper form b < 1/ε_mach; exact form: the kernel simulation finds no collapsed angle below L."""
    wall = bounds.precision_wall_max_base(dtype)
    collapsed = bounds.first_collapsed_positions(inv_freq, context, dtype)
    hits = collapsed[collapsed >= 0]
    detail = {
        "effective_base_below_limit": effective_base < wall,
        "first_collapse": int(hits.min()) if hits.size else None,
        "collapsed_pairs": int(hits.size),
        "largest_exact_position": bounds.largest_exact_integer(dtype),
    }
    exact = BoundCheck(
        "precision_wall", "exact", "upper", "effective_base", wall, effective_base, not hits.size, detail
    )
    return [BoundCheck("precision_wall", "paper", "upper", "base", wall, base, base < wall), exact]


def _critical_checks(spec: RopeSpec, inv_freq: np.ndarray, context: int) -> list[BoundCheck]:
    train = spec.training_context
    if train is None:
        return []
    d = spec.rotary_dim
    critical = bounds.critical_dimension(d, spec.base, train)
    paper = bounds.extrapolation_limit(d, spec.base, critical)
    pair = critical // 2
    exact = math.inf if pair >= inv_freq.size or inv_freq[pair] <= 0 else 2 * math.pi / float(inv_freq[pair])
    detail = {"critical_dim": critical, "train_context": train}
    return [
        BoundCheck("critical_dimension", "paper", "upper", "context", paper, context, context <= paper, detail),
        BoundCheck("critical_dimension", "exact", "upper", "context", exact, context, context <= exact, detail),
    ]


def verdict_of_bounds(checks: Iterable[BoundCheck]) -> str:
    violated = {c.name for c in checks if c.form in ("exact", None) and not c.satisfied}
    if violated & _FAIL_BOUNDS:
        return "fail"
    return "at_risk" if violated & _RISK_BOUNDS else "ok"


def _fixed_checks(spec: RopeSpec, context: int, dtype: str) -> tuple[list[BoundCheck], float]:
    """The checks that do not depend on ε, and b_eff of the spectrum used at L."""
    used = spectrum(spec, seq_len=context)
    checks = _precision_checks(spec.base, used.effective_base, used.inv_freq, context, dtype)
    men = bounds.men_b_min(used.inv_freq, context)
    details = {"min_b": men.min_value, "argmin": men.argmin}
    checks.append(BoundCheck("men2024", None, "lower", "base", None, spec.base, men.satisfied, details))
    checks += _critical_checks(spec, used.inv_freq, context)
    return checks, used.effective_base


def bound_checks(
    spec: RopeSpec, context: int, dtype: str, eps_values: Iterable[float], layers: int
) -> tuple[dict[float, list[BoundCheck]], float]:
    """Every bound at ``context`` for each ε (Men limit not searched; the checks that do not depend on ε are
    computed once), and b_eff of the spectrum in use there."""
    fixed, effective_base = _fixed_checks(spec, context, dtype)
    by_eps = {eps: _liu2026_checks(spec.base, effective_base, context, eps, layers) + fixed for eps in eps_values}
    return by_eps, effective_base


def audit(
    spec: RopeSpec,
    context: int,
    dtype: str = "fp32",
    eps: float = 0.5,
    *,
    lineage: Lineage | None = None,
    search_men_base: bool | None = None,
    progress: bounds.MenProgress | None = None,
) -> AuditReport:
    """Audit ``spec`` at ``context`` tokens with angles computed in ``dtype`` and coherence threshold ``eps``.

    ``lineage`` overrides the spec's own (catalog or config) training lineage. ``search_men_base`` runs
    :func:`ropescope.bounds.men_min_base` for the model's d and L (the Men limit and the zone need it); without
    it the Men condition is still checked on the spectrum; ``progress`` is called as the Men search advances.
    By default the search runs up to ``MEN_SEARCH_LIMIT`` tokens: past it, it takes minutes for the bound the
    calibration rates least reliable (``ropescope bounds`` runs it at any context).
    """
    context, dtype, eps = bounds.check_context(context), bounds.check_dtype(dtype), bounds.check_eps(eps)
    if search_men_base is None:
        search_men_base = context <= MEN_SEARCH_LIMIT
    notes = []
    layers = spec.num_layers
    if layers is None:
        layers = 1
        notes.append("num_hidden_layers missing: the depth bound uses N = 1")
    prediction = predict_break(spec, lineage, dtype)
    by_eps, effective_base = bound_checks(spec, context, dtype, (eps, *SENSITIVITY_EPS), layers)
    checks = by_eps[eps]
    zone = bounds.goldilocks_zone(
        spec.rotary_dim, layers, context, dtype, eps, search_men_base=search_men_base, progress=progress
    )
    if search_men_base:
        checks = [replace(c, limit=zone.lower["men2024"]) if c.name == "men2024" else c for c in checks]
    else:
        notes.append(
            "Men minimum-base search skipped (the zone uses the Liu 2026 bounds only): `ropescope bounds "
            f"--rotary-dim {spec.rotary_dim} --layers {layers} --context {context}` runs it"
        )
    if spec.rope_type != "default":
        notes.append(
            f"{spec.rope_type} scaling: paper forms read rope_theta as published; exact forms use the spectrum at L"
        )
    sensitivity = {other: verdict_of_bounds(by_eps[other]) for other in SENSITIVITY_EPS}
    return AuditReport(
        model=spec.source,
        rope_type=spec.rope_type,
        context=context,
        dtype=dtype,
        eps=eps,
        layers=layers,
        rotary_dim=spec.rotary_dim,
        base=spec.base,
        effective_base=effective_base,
        prediction=prediction,
        fix=recommend_fix(spec, prediction, context, dtype),
        checks=tuple(checks),
        zone=zone,
        bounds_verdict=verdict_of_bounds(checks),
        sensitivity=sensitivity,
        findings=spec.findings + prediction.findings,
        notes=tuple(notes),
    )


def audit_catalog(
    dtype: str = "fp32", eps: float = 0.5, *, context: int | None = None, search_men_base: bool = False
) -> list[tuple[str, AuditReport]]:
    """Audit every embedded catalog model at ``context``, or at its advertised context: ``(id, report)``."""
    from ropescope.catalog import entries
    from ropescope.config import load_spec

    return [
        (
            entry.id,
            audit(
                load_spec(entry.id), context or entry.advertised_context, dtype, eps, search_men_base=search_men_base
            ),
        )
        for entry in entries()
    ]


RELIABLE_FALSE_ALARMS = 0.1  # a bound sets the design floor when it flags at most this share of working models


@dataclass(frozen=True)
class Design:
    """``ropescope bounds``: a plain RoPE of dimension d and N layers, trained at ``trained_context``, for L.

    ``floors`` holds each exact lower bound as a plain base and whether the catalog rates it reliable (false
    alarms on at most ``RELIABLE_FALSE_ALARMS`` of the working observations); ``base`` is the smallest base that
    meets every reliable floor, ``prediction`` the predicted break of that design, and ``fix`` what to add when
    that break falls short of L. ``small_base`` is the largest base whose pairs all turn half a period within the
    training context (no RoPE limit predicted, Liu 2023's small-base regime)."""

    zone: bounds.Zone
    trained_context: int
    floors: Mapping[str, tuple[float, bool]]
    floor: float
    base: float
    small_base: float
    prediction: BreakPrediction
    fix: Fix | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "trained_context": self.trained_context,
            "recommended_base": self.base,
            "floor": self.floor,
            "floors": {name: {"base": _finite(b), "reliable": ok} for name, (b, ok) in self.floors.items()},
            "small_base_regime_max": self.small_base,
            "predicted_break": {k: self.prediction.to_dict()[k] for k in ("context", "low", "high", "mechanism")},
            "verdict": self.prediction.verdict(self.zone.context),
            "fix": None if self.fix is None else self.fix.to_dict(),
        }


def design(zone: bounds.Zone, trained_context: int, rates: Any) -> Design:
    """The design answer for ``zone``'s d, N, L, dtype and ε when trained at ``trained_context`` tokens;
    ``rates`` is :func:`ropescope.calibrate.shipped_rates` (which bounds are reliable)."""
    from ropescope.config import spec_from_config

    d, context = zone.rotary_dim, zone.context
    reliable = {
        name: rates.false_alarm_share(name, "exact" if name != "men2024" else None, zone.eps) <= RELIABLE_FALSE_ALARMS
        for name in zone.lower
    }
    floors = {name: (base, reliable[name]) for name, base in zone.lower.items()}
    floor = max([b for b, ok in floors.values() if ok] + [1.0 + 1e-9])
    base = float(f"{floor:.2g}") if float(f"{floor:.2g}") >= floor else float(f"{floor * 1.05:.2g}")
    spec = spec_from_config(
        {
            "head_dim": d,
            "num_hidden_layers": zone.layers,
            "max_position_embeddings": trained_context,
            "rope_theta": base,
        },
        f"plain RoPE d={d}, base {base:.4g}",
    )
    prediction = predict_break(spec, dtype=zone.dtype)
    small_base = (trained_context / math.pi) ** (d / (d - 2))
    fix = recommend_fix(spec, prediction, context, zone.dtype)
    return Design(zone, trained_context, floors, floor, base, small_base, prediction, fix)


def scheme_audit(model: str, scheme: PositionalScheme, context: int) -> dict[str, Any]:
    """The audit of a model without RoPE: its scheme's own limit instead of RoPE bounds. A learned table ends at
    its size; ALiBi, T5's relative bias, sinusoids and no encoding set no positional limit here; a learned table
    of unknown size leaves the verdict ``unknown`` rather than a guess."""
    context = bounds.check_context(context)
    if scheme.name == "learned_absolute":
        limit = scheme.limit
        mechanism = "learned_table" if limit is not None else "unknown"
        verdict = "unknown" if limit is None else ("ok" if context <= limit else "fail")
    else:
        limit, mechanism, verdict = None, "no_rope_limit", "ok"
    return {
        "model": model,
        "context": context,
        "positional_scheme": scheme.to_dict(),
        "trained_context": None,
        "predicted_break": {"context": limit, "low": limit, "high": limit, "mechanism": mechanism},
        "verdict": verdict,
        "fix": None,
    }
