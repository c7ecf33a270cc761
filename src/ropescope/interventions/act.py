"""ACT-style attention-sink calibration on chosen heads, computed from the sink columns only (no L×L matrix).

Yu et al., ICML 2024, "Unveiling and Harnessing Hidden Attention Sinks: Enhancing LLMs without Training through
Attention Calibration" (arXiv 2406.15765). Built from the method as summarised in
``/work/shared/reference/anchors_lab_kv_bias.md`` §C3 and checked against the authors' code (github.com/GATECH-EIC/ACT,
``models/llama_modelling_aug.py``, ``atten_process_eval``: the same sink test, first sink kept, scaling and
redistribution; written anew here, not copied); the paper's full text was not read. On a chosen head with
attention ``A[i, j]`` over the causal prefix of N tokens:

* key j is a sink if its mean received attention ``a_j = Σ_i A[i,j] / (N − j)`` exceeds ``threshold`` (0.1 in
  ACT); the first such key (in practice the first token) is kept as it is, as ACT's ``indices[1:]`` does;
* the attention sinks receive is scaled by ``β`` (0.4 in ACT) and the freed mass goes to the other keys in
  proportion to their weights, so with ``S_i = Σ_{j∈sinks} A[i,j]`` the new row is ``β·A[i,j]`` on sinks and
  ``(1 − βS_i)/(1 − S_i)·A[i,j]`` elsewhere, and

      out_i = β·out_sink,i + (1 − βS_i)/(1 − S_i)·(out_full,i − out_sink,i),   out_sink,i = Σ_{j∈sinks} A[i,j]·v_j

  (a row whose whole mass is on sinks, ``S_i = 1``, has no other key to take it and is left unchanged). The
  other keys' share is a difference, so its float32 rounding grows as 1/(1 − S_i): about 10× in a row that puts
  90 % of its attention on sinks.

On the calibrated heads ``out_full``, the row log-sum-exps ``lse_i`` and the column sums ``Σ_{i≥j} A[i,j]`` come
from one pass over blocks of C query rows (:func:`causal_with_columns`: the block's logits against the keys up
to its last row, one exponential per logit, ``out`` and the column sums from the normalised block; C·L logits
live, so memory is O(L)); ``A[i, j] = exp(q_i·k_j·scale − lse_i)`` is then needed only on the sink columns,
O(N·|sinks|). Heads left alone run transformers' SDPA. Heads are chosen, as ACT does, by a search on held-out prompts
that keeps what improves accuracy; ACT's ``scripts/calibration.sh`` tries each (layer, head) alone (layers 2–30,
heads 0–3, 900 samples), :func:`search_layers` is a cheaper, coarser greedy search over whole layers.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ropescope.attention_functions import installed
from ropescope.errors import RopescopeInputError
from ropescope.interventions.base import attend, check_call, sdpa

ACT_ATTENTION = "ropescope_act"
BETA, THRESHOLD = 0.4, 0.1  # ACT's scripts/calibration.sh
_ACTIVE: contextvars.ContextVar[_ActState | None] = contextvars.ContextVar("ropescope_act", default=None)


@dataclass(frozen=True)
class SinkCalibration:
    """Calibrate the sinks of ``heads`` ((layer, head) pairs): scale their attention by ``beta``."""

    heads: tuple[tuple[int, int], ...]
    beta: float = BETA
    threshold: float = THRESHOLD

    def __post_init__(self) -> None:
        if not 0 <= self.beta <= 1:
            raise RopescopeInputError("beta", f"must be in [0, 1], got {self.beta!r}", "ACT uses 0.4")
        if not 0 < self.threshold < 1:
            raise RopescopeInputError("threshold", f"must be in (0, 1), got {self.threshold!r}", "ACT uses 0.1")

    def by_layer(self) -> dict[int, list[int]]:
        layers: dict[int, list[int]] = {}
        for layer, head in self.heads:
            layers.setdefault(layer, []).append(head)
        return layers


@dataclass
class _ActState:
    calibration: SinkCalibration
    layers: dict[int, list[int]]
    sinks: list[int] = field(default_factory=list)  # sink columns found, per calibrated call


def causal_with_columns(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float, block: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Causal attention ``out`` (B, H, N, D), its row log-sum-exps (B, H, N) and the column means ``a_j = Σ_{i≥j}
    A[i,j] / (N − j)`` (B, H, N), ``block`` query rows at a time (default: about 2²² logits live)."""
    batch, heads, length, _ = query.shape
    block = block or max(1, (1 << 22) // (batch * heads * length))
    out = torch.empty_like(query)
    lse = query.new_empty(batch, heads, length)
    columns = query.new_zeros(batch, heads, 1, length)
    for first in range(0, length, block):
        last = min(first + block, length)
        logits = (query[:, :, first:last] @ key[:, :, :last].transpose(-1, -2)).mul_(scale)
        future = torch.ones(last - first, last - first, dtype=torch.bool, device=query.device).triu(1)
        logits[..., first:].masked_fill_(future, -torch.inf)
        peak = logits.amax(-1, keepdim=True)
        weights = logits.sub_(peak).exp_()  # unnormalised
        total = weights.sum(-1, keepdim=True)
        out[:, :, first:last] = (weights @ value[:, :, :last]).div_(total)
        lse[:, :, first:last] = (peak + total.log()).squeeze(-1)
        columns[..., :last] += total.reciprocal().transpose(-1, -2) @ weights
    received = torch.arange(length, 0, -1, device=query.device, dtype=query.dtype)
    return out, lse, columns.squeeze(2) / received


def sink_columns(means: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sink key indices (B, H, M) in ascending order and which are real (B, H, M): the keys with ``a_j >
    threshold`` but the first of them; M is the most any head has (0: none)."""
    flagged = means > threshold
    first = flagged.to(torch.uint8).argmax(-1, keepdim=True)  # 0 when nothing is flagged (then already False)
    flagged.scatter_(-1, first, False)
    most = int(flagged.sum(-1).max()) if flagged.numel() else 0
    index = torch.argsort((~flagged).to(torch.uint8), dim=-1, stable=True)[..., :most]
    return index, flagged.gather(-1, index)


def calibrate(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    scale: float,
    calibration: SinkCalibration,
    block: int | None = None,
) -> tuple[torch.Tensor, int]:
    """The calibrated causal attention output (B, H, N, D) and the number of sink columns found."""
    out, lse, means = causal_with_columns(query, key, value, scale, block)
    index, valid = sink_columns(means, calibration.threshold)
    if not index.shape[-1]:
        return out, 0
    gather = index.unsqueeze(-1).expand(-1, -1, -1, key.shape[-1])
    sink_keys, sink_values = key.gather(2, gather), value.gather(2, gather)
    rows = torch.arange(query.shape[2], device=query.device)
    visible = valid[:, :, None, :] & (index[:, :, None, :] <= rows[None, None, :, None])
    weights = torch.where(visible, (query @ sink_keys.transpose(-1, -2) * scale - lse.unsqueeze(-1)).exp(), 0.0)
    mass = weights.sum(-1, keepdim=True)  # S_i
    out_sink = weights @ sink_values
    beta = calibration.beta
    others = (1 - mass).clamp_min(torch.finfo(mass.dtype).tiny)
    calibrated = beta * out_sink + (1 - beta * mass) / others * (out - out_sink)
    return torch.where(mass < 1 - 1e-6, calibrated, out), int(valid.sum())


def act_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The ``ropescope_act`` attention: SDPA, with the chosen heads' sinks calibrated while :func:`act` is active."""
    state = _ACTIVE.get()
    heads = state.layers.get(getattr(module, "layer_idx", -1)) if state is not None else None
    if not heads:
        return sdpa(module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs)
    from transformers.integrations.sdpa_attention import repeat_kv

    check_call("ACT", query, key, attention_mask, kwargs)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    groups = query.shape[1] // key.shape[1]
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    rest = [head for head in range(query.shape[1]) if head not in heads]
    out = torch.empty_like(query)
    if rest:
        out[:, rest] = attend(query[:, rest], key[:, rest], value[:, rest], scale, True)[0]
    out[:, heads], found = calibrate(query[:, heads], key[:, heads], value[:, heads], scale, state.calibration)
    state.sinks.append(found)
    return out.transpose(1, 2).contiguous(), None


@contextlib.contextmanager
def act(model: Any, calibration: SinkCalibration) -> Iterator[_ActState]:
    """Run the transformers ``model`` with the sinks of ``calibration.heads`` calibrated."""
    config = getattr(model, "config", None)
    layers, heads = getattr(config, "num_hidden_layers", 0), getattr(config, "num_attention_heads", 0)
    for layer, head in calibration.heads:
        if not (0 <= layer < layers and 0 <= head < heads):
            raise RopescopeInputError(
                "ACT heads", f"({layer}, {head}) is not a head of this model", f"use layers < {layers}, heads < {heads}"
            )
    with installed(
        model, ACT_ATTENTION, act_attention_forward, _ACTIVE, _ActState(calibration, calibration.by_layer())
    ) as state:
        yield state


def search_layers(
    score: Callable[[SinkCalibration], tuple[float, ...]],
    layers: Sequence[int],
    heads: int,
    beta: float = BETA,
    threshold: float = THRESHOLD,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[SinkCalibration, list[dict[str, Any]]]:
    """Greedy head choice on held-out prompts: starting from no head, add every head of each of ``layers`` in
    turn and keep the layer when ``score`` (compared as a tuple, e.g. (accuracy, mean gold log-probability))
    improves. Returns the calibration and one record per step."""
    chosen: tuple[tuple[int, int], ...] = ()
    best = score(SinkCalibration(chosen, beta, threshold))
    steps = [{"layer": None, "score": list(best), "kept": True}]
    for done, layer in enumerate(layers, 1):
        trial = chosen + tuple((layer, head) for head in range(heads))
        value = score(SinkCalibration(trial, beta, threshold))
        kept = value > best
        if kept:
            chosen, best = trial, value
        steps.append({"layer": layer, "score": list(value), "kept": kept})
        if progress is not None:
            progress(done, len(layers))
    return SinkCalibration(chosen, beta, threshold), steps
