"""Streaming attention statistics, accumulated one block of query rows at a time.

For a head with attention probabilities ``A[i, j] = softmax_j(q_i·k_j·scale + mask[i, j])`` over the keys query
``i`` may see (``n_i`` of them), this module accumulates, without ever holding the L×L matrix:

* entropy (nats) of each row, ``H_i = −Σ_j A[i,j] ln A[i,j]``, and the normalised entropy ``H_i / ln n_i``
  (rows with ``n_i = 1`` are left out of the normalised mean: their entropy is 0 by construction); a uniform
  causal row has ``H_i = ln(i+1)``, so the normalised value is 1 for uniform attention and 0 for one-hot;
  rows are summarised by query-position bin (σReparam, Zhai et al. 2023, arXiv 2303.06296, tracks the same
  row entropy);
* sink mass: ``A[i, 0]`` averaged over the queries ``i ≥ 1`` and ``Σ_{j<k} A[i, j]`` averaged over ``i ≥ k``
  (StreamingLLM, Xiao et al. 2024, arXiv 2309.17453);
* column statistics for secondary sinks: the causal-normalised column mean ``a_j = Σ_i A[i,j] / #{i : i sees j}``
  (ACT, Yu et al. 2024, arXiv 2406.15765, flags ``a_j > 0.1``; Gu et al. 2025, arXiv 2410.10781, use the same
  mean for ``j = 0``), and the ratio ``r_j = Σ_i A[i,j] / Σ_i 1/n_i`` of the mass key ``j`` receives to what it
  would receive if every query attended uniformly;
* attention by distance ``d = i − j`` in log-spaced bins ``[0,1), [1,2), [2,4), [4,8), …``: the mass each query
  puts in a bin (``mass``), the number of visible (query, key) pairs per bin (``pairs``) and the number of
  queries that see the bin at all (``queries``), so the mean mass per query is ``mass / queries`` and the
  attention density (mean weight of one key at that distance) is ``mass / pairs``.

Sums run over the batch too (each sequence adds its queries). Position bins and distance bins share the edges
``0, 1, 2, 4, …, 2^m ≥ length``. The naive O(L²) computation of the same definitions lives in the tests.

Cost per block of C rows is a few passes over the (H, C, C + K) scores: the softmax, two maxima, one
multiply-add for the entropy (``H_i = lse_i − Σ_j A[i,j] s_ij``), the column sums, and one strided sum over
a skewed view in which each column is one distance (C leading padding columns make row ``r``'s key ``j`` land
in column ``j − r + C``), so the distance histogram needs no per-element bin index. Per-row values are kept
for the whole call (O(H·L)) and binned once at its end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

FIRST_K_DEFAULT = 4


def log_bin_edges(length: int) -> np.ndarray:
    """Edges ``0, 1, 2, 4, …`` up to the first power of two ≥ ``length``: bin b is ``[edges[b], edges[b+1])``."""
    edges = [0, 1]
    while edges[-1] < length:
        edges.append(edges[-1] * 2)
    return np.asarray(edges, dtype=np.int64)


def log_bin_index(values: torch.Tensor) -> torch.Tensor:
    """Bin of each non-negative integer under :func:`log_bin_edges`: 0 → 0, 1 → 1, 2–3 → 2, 4–7 → 3, …"""
    values = values.to(torch.int64)
    bits = torch.zeros_like(values)
    positive = values > 0
    bits[positive] = torch.floor(torch.log2(values[positive].double())).to(torch.int64) + 1
    return bits


@dataclass(frozen=True)
class DistanceTables:
    """Lookups for one sequence length L, built once per attention call: ``offset = L + 1``."""

    bin: torch.Tensor  # (2L + 2,) bin of distance d at [offset + d]; D (no bin) for d < 0
    one_hot: torch.Tensor  # (2L + 2, D + 1) float32 one-hot rows of ``bin``
    edges: torch.Tensor  # (D + 1,) the bin edges
    offset: int

    @classmethod
    def build(cls, length: int) -> DistanceTables:
        edges = torch.as_tensor(log_bin_edges(length))
        bins = len(edges) - 1
        distance = torch.arange(-length - 1, length + 1)
        index = torch.where(distance >= 0, log_bin_index(distance.clamp_min(0)), bins)
        return cls(index, torch.nn.functional.one_hot(index, bins + 1).float(), edges, length + 1)


@dataclass
class LayerStatistics:
    """Running sums for one attention layer (float64; ``H`` heads, ``Q`` position bins, ``L`` keys)."""

    entropy: torch.Tensor  # (H, Q) Σ H_i over the rows in each bin
    normalised_entropy: torch.Tensor  # (H, Q) Σ H_i / ln n_i over the rows with n_i > 1
    rows: torch.Tensor  # (Q,) rows counted
    normalisable_rows: torch.Tensor  # (Q,) rows with n_i > 1
    first_mass: torch.Tensor  # (H, Q) Σ A[i, 0] over rows i ≥ 1
    first_rows: torch.Tensor  # (Q,)
    first_k_mass: torch.Tensor  # (H, Q) Σ_{j<k} A[i, j] over rows i ≥ k
    first_k_rows: torch.Tensor  # (Q,)
    column_mass: torch.Tensor  # (H, L) Σ_i A[i, j]
    column_queries: torch.Tensor  # (L,) #{i : i sees j}
    column_uniform: torch.Tensor  # (L,) Σ_{i sees j} 1 / n_i
    distance_mass: torch.Tensor  # (H, D) Σ_i Σ_{j : bin(i-j) = b} A[i, j]
    distance_pairs: torch.Tensor  # (D,) visible pairs per distance bin
    distance_queries: torch.Tensor  # (D,) queries that see at least one key in the bin

    @classmethod
    def zeros(cls, heads: int, length: int) -> LayerStatistics:
        bins = len(log_bin_edges(length)) - 1

        def z(*shape: int) -> torch.Tensor:
            return torch.zeros(shape, dtype=torch.float64)

        return cls(
            z(heads, bins),
            z(heads, bins),
            z(bins),
            z(bins),
            z(heads, bins),
            z(bins),
            z(heads, bins),
            z(bins),
            z(heads, length),
            z(length),
            z(length),
            z(heads, bins),
            z(bins),
            z(bins),
        )


@dataclass
class RowValues:
    """Per query row of one attention call (B batch rows, H heads, L queries), binned by :func:`add_rows`."""

    entropy: torch.Tensor  # (B, H, L) H_i
    first: torch.Tensor  # (B, H, L) A[i, 0]
    first_k: torch.Tensor  # (B, H, L) Σ_{j<k} A[i, j]
    seen: torch.Tensor  # (B, L) n_i, the keys row i may see

    @classmethod
    def zeros(cls, batch: int, heads: int, length: int) -> RowValues:
        return cls(*(torch.zeros(batch, heads, length) for _ in range(3)), torch.zeros(batch, length))


def accumulate_block(
    stats: LayerStatistics,
    row_values: RowValues,
    scores: torch.Tensor,
    tail_visible: torch.Tensor,
    query_start: int,
    tables: DistanceTables,
    first_k: int = FIRST_K_DEFAULT,
) -> None:
    """Add the rows ``query_start … query_start + C − 1``: their column and distance sums to ``stats``, their
    entropy, sink mass and key count to ``row_values``.

    ``scores`` (B, H, C, C + K) float32 are C padding columns (any value: they are masked) followed by the
    pre-softmax logits of the block against keys ``0 … K−1`` (K may stop before the full length when no row of
    the block sees further); they are overwritten (the caller should not keep a reference). Every row sees keys
    ``0 … F−1``; ``tail_visible`` (B, 1, C, K − F) is True where a row may attend among keys ``F … K−1`` (when
    causal, F is the block's first row + 1 and the tail is the diagonal). ``tables`` are those of the length.
    """
    rows = scores.shape[-2]
    keys = scores.shape[-1] - rows
    first_hidden = keys - tail_visible.shape[-1]
    lowest = torch.finfo(scores.dtype).min
    tail = tail_visible[:, 0].float()  # (B, C, K − F)
    seen = tail.sum(-1) + first_hidden  # (B, C) keys each row sees (exact in float32 below 2^24)
    scores[..., :rows] = lowest
    scores[..., rows + first_hidden :].masked_fill_(~tail_visible, lowest)
    probs = torch.softmax(scores, dim=-1)  # hidden keys and the padding get exactly 0
    # H_i = −Σ_j p_ij ln p_ij = lse_i − Σ_j p_ij s_ij, with lse_i = max_j s_ij − ln max_j p_ij
    log_norm = scores.amax(-1) - probs.amax(-1).log()
    weighted = scores.mul_(probs).sum(-1)  # (p · s = 0 where p = 0)
    del scores
    live = seen > 0
    if not bool(live.all()):  # rows that see nothing got a uniform row from the finite fill: drop them
        probs.mul_(live[:, None, :, None])

    block = slice(query_start, query_start + rows)
    row_values.entropy[..., block] = torch.where(live[:, None], (log_norm - weighted).clamp_min(0.0), 0.0)
    row_values.first[..., block] = probs[..., rows]
    row_values.first_k[..., block] = probs[..., rows : rows + first_k].sum(-1)
    row_values.seen[..., block] = seen

    every_row = torch.ones(rows)  # sums over rows as products with a ones vector: BLAS, several times faster
    stats.column_mass[:, :keys] += torch.matmul(every_row, probs[..., rows:]).sum(0).double()
    row_weights = torch.stack([live.float(), 1.0 / seen.clamp_min(1)], dim=1)  # (B, 2, C)
    counts = row_weights.sum(dim=(0, 2)).double()  # Σ_i 1 and Σ_i 1/n_i over the rows, for keys every row sees
    stats.column_queries[:first_hidden] += counts[0]
    stats.column_uniform[:first_hidden] += counts[1]
    counts = torch.matmul(row_weights, tail).sum(0).double()  # (2, K − F)
    stats.column_queries[first_hidden:keys] += counts[0]
    stats.column_uniform[first_hidden:keys] += counts[1]

    _accumulate_distance(stats, probs, tail, first_hidden, query_start, tables)


def add_rows(stats: LayerStatistics, row_values: RowValues, first_k: int = FIRST_K_DEFAULT) -> None:
    """Sum the per-row values of one attention call into ``stats`` by query-position bin (rows that see no
    key, such as padding, are left out)."""
    seen = row_values.seen.double()
    live = (seen > 0).double()  # (B, L)
    position = torch.arange(seen.shape[-1])
    position_bin = log_bin_index(position)

    def add(total: torch.Tensor, count: torch.Tensor, values: torch.Tensor, rows: torch.Tensor) -> None:
        total.index_add_(1, position_bin, (values.double() * rows[:, None]).sum(0))
        count.index_add_(0, position_bin, rows.sum(0))

    add(stats.entropy, stats.rows, row_values.entropy, live)
    normalised = row_values.entropy.double() / torch.log(seen.clamp_min(2))[:, None]
    add(stats.normalised_entropy, stats.normalisable_rows, normalised, (seen > 1).double())
    add(stats.first_mass, stats.first_rows, row_values.first, live * (position >= 1))
    add(stats.first_k_mass, stats.first_k_rows, row_values.first_k, live * (position >= first_k))


def _by_distance(padded: torch.Tensor) -> torch.Tensor:
    """The skewed view ``out[..., r, c] = padded[..., r, r + c]`` (C, K + 1) of a (…, C, C + K) tensor: row
    ``query_start + r`` against key ``r + c − C``, so column ``c`` holds distance ``query_start + C − c`` in every
    row (keys left of 0 fall on the padding)."""
    rows, width = padded.shape[-2:]
    contiguous = padded.contiguous()
    size = (*padded.shape[:-2], rows, width - rows + 1)
    stride = (*contiguous.stride()[:-2], width + 1, 1)
    return contiguous.as_strided(size, stride, contiguous.storage_offset())


def _accumulate_distance(
    stats: LayerStatistics,
    probs: torch.Tensor,
    tail: torch.Tensor,
    first_hidden: int,
    query_start: int,
    tables: DistanceTables,
) -> None:
    """Distance bins. Mass: one skewed reduction (in :func:`_by_distance`'s view every column is one distance,
    so the mass at each distance is a column sum) and a one-hot product. Visible pairs per row and bin: interval
    lengths for keys ``0 … F−1``, which every row sees, plus the tail (B, C, K − F) counted element by element."""
    batch, rows, _ = tail.shape
    columns = probs.shape[-1] - rows + 1  # distances query_start + C − c for c = 0 … K, largest first
    bins = stats.distance_pairs.shape[0]
    nearest_distance = tables.offset + query_start + rows - columns + 1
    in_bin = tables.one_hot[nearest_distance : nearest_distance + columns]  # smallest distance first
    by_distance = torch.matmul(torch.ones(rows), _by_distance(probs))  # (B, H, K + 1) mass at each distance
    mass = torch.matmul(by_distance.flip(-1), in_bin)  # (B, H, D + 1)
    stats.distance_mass += mass[..., :bins].sum(0).double()

    position = torch.arange(query_start, query_start + rows)[:, None]  # (C, 1)
    nearest = (position - tables.edges[None, 1:] + 1).clamp_min(0)  # lo ≤ i − j < hi: j in [i − hi + 1, i − lo]
    farthest = (position - tables.edges[None, :-1]).clamp_max(first_hidden - 1)
    row_pairs = (farthest - nearest + 1).clamp_min(0).float().expand(batch, -1, -1).contiguous()  # (B, C, D)
    if tail.shape[-1]:
        tail_distance = position - torch.arange(first_hidden, first_hidden + tail.shape[-1])[None, :]
        cell = (torch.arange(rows)[:, None] * (bins + 1) + tables.bin[tables.offset + tail_distance]).flatten()
        tail_pairs = torch.zeros(batch, rows * (bins + 1)).index_add_(-1, cell, tail.flatten(-2))
        row_pairs += tail_pairs.view(batch, rows, bins + 1)[..., :bins]
    stats.distance_pairs += row_pairs.sum(dim=(0, 1)).double()
    stats.distance_queries += (row_pairs > 0.5).sum(dim=(0, 1)).double()
