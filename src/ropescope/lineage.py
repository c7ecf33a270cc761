"""A model's training lineage: the RoPE settings and context length of each training stage, oldest first.

The break-point predictor (:mod:`ropescope.predict`) needs to know which rotation angles each rotary pair saw
in training, and a config.json tells only the last spectrum. A stage is a context length and the RoPE
parameters it was trained with (``rope_parameters`` in transformers v5 form: ``rope_type``, ``rope_theta`` and
the scaling keys), or ``None`` for "the parameters of the config itself". Examples:

* Llama-2: one stage, 4096 tokens with its own config;
* CodeLlama (arXiv 2308.12950): Llama 2's pretraining (base 10⁴, 4096 tokens), then 16,384 tokens at base 10⁶;
* Llama 3.1 (arXiv 2407.21783): base 5·10⁵ at 8192 tokens, then 128K with its llama3 scaling.

A lineage comes from one of four places, recorded in ``origin``: the embedded catalog (sourced facts), the
user (``--trained-context N``, ``--pretrained BASE@N``), a ``ropescope_lineage`` key in the config (written by
``ropescope audit --emit-config``), or an assumption made from the config alone (then reported as a finding).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ropescope.errors import RopescopeInputError

CONFIG_KEY = "ropescope_lineage"
ORIGINS = ("catalog", "user", "config", "assumed")


@dataclass(frozen=True)
class Stage:
    """One training stage: ``context`` tokens with ``rope`` parameters (``None``: those of the config)."""

    context: int
    rope: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"context": self.context, "rope_parameters": None if self.rope is None else dict(self.rope)}


@dataclass(frozen=True)
class Lineage:
    """Training stages, oldest first; the last one is the last training stage."""

    stages: tuple[Stage, ...]
    origin: str
    sources: tuple[str, ...] = ()

    @property
    def trained_context(self) -> int:
        """Context length of the last training stage."""
        return self.stages[-1].context

    def to_dict(self) -> dict[str, Any]:
        return {
            "trained_context": self.trained_context,
            "stages": [stage.to_dict() for stage in self.stages],
            "origin": self.origin,
            "sources": list(self.sources),
        }


def plain_stage(base: float, context: int) -> Stage:
    """A stage trained with unscaled RoPE of ``base`` on ``context`` tokens."""
    return Stage(context, MappingProxyType({"rope_type": "default", "rope_theta": float(base)}))


def _positive_context(what: str, value: Any, fix: str) -> int:
    whole = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not whole or value <= 0 or value != int(value):
        raise RopescopeInputError(what, f"must be a positive whole number of tokens, got {value!r}", fix)
    return int(value)


def check_base(what: str, value: Any, fix: str) -> float:
    """A RoPE base: a finite number above 1."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 1:
        raise RopescopeInputError(what, f"must be a RoPE base above 1, got {value!r}", fix)
    return float(value)


def from_facts(
    trained_context: int, pretrained: tuple[float, int] | None, origin: str, sources: Sequence[str] = ()
) -> Lineage:
    """The lineage "pretrained with plain RoPE ``base`` at ``context``, last trained at ``trained_context``".

    ``pretrained`` is ``None`` when the config's RoPE settings were used throughout.
    """
    trained = _positive_context("trained context", trained_context, "e.g. --trained-context 4096")
    stages: list[Stage] = []
    if pretrained is not None:
        base, context = pretrained
        base = check_base("pretrained base", base, "write --pretrained BASE@N, e.g. --pretrained 10000@4096")
        context = _positive_context("pretrained context", context, "write --pretrained BASE@N, e.g. 10000@4096")
        if context > trained:
            raise RopescopeInputError(
                "--pretrained",
                f"pretraining context {context:,} exceeds the last training context {trained:,}",
                "the last training stage is the longest: raise --trained-context or lower the pretraining context",
            )
        stages.append(plain_stage(base, context))
    stages.append(Stage(trained))
    return Lineage(tuple(stages), origin, tuple(sources))


def from_catalog(record: Mapping[str, Any], source: str) -> Lineage:
    """The lineage of a catalog entry: ``{"trained_context": N, "pretrained": {"base": B, "context": T} | null}``."""
    pretrained = record.get("pretrained")
    facts = None if pretrained is None else (pretrained["base"], pretrained["context"])
    return from_facts(record["trained_context"], facts, "catalog", [source, *record.get("sources", ())])


def from_config_key(value: Any, source: str) -> Lineage:
    """The lineage stored in a config's ``ropescope_lineage`` key (as written by ``--emit-config``)."""
    where = f"{source}: {CONFIG_KEY}"
    fix = 'write {"stages": [{"context": N, "rope_parameters": {...} or null}, ...]} or remove the key'
    stages = value.get("stages") if isinstance(value, Mapping) else None
    if not isinstance(stages, list) or not stages:
        raise RopescopeInputError(where, "has no list of stages", fix)
    out = []
    for index, stage in enumerate(stages):
        if not isinstance(stage, Mapping):
            raise RopescopeInputError(f"{where}.stages[{index}]", "is not an object", fix)
        context = _positive_context(f"{where}.stages[{index}].context", stage.get("context"), fix)
        rope = stage.get("rope_parameters")
        if rope is not None and not isinstance(rope, Mapping):
            raise RopescopeInputError(f"{where}.stages[{index}].rope_parameters", "is not an object or null", fix)
        out.append(Stage(context, None if rope is None else MappingProxyType(dict(rope))))
    contexts = [stage.context for stage in out]
    if max(contexts) != contexts[-1]:
        raise RopescopeInputError(where, f"has stage contexts {contexts}: the last stage must be the longest", fix)
    return Lineage(tuple(out), "config", tuple(value.get("sources", ())))
