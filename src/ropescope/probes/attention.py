"""A registered attention function that collects streaming statistics while the model runs unchanged.

Inside ``with probe_attention(model, probe):`` every attention layer of a transformers model dispatches to
``ropescope_probe``, registered in transformers' ``AttentionInterface`` (with transformers' own ``sdpa_mask`` in
``AttentionMaskInterface``, so the model builds the same masks it builds for SDPA). The function returns the
output of transformers' ``sdpa_attention_forward`` untouched, so logits are identical to a plain SDPA run, and
then recomputes ``softmax(Q Kᵀ · scale + mask)`` for blocks of ``C`` query rows against the keys that block can
see, feeding :func:`ropescope.probes.stats.accumulate_block`. Peak extra memory is O(C × L) per head, never
O(L²). Grouped-query attention is expanded with transformers' ``repeat_kv``; the scale is the one the model
passes; sliding windows and padding arrive through the mask. Logit soft-capping, learned sink logits and
additive position biases passed beside the mask change the softmax in ways the probe does not model: they are
refused.

The reference decoder (:class:`ropescope.model.Decoder`) is probed the same way through its own hook,
``Decoder.attention_function``: each layer's output is the decoder's :func:`~ropescope.model.sdpa_attention`
untouched, and the statistics see the additive mask SDPA sees, so the bias of ALiBi, T5 or wavelet encodings
(per head) is part of the probed scores.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import torch

from ropescope.attention_functions import installed
from ropescope.errors import RopescopeInputError
from ropescope.model import AttentionFunction, Decoder, sdpa_attention
from ropescope.probes.stats import (
    FIRST_K_DEFAULT,
    DistanceTables,
    LayerStatistics,
    RowValues,
    accumulate_block,
    add_rows,
)

PROBE_ATTENTION = "ropescope_probe"

_ACTIVE_PROBE: contextvars.ContextVar[AttentionProbe | None] = contextvars.ContextVar("ropescope_probe", default=None)
_UNSUPPORTED_KWARGS = {
    "softcap": "attention logit soft-capping",
    "s_aux": "learned attention-sink logits",
    "position_bias": "an additive position bias",
}


class AttentionProbe:
    """Collects :class:`LayerStatistics` for every attention layer the model runs while it is active."""

    def __init__(self, first_k: int = FIRST_K_DEFAULT, block_rows: int | None = None) -> None:
        self.first_k = first_k
        self.block_rows = block_rows  # query rows per block; default the head dimension, so a block of scores
        # (H × rows × L floats) is the size of the layer's query tensor and memory stays O(L)
        self.layers: dict[int, LayerStatistics] = {}
        self.length: int | None = None

    def observe(
        self,
        layer: int,
        query: torch.Tensor,
        key: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scaling: float,
        is_causal: bool,
    ) -> None:
        """Accumulate the statistics of one layer's attention (query (B, H, L, D), key (B, H_kv, L, D))."""
        batch, heads, length, _ = query.shape
        if key.shape[2] != length:
            raise RopescopeInputError(
                "probe",
                f"saw {length} queries against {key.shape[2]} keys (a KV cache or cross-attention)",
                "run the probed forward pass on the whole sequence with use_cache=False",
            )
        groups = heads // key.shape[1]
        stats = self.layers.setdefault(layer, LayerStatistics.zeros(heads, length))
        self.length = length
        rows = self.block_rows or query.shape[-1]
        tables = DistanceTables.build(length)
        row_values = RowValues.zeros(batch, heads, length)
        with torch.no_grad():
            padded_key = torch.cat((key.new_zeros(*key.shape[:2], rows, key.shape[-1]), key), dim=2)
            for start in range(0, length, rows):
                stop = min(length, start + rows)
                tail_visible, bias, keys = _block_mask(attention_mask, is_causal, start, stop, length, query.device)
                block_keys = padded_key[:, :, rows - (stop - start) : rows + keys]  # C padding rows, then keys
                accumulate_block(
                    stats,
                    row_values,
                    _block_scores(query[:, :, start:stop], block_keys, groups, scaling, bias),
                    tail_visible.expand(batch, 1, -1, -1).cpu(),
                    start,
                    tables,
                    self.first_k,
                )
            add_rows(stats, row_values, self.first_k)


