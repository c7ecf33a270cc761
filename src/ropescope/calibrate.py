"""Score every bound against what real models are known to do.

Each catalog model lists observations: a context at which it is reported to work or to fail. For every bound
and form of :mod:`ropescope.audit`, and every ε of a grid, an observation is a *false alarm* when the model is
reported to work but the bound is violated there, and a *miss* when it is reported to fail but the bound holds.
The ``verdict`` row scores the audit verdict (anything but ``ok`` counts as a warning). Only observations of
the released configuration are scored (``setting`` beginning with "as released"); others change the model and
are listed as skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from ropescope import bounds
from ropescope.audit import audit
from ropescope.catalog import Observation, entries
from ropescope.config import load_spec

EPS_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class Score:
    """How one bound in one form fares at one ε over the scored observations."""

    bound: str
    form: str | None
    eps: float
    false_alarms: int
    misses: int
    successes: int
    failures: int

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Calibration:
    dtype: str
    eps_grid: tuple[float, ...]
    scores: tuple[Score, ...]
    scored: int
    skipped: tuple[tuple[str, Observation], ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "dtype": self.dtype,
            "eps_grid": list(self.eps_grid),
            "scored_observations": self.scored,
            "skipped": [{"model": model, **obs.__dict__} for model, obs in self.skipped],
            "scores": [s.to_dict() for s in self.scores],
        }


def calibrate(eps_grid: tuple[float, ...] = EPS_GRID, dtype: str = "fp32") -> Calibration:
    """False alarms and misses of every bound and form, for each ε in ``eps_grid``."""
    eps_grid = tuple(bounds.check_eps(eps) for eps in eps_grid)
    dtype = bounds.check_dtype(dtype)
    scored: list[tuple[str, Observation]] = []
    skipped: list[tuple[str, Observation]] = []
    for entry in entries():
        for observation in entry.observations:
            released = observation.setting.lower().startswith("as released")
            (scored if released else skipped).append((entry.id, observation))
    tallies: dict[tuple[str, str | None, float], list[int]] = {}
    successes = sum(obs.works for _, obs in scored)
    for model, observation in scored:
        spec = load_spec(model)
        for eps in eps_grid:
            report = audit(spec, observation.context, dtype, eps, search_men_base=False)
            flags = [(c.name, c.form, not c.satisfied) for c in report.checks]
            flags.append(("verdict", None, report.verdict != "ok"))
            for name, form, flagged in flags:
                tally = tallies.setdefault((name, form, eps), [0, 0])
                tally[0] += observation.works and flagged
                tally[1] += (not observation.works) and not flagged
    scores = tuple(
        Score(name, form, eps, alarms, misses, successes, len(scored) - successes)
        for (name, form, eps), (alarms, misses) in tallies.items()
    )
    return Calibration(dtype, eps_grid, scores, len(scored), tuple(skipped))
