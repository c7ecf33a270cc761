"""The press API: a press is a frozen dataclass; ``with press(model, p):`` compresses the KV cache after prefill.

In the style of NVIDIA kvpress: a forward hook on every attention module of a loaded transformers model sees
the cache right after the module appended the prefill's keys and values, and replaces that layer's keys and
values by the ones the press keeps. Decoding then runs on the compressed cache. ``ratio`` is the fraction of KV
pairs removed (per layer and KV head: ``round(ratio · T)`` of the T prefill tokens, never the protected last
``protect`` tokens). The hooks are removed on exit, even after an exception. Only the call that first fills a
layer's cache is compressed: a question fed afterwards as a chunk (kvpress's setting: the question is kept out of
compression) and decoding steps pass through untouched, and attend to the compressed cache.

For measuring many presses on one prompt, :func:`captured_calls` records what every attention module saw during
one plain prefill and :func:`compressed_cache` applies a press to that prefill's cache: the prefill's own
outputs never depend on the press (each layer attends to its full keys before the hook runs), so this is the
same compression as the hook's, computed by the same ``Press.compress``.
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

    def next_position(self, length: int) -> int:
        """The position of the first token after a compressed prefill of ``length`` tokens: kept tokens keep
        their positions unless the press moves them (StreamingLLM)."""
        return length

    def always_kept(self) -> int:
        """Tokens the press keeps whatever their score (the protected ones, sinks, an observation window)."""
        return self.protect

    def check_budget(self, length: int) -> None:
        """An input error when compressing ``length`` tokens would keep fewer than :meth:`always_kept`."""
        kept = self.kept(length)
        if kept < length and kept < self.always_kept():
            raise RopescopeInputError(
                f"{type(self).__name__} at ratio {self.ratio}",
                f"keeps {kept} of {length} tokens, fewer than the {self.always_kept()} it always keeps",
                "lower the ratio, or what it always keeps (sinks, window, recent, protect)",
            )

    def compress(
        self, module: nn.Module, keys: torch.Tensor, values: torch.Tensor, call: Call
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The keys and values (``[B, H_kv, T, D]``) to keep; the identity when nothing is removed."""
        length = keys.shape[2]
        if self.kept(length) >= length:
            return keys, values
        self.check_budget(length)
        return self.keep(module, keys, values, call)

    def keep(
        self, module: nn.Module, keys: torch.Tensor, values: torch.Tensor, call: Call
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


@dataclass(frozen=True)
class NoPress(Press):
    """The identity: keeps every KV pair (the uncompressed baseline)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ratio:
            raise RopescopeInputError("none press", f"removes nothing, got ratio {self.ratio!r}", "use ratio 0")

    def compress(
        self, module: nn.Module, keys: torch.Tensor, values: torch.Tensor, call: Call
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return keys, values


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


def _prefill_call(args: tuple, kwargs: dict) -> Call | None:
    """The module's Call when this forward first filled its layer's cache (a prefill), else None."""
    hidden = kwargs.get("hidden_states", args[0] if args else None)
    cos, sin = kwargs["position_embeddings"]
    return None if hidden is None or hidden.shape[1] <= 1 else Call(hidden, cos, sin)


def output_cache(output: Any) -> Any:
    """The cache a transformers forward returned (``cache`` in recent releases, ``past_key_values`` before)."""
    cache = getattr(output, "cache", None)
    return output.past_key_values if cache is None else cache


def _cache(kwargs: dict) -> Any:
    return kwargs.get("cache", kwargs.get("past_key_values"))


@contextlib.contextmanager
def press(model: nn.Module, chosen: Press) -> Iterator[None]:
    """Compress every layer's cache after prefill while the block runs; the hooks are removed on exit."""

    def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        cache, call = _cache(kwargs), _prefill_call(args, kwargs)
        if cache is None or call is None:
            return
        layer = cache.layers[module.layer_idx]
        if layer.get_seq_length() != call.hidden.shape[1]:  # the cache held tokens before: not a prefill
            return
        with torch.no_grad():
            layer.keys, layer.values = chosen.compress(module, layer.keys, layer.values, call)

    with _hooks(model, hook):
        yield


@contextlib.contextmanager
def captured_calls(model: nn.Module) -> Iterator[dict[int, Call]]:
    """Record, by layer index, what every attention module was called with during the block's prefill."""
    calls: dict[int, Call] = {}

    def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        call = _prefill_call(args, kwargs)
        if call is not None:
            calls[module.layer_idx] = call

    with _hooks(model, hook):
        yield calls


def compressed_cache(model: nn.Module, cache: Any, calls: dict[int, Call], chosen: Press) -> Any:
    """A new cache holding what ``chosen`` keeps of a plain prefill's ``cache`` (``calls`` from that prefill)."""
    from transformers import DynamicCache

    modules = sorted(attention_modules(model), key=lambda m: m.layer_idx)
    with torch.no_grad():
        kept = [
            chosen.compress(m, cache.layers[m.layer_idx].keys, cache.layers[m.layer_idx].values, calls[m.layer_idx])
            for m in modules
        ]
    return DynamicCache(kept)


@contextlib.contextmanager
def _hooks(model: nn.Module, hook: Any) -> Iterator[None]:
    handles = [m.register_forward_hook(hook, with_kwargs=True) for m in attention_modules(model)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
