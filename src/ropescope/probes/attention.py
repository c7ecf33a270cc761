"""A registered attention function that collects streaming statistics while the model runs unchanged.

Inside ``with probe_attention(model, probe):`` every attention layer of a transformers model dispatches to
``ropescope_probe``, registered in transformers' ``AttentionInterface`` (with transformers' own ``sdpa_mask`` in
``AttentionMaskInterface``, so the model builds the same masks it builds for SDPA). The function returns the
output of transformers' ``sdpa_attention_forward`` untouched, so logits are identical to a plain SDPA run, and
then recomputes ``softmax(Q Kᵀ · scale + mask)`` for blocks of ``C`` query rows against the keys that block can
see, feeding :func:`ropescope.probes.stats.accumulate_block`. Peak extra memory is O(C × L) per head, never
O(L²). Grouped-query attention is expanded with transformers' ``repeat_kv``; the scale is the one the model
passes; sliding windows and padding arrive through the mask. Logit soft-capping, learned sink logits and
additive position biases change the softmax in ways the probe does not model: they are refused.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ropescope.errors import RopescopeInputError
from ropescope.probes.stats import FIRST_K_DEFAULT, LayerStatistics, accumulate_block

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
        self.listener: Callable[[int], None] | None = None  # told the number of layers seen after each one

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
        if attention_mask is not None and attention_mask.shape[1] != 1:
            raise RopescopeInputError("probe", "got a per-head attention mask", "probe a model with a shared mask")
        groups = heads // key.shape[1]
        stats = self.layers.setdefault(layer, LayerStatistics.zeros(heads, length))
        self.length = length
        rows = self.block_rows or query.shape[-1]
        with torch.no_grad():
            for start in range(0, length, rows):
                stop = min(length, start + rows)
                visible, bias = _block_mask(attention_mask, is_causal, start, stop, length, query.device)
                visible = visible.expand(batch, 1, -1, -1)
                keys = _last_visible_key(visible) + 1
                accumulate_block(
                    stats,
                    _block_scores(query[:, :, start:stop], key[:, :, :keys], groups, scaling, bias, keys),
                    visible[..., :keys].cpu(),
                    start,
                    self.first_k,
                )
        if self.listener is not None:
            self.listener(len(self.layers))


def _block_scores(
    query: torch.Tensor, key: torch.Tensor, groups: int, scaling: float, bias: torch.Tensor | None, keys: int
) -> torch.Tensor:
    """Q Kᵀ · scale (+ bias) as (B, H, C, K) float32 on the CPU, each KV head shared by ``groups`` query heads
    (the head order of transformers' ``repeat_kv``) without copying the keys."""
    batch, heads, rows, dim = query.shape
    grouped = (query.float() * scaling).reshape(batch, heads // groups, groups * rows, dim)
    scores = torch.matmul(grouped, key.float().transpose(-1, -2)).reshape(batch, heads, rows, keys)
    if bias is not None:
        scores.add_(bias[..., :keys].float())
    return scores.cpu()


def _block_mask(
    attention_mask: torch.Tensor | None, is_causal: bool, start: int, stop: int, length: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(visible (B|1, 1, C, L) bool, additive bias or None) for query rows ``start … stop − 1``."""
    if attention_mask is None:
        rows = torch.arange(start, stop, device=device)[:, None]
        cols = torch.arange(length, device=device)[None, :]
        visible = cols <= rows if is_causal else torch.ones(stop - start, length, dtype=torch.bool, device=device)
        return visible[None, None], None
    block = attention_mask[:, :, start:stop, :length]
    if block.dtype == torch.bool:
        return block, None
    visible = torch.isfinite(block) & (block > torch.finfo(block.dtype).min / 2)
    return visible, torch.where(visible, block, torch.zeros((), dtype=block.dtype))


def _last_visible_key(visible: torch.Tensor) -> int:
    seen = visible.flatten(0, 2).any(0).nonzero()
    return int(seen.max()) if len(seen) else 0


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


def _register() -> None:
    """Add ``ropescope_probe`` to transformers' attention and mask registries (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(PROBE_ATTENTION, probe_attention_forward)
    AttentionMaskInterface.register(PROBE_ATTENTION, sdpa_mask)


@contextlib.contextmanager
def probe_attention(model: Any, probe: AttentionProbe) -> Iterator[AttentionProbe]:
    """Route ``model``'s attention through the probe for the duration of the block, then restore it."""
    _register()
    previous = model.config._attn_implementation
    model.set_attn_implementation(PROBE_ATTENTION)
    if model.config._attn_implementation != PROBE_ATTENTION:
        model.set_attn_implementation(previous)
        raise RopescopeInputError(
            "model",
            f"{type(model).__name__} cannot switch its attention implementation",
            "probe a transformers model whose attention uses AttentionInterface",
        )
    token = _ACTIVE_PROBE.set(probe)
    try:
        yield probe
    finally:
        _ACTIVE_PROBE.reset(token)
        model.set_attn_implementation(previous)
