"""Turn the running sums of :mod:`ropescope.probes.stats` into the reported attention statistics.

Every mean is a ratio of two sums (bins that hold no rows are NaN). Definitions, for one head:

* ``entropy[b]`` = mean of ``H_i`` over query rows in position bin b; ``normalised_entropy[b]`` = mean of
  ``H_i / ln n_i`` over those rows with ``n_i > 1``;
* ``first_mass`` = mean of ``A[i, 0]`` over ``i ≥ 1``; ``first_k_mass`` = mean of ``Σ_{j<k} A[i, j]`` over ``i ≥ k``;
* ``column_mean[j]`` = ``Σ_i A[i, j] / #{i sees j}`` (ACT's score, Yu et al. 2024, arXiv 2406.15765);
  ``uniform_ratio[j]`` = ``Σ_i A[i, j] / Σ_{i sees j} 1/n_i`` (1 under uniform attention);
* a secondary sink is a key ``j ≥ 1`` seen by at least ``min_queries`` queries whose ``column_mean[j]`` exceeds
  ``threshold`` (ACT's calibration threshold 0.1 by default); ``min_queries`` defaults to ``max(16, L/16)``
  so that the last keys, whose column mean rests on a few nearby queries (local attention, not a sink), are
  not flagged;
* ``distance_mass[b]`` = mean over the queries that see bin b of the mass they put in it;
  ``distance_density[b]`` = that mass per visible (query, key) pair; ``distance_slope`` = least-squares slope
  of ``ln density`` against ``ln d_b`` over the bins with ``d ≥ 1``, ``d_b = sqrt(lo · min(hi − 1, L − 1))``
  (the geometric centre of the bin's visible distances). A power law ``density ∝ d^s`` has slope ``s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ropescope.probes.attention import AttentionProbe
from ropescope.probes.stats import log_bin_edges

SINK_THRESHOLD = 0.1
SINK_MIN_QUERIES = 16  # and at least L / SINK_MIN_FRACTION queries
SINK_MIN_FRACTION = 16


def default_min_queries(length: int) -> int:
    return max(SINK_MIN_QUERIES, length // SINK_MIN_FRACTION)


@dataclass(frozen=True, eq=False)
class AttentionSummary:
    """Per layer and head statistics: arrays are (layers, heads, ...) in layer order."""

    length: int
    first_k: int
    position_edges: np.ndarray
    entropy: np.ndarray
    normalised_entropy: np.ndarray
    mean_entropy: np.ndarray
    mean_normalised_entropy: np.ndarray
    first_mass: np.ndarray
    first_mass_by_bin: np.ndarray
    first_k_mass: np.ndarray
    first_k_mass_by_bin: np.ndarray
    column_mean: np.ndarray
    uniform_ratio: np.ndarray
    column_queries: np.ndarray
    distance_mass: np.ndarray
    distance_density: np.ndarray
    distance_slope: np.ndarray

    @property
    def distance_centres(self) -> np.ndarray:
        return distance_centres(self.position_edges, self.length)


def distance_centres(edges: np.ndarray, length: int) -> np.ndarray:
    """Geometric centre ``sqrt(lo · min(hi − 1, L − 1))`` of each distance bin (0 for the bin of d = 0)."""
    return np.sqrt(edges[:-1] * np.minimum(edges[1:] - 1, length - 1)).astype(np.float64)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def summarise(probe: AttentionProbe) -> AttentionSummary:
    """The reported statistics of everything ``probe`` has seen."""
    if not probe.layers or probe.length is None:
        raise ValueError("the probe has not seen any attention layer")
    layers = [probe.layers[index] for index in sorted(probe.layers)]

    def stack(name: str) -> np.ndarray:
        return np.stack([getattr(layer, name).numpy() for layer in layers])

    rows, normalisable = stack("rows")[:, None], stack("normalisable_rows")[:, None]
    entropy, normalised = stack("entropy"), stack("normalised_entropy")
    first, first_rows = stack("first_mass"), stack("first_rows")[:, None]
    first_k, first_k_rows = stack("first_k_mass"), stack("first_k_rows")[:, None]
    column = stack("column_mass")
    distance, pairs, queries = stack("distance_mass"), stack("distance_pairs"), stack("distance_queries")
    edges = log_bin_edges(probe.length)
    density = _ratio(distance, pairs[:, None])
    centres = distance_centres(edges, probe.length)
    return AttentionSummary(
        length=probe.length,
        first_k=probe.first_k,
        position_edges=edges,
        entropy=_ratio(entropy, rows),
        normalised_entropy=_ratio(normalised, normalisable),
        mean_entropy=_ratio(entropy.sum(-1), rows.sum(-1)),
        mean_normalised_entropy=_ratio(normalised.sum(-1), normalisable.sum(-1)),
        first_mass=_ratio(first.sum(-1), first_rows.sum(-1)),
        first_mass_by_bin=_ratio(first, first_rows),
        first_k_mass=_ratio(first_k.sum(-1), first_k_rows.sum(-1)),
        first_k_mass_by_bin=_ratio(first_k, first_k_rows),
        column_mean=_ratio(column, stack("column_queries")[:, None]),
        uniform_ratio=_ratio(column, stack("column_uniform")[:, None]),
        column_queries=stack("column_queries"),
        distance_mass=_ratio(distance, queries[:, None]),
        distance_density=density,
        distance_slope=np.array([[_slope(centres, head) for head in layer] for layer in density]),
    )


def _slope(centres: np.ndarray, density: np.ndarray) -> float:
    usable = (centres >= 1) & np.isfinite(density) & (density > 0)
    if usable.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(centres[usable]), np.log(density[usable]), 1)[0])


def secondary_sinks(
    summary: AttentionSummary,
    threshold: float = SINK_THRESHOLD,
    min_queries: int | None = None,
    limit: int = 8,
) -> list[list[list[tuple[int, float, float]]]]:
    """Per layer and head, up to ``limit`` sinks ``(position, column_mean, uniform_ratio)``, strongest first."""
    if min_queries is None:
        min_queries = default_min_queries(summary.length)
    found = []
    for layer, (means, ratios) in enumerate(zip(summary.column_mean, summary.uniform_ratio, strict=True)):
        eligible = summary.column_queries[layer] >= min_queries
        eligible[0] = False
        per_head = []
        for head_means, head_ratios in zip(means, ratios, strict=True):
            hits = np.flatnonzero(eligible & (np.nan_to_num(head_means) > threshold))
            hits = hits[np.argsort(-head_means[hits], kind="stable")][:limit]
            per_head.append([(int(j), float(head_means[j]), float(head_ratios[j])) for j in hits])
        found.append(per_head)
    return found
