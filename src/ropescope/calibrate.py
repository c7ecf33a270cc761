"""Score the break-point predictor, every bound and the trained-context baseline against what real models do.

Each catalog model lists observations: a context at which it is reported to work or to fail, and by what
``measure`` (perplexity or loss, retrieval, a task score such as RULER's, or the authors' claim). Only
observations of the released RoPE settings are scored (``setting`` beginning with "as released" or "RoPE as
released"); the others change the model and are listed as skipped.

An observation is a *false alarm* of a rule when the model is reported to work but the rule flags it, and a
*miss* when it is reported to fail but the rule passes it. The rules:

* ``predictor``: flags L > the predicted break (:func:`ropescope.predict.predict_break` with the catalog's
  lineage). It has no fitted constant, so its leave-one-model-out score is its score.
* ``baseline``: flags L > the last training context — what every user already assumes.
* every bound and form of :mod:`ropescope.audit`, and the bounds' own verdict, for each ε of a grid.

Scores are given on the ``positional`` observations (perplexity, retrieval, claims), on ``task`` scores (which
also fall for reasons other than position: Qwen2.5-7B and -72B share RoPE and lineage, yet only the 72B passes
RULER at 64K), on the ``lab`` models (:func:`ropescope.catalog.lab_entries`: language models the lab trained
with RoPE bases from 10 to 10⁶, whose break it measured) and on ``all``. For models with a measured bracket (the
last working context below the first failing one, positional and lab measures) the error is
|log2(predicted / √(works·fails))|.

The *sensitivity* study asks what fitting the predictor's two constants would do: for each trained-angle
threshold and tolerance of a grid it scores the predictor on the positional observations, then fits both
leave-one-model-out (fewest misses, then fewest false alarms, ties broken toward the theory values π and 0)
and scores each held-out model with the constants fitted without it.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from types import MappingProxyType

from ropescope import bounds, predict
from ropescope.audit import bound_checks, verdict_of_bounds
from ropescope.catalog import Observation, entries, lab_entries
from ropescope.config import RopeSpec, load_spec

EPS_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SCORED_SETTINGS = ("as released", "rope as released")
SUBSETS = {
    "positional": frozenset({"perplexity", "retrieval", "claim"}),
    "task": frozenset({"task"}),
    "lab": frozenset({"lab"}),
    "all": frozenset({"perplexity", "retrieval", "claim", "task", "lab"}),
}
TRAINED_ANGLES = tuple(2 * math.pi * f for f in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0))
TOLERANCES = (0.0, 0.05, 0.1, 0.2)


@dataclass(frozen=True)
class Score:
    """How one rule (a bound in one form at one ε, the predictor, the baseline) fares on one subset."""

    rule: str
    form: str | None
    eps: float | None
    subset: str
    false_alarms: int
    misses: int
    successes: int
    failures: int

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Bracket:
    """A model's measured break bracket and the predictor's error on it."""

    model: str
    works: int
    fails: int
    predicted: int | None
    error_log2: float | None
    inside: bool
    lab: bool

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Sensitivity:
    """The predictor with other constants: in-sample on the positional observations, or fitted leave-one-out."""

    trained_angle: float | None  # None: fitted leave-one-model-out
    tolerance: float | None
    false_alarms: int
    misses: int

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Calibration:
    dtype: str
    eps_grid: tuple[float, ...]
    scores: tuple[Score, ...]
    scored: int
    skipped: tuple[tuple[str, Observation], ...]
    brackets: tuple[Bracket, ...]
    sensitivity: tuple[Sensitivity, ...]

    def median_error_log2(self, lab: bool = False) -> float | None:
        """Median bracket error over the catalog's models (or the lab's)."""
        errors = [b.error_log2 for b in self.brackets if b.error_log2 is not None and b.lab == lab]
        return statistics.median(errors) if errors else None

    def score(self, rule: str, subset: str = "positional", form: str | None = None, eps: float | None = None) -> Score:
        return next(s for s in self.scores if (s.rule, s.form, s.eps, s.subset) == (rule, form, eps, subset))

    def to_dict(self) -> dict[str, object]:
        return {
            "dtype": self.dtype,
            "eps_grid": list(self.eps_grid),
            "scored_observations": self.scored,
            "skipped": [{"model": model, **obs.__dict__} for model, obs in self.skipped],
            "scores": [s.to_dict() for s in self.scores],
            "brackets": [b.to_dict() for b in self.brackets],
            "median_error_log2": {"catalog": self.median_error_log2(), "lab": self.median_error_log2(lab=True)},
            "sensitivity": [s.to_dict() for s in self.sensitivity],
        }


def scored_observations() -> tuple[list[tuple[str, Observation]], list[tuple[str, Observation]]]:
    """(scored, skipped) observations of the catalog and the lab, as (model id, observation)."""
    scored: list[tuple[str, Observation]] = []
    skipped: list[tuple[str, Observation]] = []
    for entry in (*entries(), *lab_entries()):
        for observation in entry.observations:
            released = observation.setting.lower().startswith(SCORED_SETTINGS)
            (scored if released else skipped).append((entry.id, observation))
    return scored, skipped


@cache
def model_spec(model: str) -> RopeSpec:
    """A catalog model by id, or a lab model (its config and lineage come from its entry)."""
    lab = {entry.id: entry for entry in lab_entries()}
    if model in lab:
        spec = load_spec(lab[model].config)
        return replace(spec, source=model, lineage=lab[model].lineage)
    return load_spec(model)


@cache
def _prediction(model: str, trained_angle: float, tolerance: float, dtype: str) -> int | None:
    spec = model_spec(model)
    return predict.predict_break(spec, dtype=dtype, trained_angle=trained_angle, tolerance=tolerance).context


def _works_below(context: int, limit: int | None) -> bool:
    return limit is None or context <= limit


def _tally(flagged: Iterable[tuple[Observation, bool]]) -> tuple[int, int]:
    """(false alarms, misses) of a rule that flagged each observation or not."""
    alarms = misses = 0
    for observation, hit in flagged:
        alarms += observation.works and hit
        misses += (not observation.works) and not hit
    return alarms, misses


def _brackets(observations: list[tuple[str, Observation]], dtype: str) -> tuple[Bracket, ...]:
    by_model: dict[str, list[Observation]] = {}
    for model, observation in observations:
        if observation.measure in SUBSETS["positional"] | SUBSETS["lab"]:
            by_model.setdefault(model, []).append(observation)
    out = []
    for model, seen in by_model.items():
        fails = [o.context for o in seen if not o.works]
        if not fails:
            continue
        works = [o.context for o in seen if o.works and o.context < min(fails)]
        if not works:
            continue
        low, high = max(works), min(fails)
        predicted = _prediction(model, predict.TRAINED_ANGLE, predict.TOLERANCE, dtype)
        error = None if predicted is None else abs(math.log2(predicted / math.sqrt(low * high)))
        inside = predicted is not None and low <= predicted < high
        out.append(Bracket(model, low, high, predicted, error, inside, model.startswith("lab/")))
    return tuple(out)


def _sensitivity(observations: list[tuple[str, Observation]]) -> tuple[Sensitivity, ...]:
    positional = [(m, o) for m, o in observations if o.measure in SUBSETS["positional"]]
    grid = [(angle, tolerance) for angle in TRAINED_ANGLES for tolerance in TOLERANCES]

    def tally(pairs: list[tuple[str, Observation]], angle: float, tolerance: float) -> tuple[int, int]:
        return _tally((o, not _works_below(o.context, _prediction(m, angle, tolerance, "fp64"))) for m, o in pairs)

    rows = [Sensitivity(angle, tolerance, *tally(positional, angle, tolerance)) for angle, tolerance in grid]

    def prior_distance(point: tuple[float, float]) -> float:
        return abs(math.log(point[0] / predict.TRAINED_ANGLE)) + point[1]

    alarms = misses = 0
    for held_out in sorted({m for m, _ in positional}):
        rest = [(m, o) for m, o in positional if m != held_out]
        angle, tolerance = min(grid, key=lambda p: (*reversed(tally(rest, *p)), prior_distance(p)))
        a, b = tally([(m, o) for m, o in positional if m == held_out], angle, tolerance)
        alarms, misses = alarms + a, misses + b
    return (*rows, Sensitivity(None, None, alarms, misses))


def calibrate(eps_grid: tuple[float, ...] = EPS_GRID, dtype: str = "fp32", *, sensitivity: bool = True) -> Calibration:
    """Scores of the predictor, the baseline and every bound (for each ε in ``eps_grid``) on the catalog."""
    eps_grid = tuple(bounds.check_eps(eps) for eps in eps_grid)
    dtype = bounds.check_dtype(dtype)
    scored, skipped = scored_observations()
    flags: dict[tuple[str, str | None, float | None], list[tuple[Observation, bool]]] = {}
    for model, observation in scored:
        spec = model_spec(model)

        def flag(
            rule: str, form: str | None, eps: float | None, hit: bool, observation: Observation = observation
        ) -> None:
            flags.setdefault((rule, form, eps), []).append((observation, hit))

        predicted = _prediction(model, predict.TRAINED_ANGLE, predict.TOLERANCE, dtype)
        flag("predictor", None, None, not _works_below(observation.context, predicted))
        trained = spec.lineage.trained_context if spec.lineage else spec.training_context
        flag("baseline", None, None, observation.context > (trained or 0))
        by_eps, _ = bound_checks(spec, observation.context, dtype, eps_grid, spec.num_layers or 1)
        for eps, checks in by_eps.items():
            for check in checks:
                flag(check.name, check.form, eps, not check.satisfied)
            flag("bounds_verdict", None, eps, verdict_of_bounds(checks) != "ok")
    scores = []
    for (rule, form, eps), flagged in flags.items():
        for subset, measures in SUBSETS.items():
            chosen = [(obs, hit) for obs, hit in flagged if obs.measure in measures]
            alarms, misses = _tally(chosen)
            works = sum(obs.works for obs, _ in chosen)
            scores.append(Score(rule, form, eps, subset, alarms, misses, works, len(chosen) - works))
    return Calibration(
        dtype,
        eps_grid,
        tuple(scores),
        len(scored),
        tuple(skipped),
        _brackets(scored, dtype),
        _sensitivity(scored) if sensitivity else (),
    )


@dataclass(frozen=True)
class CalibrationRates:
    """False alarms / misses of every bound on the positional observations, as shipped in
    ``data/calibration.json`` (written by ``tools/build_calibration.py`` from :func:`calibrate`; a test checks
    that the file equals a fresh run)."""

    observations: int
    successes: int
    cells: Mapping[tuple[str, str | None, float], tuple[int, int]]

    def false_alarm_share(self, name: str, form: str | None, eps: float) -> float:
        """The share of working observations that the bound flags, at the grid ε nearest ``eps``."""
        return self.cells[(name, form, self.nearest_eps(eps))][0] / self.successes

    def nearest_eps(self, eps: float) -> float:
        return min({key[2] for key in self.cells}, key=lambda grid: abs(grid - eps))

    def cell(self, name: str, form: str | None, eps: float) -> str:
        rate = self.cells.get((name, form, self.nearest_eps(eps)))
        return "" if rate is None else f"{rate[0]}/{rate[1]}"


def rates_document(calibration: Calibration) -> dict[str, object]:
    """What ``data/calibration.json`` holds: the positional scores of every bound at every ε of the grid."""
    return {
        "dtype": calibration.dtype,
        "observations": calibration.score("predictor").successes + calibration.score("predictor").failures,
        "successes": calibration.score("predictor").successes,
        "scores": [
            [s.rule, s.form, s.eps, s.false_alarms, s.misses]
            for s in calibration.scores
            if s.subset == "positional" and s.eps is not None
        ],
    }


@cache
def shipped_rates() -> CalibrationRates:
    """The calibration shipped with the package (see :class:`CalibrationRates`)."""
    document = json.loads(resources.files("ropescope").joinpath("data/calibration.json").read_text("utf-8"))
    cells = {(rule, form, eps): (alarms, misses) for rule, form, eps, alarms, misses in document["scores"]}
    return CalibrationRates(document["observations"], document["successes"], MappingProxyType(cells))
