"""Audit a model's positional encoding at a target context against every bound of :mod:`ropescope.bounds`.

Each bound is evaluated in the forms that apply. The paper form reads ``rope_theta`` as published (Liu 2026,
arXiv 2602.10959; Liu et al. 2023, arXiv 2310.05209). The exact form uses the spectrum the model runs at L
(``spectrum(spec, seq_len=L)``): b_eff = 1/ω_min in the Liu 2026 lower bounds; for the precision wall, the
kernel simulation (no two consecutive positions below L may get the same angle when position × inv_freq is
computed in the dtype), with b_eff < 1/ε_mach reported beside it; for Liu 2023, the period of the critical pair
(d_extra/2, from the unscaled base and training context) in the used spectrum. The Men et al. 2024 condition
(arXiv 2405.14591) B(m) = Σ_i cos(m·ω_i) ≥ 0 for m < L is checked on the used spectrum.

Verdict, from the exact forms: ``fail`` if aliasing or the precision wall is violated, else ``at_risk`` if a
stability or the Men bound is, else ``ok``. The critical-dimension bound is reported and calibrated but does
not move the verdict. The recommendation is the smallest plain-RoPE base meeting every lower bound (the zone's
floor), with the equivalent static-NTK factor s (b·s^(d/(d−2)) reaches it) and YaRN factor s (the current
base's ω_min/s meets the largest Liu 2026 lower bound on b_eff; YaRN leaves the Men condition unchecked).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ropescope import bounds
from ropescope.config import Finding, RopeSpec
from ropescope.spectrum import default_inv_freq, spectrum

SENSITIVITY_EPS = (0.1, 0.5, 0.9)
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
class Recommendation:
    """What base would satisfy every lower bound, and how to get there from the current one."""

    base: float | None
    ntk_factor: float | None
    yarn_factor: float | None
    within_precision_wall: bool
    action: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": _finite(self.base),
            "ntk_factor": _finite(self.ntk_factor),
            "yarn_factor": _finite(self.yarn_factor),
            "within_precision_wall": self.within_precision_wall,
            "action": self.action,
        }


@dataclass(frozen=True)
class AuditReport:
    """Every bound for one model at one context, dtype and ε, with the verdict and the recommendation."""

    model: str
    rope_type: str
    context: int
    dtype: str
    eps: float
    layers: int
    rotary_dim: int
    base: float
    effective_base: float
    checks: tuple[BoundCheck, ...]
    zone: bounds.Zone | None
    verdict: str
    sensitivity: Mapping[float, str]
    findings: tuple[Finding, ...]
    recommendation: Recommendation
    notes: tuple[str, ...] = ()

    def check(self, name: str, form: str | None = "exact") -> BoundCheck:
        return next(c for c in self.checks if c.name == name and c.form in (form, None))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "rope_type": self.rope_type,
            "context": self.context,
            "dtype": self.dtype,
            "eps": self.eps,
            "layers": self.layers,
            "rotary_dim": self.rotary_dim,
            "base": self.base,
            "effective_base": self.effective_base,
            "bounds": [c.to_dict() for c in self.checks],
            "zone": None if self.zone is None else {k: _finite(v) for k, v in self.zone.to_dict().items()},
            "verdict": self.verdict,
            "sensitivity": {str(eps): verdict for eps, verdict in self.sensitivity.items()},
            "findings": [f.to_dict() for f in self.findings],
            "recommendation": self.recommendation.to_dict(),
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


def _verdict(checks: Iterable[BoundCheck]) -> str:
    violated = {c.name for c in checks if c.form in ("exact", None) and not c.satisfied}
    if violated & _FAIL_BOUNDS:
        return "fail"
    return "at_risk" if violated & _RISK_BOUNDS else "ok"


def _recommend(
    spec: RopeSpec, zone: bounds.Zone, verdict: str, dtype: str, context: int, eps: float, layers: int
) -> Recommendation:
    d, base = spec.rotary_dim, spec.base
    required = zone.min_base
    ntk = max(1.0, (required / base) ** ((d - 2) / d)) if math.isfinite(required) else None
    needed_effective = max(bounds.exact_lower_effective_bases(context, eps, layers).values())
    yarn = max(1.0, needed_effective * float(default_inv_freq(base, d).min()))
    positions_exact = context - 1 <= bounds.largest_exact_integer(dtype)
    within = required < zone.max_base and positions_exact
    if verdict == "ok":
        action = "no change needed at this context"
    elif within:
        action = (
            f"raise the base to at least {required:.4g} (static NTK factor {ntk:.3g}) and fine-tune at the target "
            f"context; with YaRN from the current base, a factor ≥ {yarn:.3g} meets the Liu 2026 lower bounds "
            "(audit that config for the Men condition)"
        )
    else:
        # the lower bounds do not depend on the dtype: only the wall moves
        fp64_wall = bounds.plain_base_for_effective(bounds.precision_wall_max_base("fp64"), d)
        if dtype != "fp64" and required < fp64_wall and context - 1 <= bounds.largest_exact_integer("fp64"):
            action = (
                f"the base needed ({required:.4g}) is beyond the {dtype} precision wall: compute the angles "
                "position × inv_freq in fp64 (then cast cos/sin), and raise the base"
            )
        else:
            action = "no base satisfies every bound at this context: shorten the context or relax eps"
    return Recommendation(required if math.isfinite(required) else None, ntk, yarn, within, action)


def _fixed_checks(spec: RopeSpec, context: int, dtype: str) -> tuple[list[BoundCheck], float]:
    """The checks that do not depend on ε, and b_eff of the spectrum used at L."""
    used = spectrum(spec, seq_len=context)
    checks = _precision_checks(spec.base, used.effective_base, used.inv_freq, context, dtype)
    men = bounds.men_b_min(used.inv_freq, context)
    details = {"min_b": men.min_value, "argmin": men.argmin}
    checks.append(BoundCheck("men2024", None, "lower", "base", None, spec.base, men.satisfied, details))
    checks += _critical_checks(spec, used.inv_freq, context)
    return checks, used.effective_base


def audit(
    spec: RopeSpec, context: int, dtype: str = "fp32", eps: float = 0.5, *, search_men_base: bool = True
) -> AuditReport:
    """Audit ``spec`` at ``context`` tokens with angles computed in ``dtype`` and coherence threshold ``eps``.

    ``search_men_base`` runs :func:`ropescope.bounds.men_min_base` for the model's d and L (the Men limit, the
    zone and the recommendation need it); without it the Men condition is still checked on the spectrum.
    """
    context, dtype, eps = bounds.check_context(context), bounds.check_dtype(dtype), bounds.check_eps(eps)
    notes = []
    layers = spec.num_layers
    if layers is None:
        layers = 1
        notes.append("num_hidden_layers missing: the depth bound uses N = 1")
    fixed, effective_base = _fixed_checks(spec, context, dtype)
    zone = bounds.goldilocks_zone(spec.rotary_dim, layers, context, dtype, eps, search_men_base=search_men_base)
    if search_men_base:
        fixed = [replace(c, limit=zone.lower["men2024"]) if c.name == "men2024" else c for c in fixed]
    else:
        notes.append("Men minimum-base search skipped: the zone and recommendation use the Liu 2026 bounds only")
    if spec.rope_type != "default":
        notes.append(
            f"{spec.rope_type} scaling: paper forms read rope_theta as published; exact forms use the spectrum at L"
        )
    checks = _liu2026_checks(spec.base, effective_base, context, eps, layers) + fixed
    verdict = _verdict(checks)
    sensitivity = {
        other: _verdict(_liu2026_checks(spec.base, effective_base, context, other, layers) + fixed)
        for other in SENSITIVITY_EPS
    }
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
        checks=tuple(checks),
        zone=zone,
        verdict=verdict,
        sensitivity=sensitivity,
        findings=spec.findings,
        recommendation=_recommend(spec, zone, verdict, dtype, context, eps, layers),
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