def _block_scores(
    query: torch.Tensor, key: torch.Tensor, groups: int, scaling: float, bias: torch.Tensor | None
) -> torch.Tensor:
    """Q Kᵀ · scale (+ bias on the last K columns) as (B, H, C, C + K) float32 on the CPU for keys that start
    with C padding rows, each KV head shared by ``groups`` query heads (the head order of transformers'
    ``repeat_kv``) without copying the keys."""
    batch, heads, rows, dim = query.shape
    grouped = (query.float() * scaling).reshape(batch, heads // groups, groups * rows, dim)
    scores = torch.matmul(grouped, key.float().transpose(-1, -2)).reshape(batch, heads, rows, key.shape[2])
    if bias is not None:
        scores[..., rows:].add_(bias.float())
    return scores.cpu()


def _block_mask(
    attention_mask: torch.Tensor | None, is_causal: bool, start: int, stop: int, length: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """For query rows ``start … stop − 1``: which keys ``F … K−1`` they see ((B|1, 1, C, K − F) bool, where every
    row sees keys before F and K is one past the last key any row sees), the additive bias (B|1, 1|H, C, K) or
    None, and K.

    A mask with a head axis may carry a per-head bias, but every head must hide the same keys."""
    if attention_mask is None:
        if not is_causal:
            return torch.ones(1, 1, stop - start, 0, dtype=torch.bool), None, length
        rows = torch.arange(start, stop, device=device)[:, None]
        return (torch.arange(start + 1, stop, device=device)[None, :] <= rows)[None, None], None, stop
    block = attention_mask[:, :, start:stop, :length]
    if block.dtype == torch.bool:
        visible, bias = block, None
    else:
        visible = torch.isfinite(block) & (block > torch.finfo(block.dtype).min / 2)
        bias = torch.where(visible, block, torch.zeros((), dtype=block.dtype))
    if visible.shape[1] != 1:
        if not torch.equal(visible.any(1), visible.all(1)):
            raise RopescopeInputError("probe", "got a mask that hides different keys per head", "share the mask")
        visible = visible[:, :1]
    columns = visible.flatten(0, 2)
    seen = columns.any(0).nonzero()
    keys = int(seen.max()) + 1 if len(seen) else 1
    hidden = (~columns[:, :keys].all(0)).nonzero()
    first_hidden = int(hidden[0]) if len(hidden) else keys
    return visible[..., first_hidden:keys], None if bias is None else bias[..., :keys], keys


def probe_attention_forward(
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
    """The ``ropescope_probe`` attention: transformers' SDPA output, plus statistics for the active probe."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    probe = _ACTIVE_PROBE.get()
    if probe is not None:
        for name, what in _UNSUPPORTED_KWARGS.items():
            if kwargs.get(name) is not None:
                raise RopescopeInputError(
                    "model", f"uses {what}, which the attention probe does not model", "probe another model"
                )
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
        layer = getattr(module, "layer_idx", None)
        probe.observe(len(probe.layers) if layer is None else int(layer), query, key, attention_mask, scale, causal)
    return sdpa_attention_forward(
        module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
    )


def probed_decoder_attention(probe: AttentionProbe) -> AttentionFunction:
    """A :data:`ropescope.model.AttentionFunction` that feeds ``probe`` and returns the decoder's SDPA output."""

    def attend(
        layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, causal: bool
    ) -> torch.Tensor:
        shared = mask if mask is None or mask.dim() == 4 else mask.view(1, 1, *mask.shape)
        probe.observe(layer, q, k, shared, q.shape[-1] ** -0.5, causal)
        return sdpa_attention(layer, q, k, v, mask, causal)

    return attend


@contextlib.contextmanager
def probe_attention(model: Any, probe: AttentionProbe) -> Iterator[AttentionProbe]:
    """Route ``model``'s attention (a transformers model or a :class:`ropescope.model.Decoder`) through the probe
    for the duration of the block, then restore it, even after an exception."""
    if isinstance(model, Decoder):
        with model.attention_function(probed_decoder_attention(probe)):
            yield probe
        return
    fix = "probe a transformers model whose attention uses AttentionInterface"
    with installed(model, PROBE_ATTENTION, probe_attention_forward, _ACTIVE_PROBE, probe, fix):
        yield probe
