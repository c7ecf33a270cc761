"""ACT-style attention-sink calibration on chosen heads, computed from the sink columns only (no L×L matrix).

Yu et al., ICML 2024, "Unveiling and Harnessing Hidden Attention Sinks: Enhancing LLMs without Training through
Attention Calibration" (arXiv 2406.15765, repo GATECH-EIC/ACT). Built from the method as summarised in
``/work/shared/reference/anchors_lab_kv_bias.md`` §C3 (the paper's full text and code were not read here). On a
chosen head with attention ``A[i, j]`` over the causal prefix of N tokens:

* key j is a sink if its mean received attention ``a_j = Σ_i A[i,j] / (N − j)`` exceeds ``threshold`` (0.1 in
  ACT); the first such key (in practice the first token) is kept as it is, as ACT's ``indices[1:]`` does;
* the attention sinks receive is scaled by ``β`` (0.4 in ACT) and the freed mass goes to the other keys in
  proportion to their weights, so with ``S_i = Σ_{j∈sinks} A[i,j]`` the new row is ``β·A[i,j]`` on sinks and
  ``(1 − βS_i)/(1 − S_i)·A[i,j]`` elsewhere, and

      out_i = β·out_sink,i + (1 − βS_i)/(1 − S_i)·(out_full,i − out_sink,i),   out_sink,i = Σ_{j∈sinks} A[i,j]·v_j

  (a row whose whole mass is on sinks, ``S_i = 1``, has no other key to take it and is left unchanged). The
  other keys' share is a difference, so its float32 rounding grows as 1/(1 − S_i): about 10× in a row that puts
  90 % of its attention on sinks.

``out_full`` and the row log-sum-exp ``lse_i`` come from one fused SDPA call; ``A[i, j] = exp(q_i·k_j·scale −
lse_i)`` is then needed only on the sink columns, O(N·|sinks|). The column sums ``Σ_{i≥j} A[i,j]`` are the
log-sum-exp of a second SDPA call with queries and keys swapped and the sequence reversed (so the condition
``i ≥ j`` is causal): key ``[k_j, 1]`` against query ``[q_i·scale, −lse_i]``, whose dot product is
``q_i·k_j·scale − lse_i``. Both are O(N) memory. Heads are chosen as ACT does, by a search on held-out prompts
that keeps what improves accuracy (:func:`search_layers`, here a greedy search over whole layers).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ropescope.errors import RopescopeInputError
from ropescope.interventions.base import attend, check_call, installed, sdpa

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


def column_means(query: torch.Tensor, key: torch.Tensor, lse: torch.Tensor, scale: float) -> torch.Tensor:
    """``a_j = Σ_{i≥j} A[i,j] / (N − j)`` (B, H, N) of causal attention with row log-sum-exps ``lse``."""
    length = query.shape[2]
    reversed_query = torch.cat((key, key.new_ones(*key.shape[:3], 1)), -1).flip(2)
    reversed_key = torch.cat((query * scale, -lse.unsqueeze(-1)), -1).flip(2)
    column_lse = attend(reversed_query, reversed_key, torch.zeros_like(reversed_key), 1.0, True)[1].flip(2)
    return column_lse.exp() / torch.arange(length, 0, -1, device=query.device, dtype=query.dtype)


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
    out: torch.Tensor,
    lse: torch.Tensor,
    scale: float,
    calibration: SinkCalibration,
) -> tuple[torch.Tensor, int]:
    """The calibrated output (B, H, N, D) of causal attention ``out`` with log-sum-exps ``lse`` (B, H, N), and the
    number of sink columns found."""
    index, valid = sink_columns(column_means(query, key, lse, scale), calibration.threshold)
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
    out, lse = attend(query, key, value, scale, True)
    chosen = torch.tensor(heads, device=query.device)
    calibrated, found = calibrate(query[:, chosen], key[:, chosen], value[:, chosen], out[:, chosen], lse[:, chosen],
                                  scale, state.calibration)  # fmt: skip
    out[:, chosen] = calibrated
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
