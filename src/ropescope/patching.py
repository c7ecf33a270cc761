"""Swap the rotary spectrum of a loaded transformers model for the duration of a ``with`` block.

transformers' rotary modules (Llama, Mistral, Qwen2, Gemma and most decoder families, v5) hold
``inv_freq`` (θ_i, the angle per position of pair i), ``original_inv_freq`` and ``attention_scaling`` (the
factor multiplying cos and sin), or ``{layer_type}_inv_freq`` … per layer type (Gemma 3's sliding and full
attention). Their forward computes ``cos(m·θ)·a`` and ``sin(m·θ)·a`` (RoFormer, Su et al. 2021,
arXiv 2104.09864), so replacing θ and a in place is exactly loading the model under another RoPE config::

    with patch(model, load_spec("yarn-config.json")):
        logits = model(ids).logits

The buffers keep their dtype and device and get their old values back on exit, even after an exception.
While patched, the module's ``rope_type`` reads ``default`` so transformers' ``dynamic_rope_update`` leaves the
tables alone. Length-dependent targets (dynamic NTK, LongRoPE) are recomputed by a forward pre-hook from the
current length ``max(position_ids) + 1`` — like transformers for a growing sequence, except that the spectrum
also follows a length that shrinks. Entropy-ABF's query scale and attention-side corrections (DeepSeek's
``mscale_all_dim`` softmax scale) live outside the rotary module and are refused or not applied, respectively.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ropescope.config import RopeSpec
from ropescope.errors import RopescopeInputError
from ropescope.spectrum import Spectrum, spectrum

_LENGTH_DEPENDENT = frozenset({"dynamic", "longrope"})


@dataclass(frozen=True)
class RotaryTable:
    """One frequency table of a rotary module: ``prefix`` is ``""`` or ``"{layer_type}_"``."""

    name: str
    module: nn.Module
    layer_type: str | None

    @property
    def prefix(self) -> str:
        return "" if self.layer_type is None else f"{self.layer_type}_"

    @property
    def inv_freq(self) -> torch.Tensor:
        return getattr(self.module, f"{self.prefix}inv_freq")

    def __str__(self) -> str:
        return self.name if self.layer_type is None else f"{self.name}[{self.layer_type}]"


def rotary_tables(model: nn.Module) -> tuple[RotaryTable, ...]:
    """Every rotary frequency table in ``model`` (transformers' layout); raises if there is none."""
    tables = []
    for name, module in model.named_modules():
        for buffer_name in module._buffers:
            if not buffer_name.endswith("inv_freq") or "original_inv_freq" in buffer_name:
                continue
            layer_type = buffer_name[: -len("_inv_freq")] if buffer_name != "inv_freq" else None
            prefix = "" if layer_type is None else f"{layer_type}_"
            if hasattr(module, f"{prefix}attention_scaling") and hasattr(module, "rope_type"):
                tables.append(RotaryTable(name or type(model).__name__, module, layer_type))
    if not tables:
        raise RopescopeInputError(
            f"model {type(model).__name__}",
            "has no rotary module ropescope recognises (one with inv_freq, attention_scaling and rope_type, "
            "as transformers' Llama, Mistral, Qwen2 and Gemma families have)",
            "patch a transformers RoPE model, or change its config's rope_parameters instead",
        )
    return tuple(tables)


@contextmanager
def patch(model: nn.Module, target: RopeSpec | Spectrum | Mapping[str, RopeSpec | Spectrum]) -> Iterator[tuple]:
    """Use ``target``'s frequencies and attention factor in ``model``'s rotary modules inside the block.

    ``target`` is a :class:`RopeSpec` (its ``layer_specs`` go to the matching layer types), a
    :class:`Spectrum` (every table), or a mapping from layer type to either (only those tables). Yields the
    patched :class:`RotaryTable` objects.
    """
    chosen = _assign(rotary_tables(model), target)
    with ExitStack() as stack:
        for table, choice in chosen:
            stack.enter_context(_patched(table, choice))
        yield tuple(table for table, _ in chosen)


def _assign(tables: tuple[RotaryTable, ...], target: Any) -> list[tuple[RotaryTable, RopeSpec | Spectrum]]:
    if isinstance(target, Mapping):
        known = {t.layer_type for t in tables}
        unknown = sorted(set(target) - known)
        if unknown:
            raise RopescopeInputError(
                "patch target", f"names layer types {unknown} the model lacks", f"use some of {sorted(map(str, known))}"
            )
        return [(t, _checked(target[t.layer_type])) for t in tables if t.layer_type in target]
    target = _checked(target)
    if isinstance(target, RopeSpec) and target.layer_specs:
        return [(t, target.layer_specs.get(t.layer_type, target)) for t in tables]
    return [(t, target) for t in tables]


def _checked(target: Any) -> RopeSpec | Spectrum:
    if not isinstance(target, RopeSpec | Spectrum):
        raise RopescopeInputError(
            "patch target", f"is a {type(target).__name__}", "pass a RopeSpec (load_spec), a Spectrum, or a mapping"
        )
    spec = target if isinstance(target, RopeSpec) else target.spec
    if spec.rope_type == "entropy_abf":
        raise RopescopeInputError(
            "patch target",
            "is Entropy-ABF, whose log-length query scale is not part of the rotary module",
            "patch the base only (spec.with_base(...)) or use ropescope.encodings 'rope' in the reference decoder",
        )
    return target


@contextmanager
def _patched(table: RotaryTable, target: RopeSpec | Spectrum) -> Iterator[None]:
    module, prefix = table.module, table.prefix
    static = target if isinstance(target, Spectrum) else spectrum(target)
    if static.inv_freq.shape[0] != table.inv_freq.numel():
        raise RopescopeInputError(
            f"patch target for {table}",
            f"has {static.inv_freq.shape[0]} rotary pairs but the model's table has {table.inv_freq.numel()}",
            "load the spec from this model's own config (same head_dim and partial_rotary_factor)",
        )
    saved_buffers = {n: getattr(module, f"{prefix}{n}").clone() for n in ("inv_freq", "original_inv_freq")}
    saved_scaling = getattr(module, f"{prefix}attention_scaling")
    saved_type = module.rope_type
    hook = None
    try:
        _write(table, static)
        module.rope_type = _with_type(saved_type, table.layer_type, "default")
        if isinstance(target, RopeSpec) and target.rope_type in _LENGTH_DEPENDENT:
            hook = module.register_forward_pre_hook(_length_hook(table, target), with_kwargs=True)
        yield
    finally:
        if hook is not None:
            hook.remove()
        module.rope_type = saved_type
        setattr(module, f"{prefix}attention_scaling", saved_scaling)
        with torch.no_grad():
            for name, values in saved_buffers.items():
                getattr(module, f"{prefix}{name}").copy_(values)


def _write(table: RotaryTable, current: Spectrum) -> None:
    with torch.no_grad():
        for name in ("inv_freq", "original_inv_freq"):
            buffer = getattr(table.module, f"{table.prefix}{name}")
            buffer.copy_(torch.from_numpy(np.asarray(current.inv_freq, dtype=np.float64)).to(buffer.dtype))
    setattr(table.module, f"{table.prefix}attention_scaling", float(current.attention_factor))


def _with_type(rope_type: Any, layer_type: str | None, value: str) -> Any:
    return value if layer_type is None else {**rope_type, layer_type: value}


def _length_hook(table: RotaryTable, spec: RopeSpec) -> Callable[[nn.Module, tuple, dict], None]:
    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        position_ids = kwargs.get("position_ids", args[1] if len(args) > 1 else None)
        layer_type = kwargs.get("layer_type", args[2] if len(args) > 2 else None)
        if position_ids is not None and layer_type == table.layer_type:
            _write(table, spectrum(spec, seq_len=int(position_ids.max()) + 1))

    return hook
