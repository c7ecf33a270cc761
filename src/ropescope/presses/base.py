"""The press API: a press is a frozen dataclass; ``with press(model, p):`` compresses the KV cache after prefill.

In the style of NVIDIA kvpress: a forward hook on every attention module of a loaded transformers model sees
the cache right after the module appended the prefill's keys and values, and replaces that layer's keys and
values by the ones the press keeps. Decoding then runs on the compressed cache. ``ratio`` is the fraction of KV
pairs removed (per layer and KV head: ``round(ratio · T)`` of the T prefill tokens, never the protected last
``protect`` tokens, which hold the question in kvpress's setting). The hooks are removed on exit, even after an
exception. Decoding steps (one query token) pass through untouched.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ropescope.errors import RopescopeInputError


@dataclass(frozen=True)
class Press:
    """Removes ``ratio`` of the prefill's KV pairs; subclasses choose which (``keep``)."""

    ratio: float = 0.0
    protect: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.ratio < 1:
            raise RopescopeInputError("ratio", f"must be in [0, 1), got {self.ratio!r}", "e.g. 0.5 removes half")
        if self.protect < 0:
            raise RopescopeInputError("protect", f"must be ≥ 0, got {self.protect!r}", "e.g. protect=32")

    def kept(self, length: int) -> int:
        """How many of ``length`` prefill tokens stay."""
        return length - round(self.ratio * length)

    def compress(
        self, module: nn.Module, keys: torch.Tensor, values: torch.Tensor, call: Call
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The keys and values (``[B, H_kv, T, D]``) to keep; the identity when nothing is removed."""
        length = keys.shape[2]
        if self.kept(length) >= length:
            return keys, values
        return self.keep(module, keys, values, call)

    def keep(
        self, module: nn.Module, keys: torch.Tensor, values: torch.Tensor, call: Call
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


@dataclass(frozen=True)
class Call:
    """What the attention module was called with: its input ``hidden`` states ``[B, T, d_model]`` and the rotary
    ``cos``/``sin`` ``[B, T, head_dim]`` of those positions."""

    hidden: torch.Tensor
    cos: torch.Tensor
    sin: torch.Tensor


@dataclass(frozen=True)
class ScorePress(Press):
    """Keeps, per layer and KV head, the prefill tokens of highest ``score`` (and always the protected last ones),
    in their original order and at their original positions: decode with explicit ``position_ids``."""

    def score(self, module: nn.Module, keys: torch.Tensor, values: torch.Tensor, call: Call) -> torch.Tensor:
        """``[B, H_kv, T]``: how much each cached token is worth keeping."""
        raise NotImplementedError

    def keep(
        self, module: nn.Module, keys: torch.Tensor, values: torch.Tensor, call: Call
    ) -> tuple[torch.Tensor, torch.Tensor]:
        length = keys.shape[2]
        scores = self.score(module, keys, values, call).clone()
        if self.protect:
            scores[..., length - self.protect :] = torch.inf
        chosen = scores.topk(self.kept(length), dim=-1).indices.sort(dim=-1).values
        index = chosen.unsqueeze(-1).expand(-1, -1, -1, keys.shape[-1])
        return keys.gather(2, index), values.gather(2, index)


def raw_queries(module: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The module's queries ``[B, H, T, D]`` of ``hidden`` before RoPE."""
    return module.q_proj(hidden).view(*hidden.shape[:-1], -1, module.head_dim).transpose(1, 2)


def queries(module: nn.Module, call: Call, last: int) -> torch.Tensor:
    """The rotated queries ``[B, H, last, D]`` of the last ``last`` prefill tokens, as the module computes them."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    q = raw_queries(module, call.hidden[:, -last:])
    rotated, _ = apply_rotary_pos_emb(q, q, call.cos[:, -last:], call.sin[:, -last:])
    return rotated


def logits(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """q·kᵀ/√D ``[B, H, Q, T]`` of queries ``[B, H, Q, D]`` against cached keys ``[B, H_kv, T, D]`` (GQA: each KV
    head serves H/H_kv query heads)."""
    shared = keys.repeat_interleave(queries.shape[1] // keys.shape[1], dim=1)
    return queries @ shared.transpose(-1, -2) / math.sqrt(queries.shape[-1])


def per_kv_head(values: torch.Tensor, kv_heads: int) -> torch.Tensor:
    """``[B, H, T]`` averaged over the query heads that share each of ``kv_heads`` KV heads (GQA)."""
    batch, heads, length = values.shape
    return values.view(batch, kv_heads, heads // kv_heads, length).mean(dim=2)


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """Every attention module of a transformers decoder (those with ``layer_idx`` and a key projection)."""
    found = [m for m in model.modules() if hasattr(m, "layer_idx") and hasattr(m, "k_proj")]
    if not found:
        raise RopescopeInputError(
            type(model).__name__, "has no attention modules a press can hook", "load a transformers decoder model"
        )
    return found


def cache_bytes(cache: Any) -> int:
    """Bytes held by a transformers cache's keys and values."""
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


@contextlib.contextmanager
def press(model: nn.Module, chosen: Press) -> Iterator[None]:
    """Compress every layer's cache after prefill while the block runs; the hooks are removed on exit."""

    def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        if cache is None or hidden is None or hidden.shape[1] <= 1:
            return
        cos, sin = kwargs["position_embeddings"]
        layer = cache.layers[module.layer_idx]
        with torch.no_grad():
            layer.keys, layer.values = chosen.compress(module, layer.keys, layer.values, Call(hidden, cos, sin))

    handles = [m.register_forward_hook(hook, with_kwargs=True) for m in attention_modules(model)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
