"""ropescope.calibrate: its tallies against an independent recount from the catalog's observations.

The paper forms of the aliasing and DC-stability bounds are closed forms in rope_theta (L < 2π·b and
b ≥ L/arccos ε), and the baseline is "works iff L ≤ the last training context", so their false alarms and
misses can be recounted here without the audit; the predictor's tally is recounted from predict_break.
"""

from __future__ import annotations

import json
import math
from importlib import resources

import pytest

from ropescope.calibrate import EPS_GRID, SCORED_SETTINGS, SUBSETS, calibrate, model_spec, rates_document
from ropescope.catalog import entries, lab_entries
from ropescope.errors import RopescopeInputError
from ropescope.predict import predict_break


def _released(subset: str = "positional") -> list[tuple[str, float, int, bool]]:
    """(model, rope_theta, context, works) for every scored observation in ``subset``."""
    return [
        (entry.id, model_spec(entry.id).base, obs.context, obs.works)
        for entry in (*entries(), *lab_entries())
        for obs in entry.observations
        if obs.setting.lower().startswith(SCORED_SETTINGS) and obs.measure in SUBSETS[subset]
    ]


def _recount(holds, subset: str = "positional") -> tuple[int, int]:  # type: ignore[no-untyped-def]
    observations = _released(subset)
    alarms = sum(works and not holds(model, base, context) for model, base, context, works in observations)
    misses = sum((not works) and holds(model, base, context) for model, base, context, works in observations)
    return alarms, misses


@pytest.fixture(scope="module")
def result():  # type: ignore[no-untyped-def]
    return calibrate(eps_grid=(0.1, 0.5, 0.9))


def _pair(score) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    return score.false_alarms, score.misses


def test_paper_aliasing_tally_matches_recount(result) -> None:  # type: ignore[no-untyped-def]
    expected = _recount(lambda model, base, context: context < 2 * math.pi * base)
    assert _pair(result.score("aliasing", form="paper", eps=0.5)) == expected


def test_paper_dc_tally_matches_recount_for_each_eps(result) -> None:  # type: ignore[no-untyped-def]
    for eps in (0.1, 0.5, 0.9):
        expected = _recount(lambda model, base, context, eps=eps: base >= context / math.acos(eps))
        assert _pair(result.score("dc_stability", form="paper", eps=eps)) == expected


def test_baseline_and_predictor_tallies_match_recount(result) -> None:  # type: ignore[no-untyped-def]
    models = (*entries(), *lab_entries())
    trained = {entry.id: entry.lineage.trained_context for entry in models}
    predicted = {entry.id: predict_break(model_spec(entry.id)).context for entry in models}
    for subset in SUBSETS:
        baseline = _recount(lambda model, base, context: context <= trained[model], subset)
        assert _pair(result.score("baseline", subset)) == baseline
        expected = _recount(lambda model, base, context: context <= predicted[model], subset)
        assert _pair(result.score("predictor", subset)) == expected


def test_predictor_beats_the_baseline_on_positional_observations(result) -> None:  # type: ignore[no-untyped-def]
    predictor, baseline = result.score("predictor"), result.score("baseline")
    assert predictor.false_alarms < baseline.false_alarms
    assert predictor.misses <= baseline.misses
    fitted = next(s for s in result.sensitivity if s.trained_angle is None)  # leave-one-model-out fit
    assert fitted.misses >= predictor.misses  # fitting the constants does not help: why they are fixed


def test_brackets_recounted(result) -> None:  # type: ignore[no-untyped-def]
    codellama = next(b for b in result.brackets if b.model == "codellama/CodeLlama-7b-hf")
    assert (codellama.works, codellama.fails) == (131072, 163840)
    assert codellama.inside
    assert codellama.error_log2 == pytest.approx(abs(math.log2(codellama.predicted / math.sqrt(131072 * 163840))))
    assert result.median_error_log2() is not None and result.median_error_log2() < 0.5  # catalog models


def test_counts_and_skips(result) -> None:  # type: ignore[no-untyped-def]
    observations = [obs for entry in (*entries(), *lab_entries()) for obs in entry.observations]
    released = _released("all")
    assert result.scored == len(released)
    assert len(result.skipped) == len(observations) - len(released)
    rules = {(s.rule, s.form) for s in result.scores}
    assert {("bounds_verdict", None), ("men2024", None), ("precision_wall", "exact"), ("predictor", None)} <= rules
    for score in result.scores:
        assert 0 <= score.false_alarms <= score.successes and 0 <= score.misses <= score.failures


def test_shipped_rates_equal_a_fresh_calibration() -> None:
    shipped = json.loads(resources.files("ropescope").joinpath("data/calibration.json").read_text("utf-8"))
    fresh = json.loads(json.dumps(rates_document(calibrate(sensitivity=False))))
    assert shipped == fresh, "run python tools/build_calibration.py"


def test_lab_models_come_from_a_named_run() -> None:
    models = lab_entries()
    assert len(models) == 12  # the bases preset: 6 bases × 2 head dimensions
    for entry in models:
        assert entry.lineage is not None and entry.lineage.trained_context == entry.config["max_position_embeddings"]
        for observation in entry.observations:
            assert observation.measure == "lab" and "ropescope lab run bases (seed" in observation.source


def test_default_grid_and_bad_input() -> None:
    assert EPS_GRID[0] == 0.1 and EPS_GRID[-1] == 0.9
    with pytest.raises(RopescopeInputError):
        calibrate(eps_grid=(0.5, 1.0))
    with pytest.raises(RopescopeInputError):
        calibrate(dtype="fp8")
