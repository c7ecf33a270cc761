"""ropescope.calibrate: its tallies against an independent recount from the catalog's observations.

The paper forms of the aliasing and DC-stability bounds are closed forms in rope_theta (L < 2π·b and
b ≥ L/arccos ε), so their false alarms and misses can be recounted here without the audit.
"""

from __future__ import annotations

import math

import pytest

from ropescope.calibrate import EPS_GRID, calibrate
from ropescope.catalog import entries
from ropescope.config import load_spec
from ropescope.errors import RopescopeInputError


def _released() -> list[tuple[float, int, bool]]:
    """(rope_theta, context, works) for every observation of a released configuration."""
    return [
        (load_spec(entry.id).base, obs.context, obs.works)
        for entry in entries()
        for obs in entry.observations
        if obs.setting.lower().startswith("as released")
    ]


def _recount(holds) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    observations = _released()
    alarms = sum(works and not holds(base, context) for base, context, works in observations)
    misses = sum((not works) and holds(base, context) for base, context, works in observations)
    return alarms, misses


@pytest.fixture(scope="module")
def result():  # type: ignore[no-untyped-def]
    return calibrate(eps_grid=(0.1, 0.5, 0.9))


def test_paper_aliasing_tally_matches_recount(result) -> None:  # type: ignore[no-untyped-def]
    expected = _recount(lambda base, context: context < 2 * math.pi * base)
    for score in result.scores:
        if (score.bound, score.form) == ("aliasing", "paper"):
            assert (score.false_alarms, score.misses) == expected


def test_paper_dc_tally_matches_recount_for_each_eps(result) -> None:  # type: ignore[no-untyped-def]
    for eps in (0.1, 0.5, 0.9):
        expected = _recount(lambda base, context, eps=eps: base >= context / math.acos(eps))
        score = next(s for s in result.scores if (s.bound, s.form, s.eps) == ("dc_stability", "paper", eps))
        assert (score.false_alarms, score.misses) == expected


def test_counts_and_skips(result) -> None:  # type: ignore[no-untyped-def]
    observations = [obs for entry in entries() for obs in entry.observations]
    released = _released()
    assert result.scored == len(released)
    assert len(result.skipped) == len(observations) - len(released)
    works = sum(w for _, _, w in released)
    pairs = {(s.bound, s.form) for s in result.scores}
    assert ("verdict", None) in pairs and ("men2024", None) in pairs and ("precision_wall", "exact") in pairs
    for score in result.scores:
        assert (score.successes, score.failures) == (works, len(released) - works)
        assert 0 <= score.false_alarms <= works and 0 <= score.misses <= len(released) - works
    assert len(result.scores) == len(pairs) * 3


def test_default_grid_and_bad_input() -> None:
    assert EPS_GRID[0] == 0.1 and EPS_GRID[-1] == 0.9
    with pytest.raises(RopescopeInputError):
        calibrate(eps_grid=(0.5, 1.0))
    with pytest.raises(RopescopeInputError):
        calibrate(dtype="fp8")
