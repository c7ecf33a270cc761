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


def accumulate_block(
    stats: LayerStatistics,
    scores: torch.Tensor,
    visible: torch.Tensor,
    query_start: int,
    first_k: int = FIRST_K_DEFAULT,
) -> None:
    """Add the rows ``query_start … query_start + C − 1`` to ``stats``.

    ``scores`` (B, H, C, K) float32 are the pre-softmax logits of the block against keys ``0 … K−1`` (K may stop
    before the full length when no row of the block sees further); they are overwritten (the caller should not
    keep a reference, so the block costs about two copies of it). ``visible`` (B, 1, C, K) is True where a row
    may attend. Rows that see nothing (padding) are skipped.
    """
    rows = scores.shape[-2]
    seen = visible.sum(-1, dtype=torch.int64)  # (B, 1, C)
    live = seen > 0
    hidden = (~visible.flatten(0, 2).all(0)).nonzero()
    if len(hidden):  # mask only from the first column some row may not see (the diagonal block when causal)
        first = int(hidden[0])
        scores[..., first:].masked_fill_(~visible[..., first:], torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1)  # hidden keys get exactly 0; rows that see nothing are dropped below
    # H_i = −Σ_j p_ij ln p_ij = lse_i − Σ_j p_ij s_ij, with lse_i = s_ij − ln p_ij at the row's largest p
    top, where = probs.max(dim=-1, keepdim=True)
    log_norm = scores.gather(-1, where) - top.log()
    weighted = torch.matmul(probs.unsqueeze(-2), scores.unsqueeze(-1))[..., 0]  # (w · s = 0 where w = 0)
    del scores
    row_weight = live.float().expand(probs.shape[:-1])  # 1 for live rows, 0 for rows that see nothing
    entropy = torch.where(live, (log_norm - weighted)[..., 0].clamp_min(0.0), 0.0).double()

    position = torch.arange(query_start, query_start + rows)
    position_bin = log_bin_index(position)
    live_rows = live[:, 0].double()  # (B, C)
    stats.entropy.index_add_(1, position_bin, entropy.sum(0))
    stats.rows.index_add_(0, position_bin, live_rows.sum(0))
    normalisable = (seen[:, 0] > 1).double()
    log_seen = torch.log(seen[:, 0].clamp_min(2).double())
    per_row = entropy / log_seen[:, None] * normalisable[:, None]
    stats.normalised_entropy.index_add_(1, position_bin, per_row.sum(0))
    stats.normalisable_rows.index_add_(0, position_bin, normalisable.sum(0))

    after_first = (position >= 1).double() * live_rows
    first_mass = (probs[..., 0] * row_weight).double()
    stats.first_mass.index_add_(1, position_bin, (first_mass * after_first[:, None]).sum(0))
    stats.first_rows.index_add_(0, position_bin, after_first.sum(0))
    after_k = (position >= first_k).double() * live_rows
    head_mass = (probs[..., :first_k].sum(-1) * row_weight).double()
    stats.first_k_mass.index_add_(1, position_bin, (head_mass * after_k[:, None]).sum(0))
    stats.first_k_rows.index_add_(0, position_bin, after_k.sum(0))

    keys = probs.shape[-1]
    stats.column_mass[:, :keys] += torch.matmul(row_weight.unsqueeze(-2), probs)[..., 0, :].sum(0).double()
    visible_rows = visible[:, 0].float()  # (B, C, K)
    row_weights = torch.stack([torch.ones_like(live_rows), 1.0 / seen[:, 0].clamp_min(1).double()], dim=1)
    counts = torch.matmul(row_weights.float(), visible_rows).sum(0).double()  # (2, K): Σ_i 1 and Σ_i 1/n_i
    stats.column_queries[:keys] += counts[0]
    stats.column_uniform[:keys] += counts[1]

    _accumulate_distance(stats, probs, row_weight, visible_rows, position)


def _accumulate_distance(
    stats: LayerStatistics,
    probs: torch.Tensor,
    row_weight: torch.Tensor,
    visible_rows: torch.Tensor,
    position: torch.Tensor,
) -> None:
    """Distance bins by prefix sums over keys: bin [lo, hi) of row i covers keys (i − hi, i − lo].

    The prefix sums overwrite ``probs`` (float32; rows that see nothing get ``row_weight`` 0) and
    ``visible_rows`` (B, C, K), the float visibility of each (query, key) pair.
    """
    keys = probs.shape[-1]
    bins = stats.distance_pairs.shape[0]
    edges = torch.as_tensor(log_bin_edges(2 ** (bins - 1)))
    lo, hi = edges[:-1], edges[1:]
    upper = (position[:, None] - lo[None, :] + 1).clamp(0, keys)  # (C, D): keys before index `upper` are in
    lower = torch.minimum((position[:, None] - hi[None, :] + 1).clamp(0, keys), upper)

    def bin_sums(prefix: torch.Tensor) -> torch.Tensor:
        """Σ over keys [lower, upper) of the values whose inclusive prefix sums are ``prefix``."""
        shape = (*prefix.shape[:-1], bins)

        def before(index: torch.Tensor) -> torch.Tensor:
            taken = prefix.gather(-1, (index - 1).clamp_min(0).expand(shape)).double()
            return taken.masked_fill((index == 0).expand(shape), 0.0)

        return before(upper) - before(lower)

    mass = bin_sums(probs.cumsum_(-1)) * row_weight[..., None].double()  # (B, H, C, D)
    stats.distance_mass += mass.sum(dim=(0, 2))
    pairs = bin_sums(visible_rows.cumsum_(-1))  # (B, C, D)
    stats.distance_pairs += pairs.sum(dim=(0, 1))
    stats.distance_queries += (pairs > 0.5).double().sum(dim=(0, 1))
