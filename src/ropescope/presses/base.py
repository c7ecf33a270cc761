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
        self, module: nn.Module, keys: torch.Tensor, values: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The keys and values (``[B, H_kv, T, D]``) to keep; the identity when nothing is removed."""
        length = keys.shape[2]
        if self.kept(length) >= length:
            return keys, values
        return self.keep(module, keys, values, hidden)

    def keep(
        self, module: nn.Module, keys: torch.Tensor, values: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


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
        layer = cache.layers[module.layer_idx]
        layer.keys, layer.values = chosen.compress(module, layer.keys, layer.values, hidden)

    handles = [m.register_forward_hook(hook, with_kwargs=True) for m in attention_modules(model)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
