"""The embedded catalog of real models' positional settings.

``data/catalog.json`` holds, per model, its positional settings as published in its ``config.json`` (read by the
same normaliser as any user file), its advertised context, notes on its known long-context behaviour, the
sources of every value, and ``observations``: contexts at which the model is known to work or to fail, each with
its source. The observations are what ``ropescope calibrate`` scores the bounds against.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from ropescope.errors import RopescopeInputError
from ropescope.lineage import Lineage, from_catalog


@dataclass(frozen=True)
class Observation:
    """A context at which a model is known to work (``works``) or to fail, under ``setting``, by ``measure``:
    ``perplexity`` (perplexity or per-position loss), ``retrieval`` (needle, passkey), ``task`` (task scores such
    as RULER's, which also fall for reasons other than position), ``claim`` (a context stated by the authors) or
    ``lab`` (per-position loss of a model the lab trained)."""

    context: int
    works: bool
    setting: str
    measure: str
    note: str
    source: str


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    config: dict[str, Any]
    advertised_context: int
    advertised_context_text: str
    long_context_notes: str
    sources: tuple[str, ...]
    confidence: dict[str, str]
    observations: tuple[Observation, ...]
    lineage: Lineage | None = None


@cache
def entries() -> tuple[CatalogEntry, ...]:
    """Every catalog entry, in catalog order."""
    return _read("data/catalog.json")


@cache
def lab_entries() -> tuple[CatalogEntry, ...]:
    """Models trained by ``ropescope lab run bases`` and their measured breaks (``data/lab_observations.json``,
    written by ``tools/build_lab_observations.py`` from a sweep's summary; each names its run and seed)."""
    return _read("data/lab_observations.json")


def _read(name: str) -> tuple[CatalogEntry, ...]:
    raw = json.loads(resources.files("ropescope").joinpath(name).read_text(encoding="utf-8"))
    return tuple(
        CatalogEntry(
            id=item["id"],
            config=item["config"],
            advertised_context=int(item["advertised_context"]),
            advertised_context_text=item.get("advertised_context_text", ""),
            long_context_notes=item.get("long_context_notes", ""),
            sources=tuple(item.get("sources", ())),
            confidence=item.get("confidence", {}),
            observations=tuple(Observation(**obs) for obs in item.get("observations", ())),
            lineage=from_catalog(item["lineage"], f"catalog: {item['id']}") if item.get("lineage") else None,
        )
        for item in raw["models"]
    )


def get_entry(model_id: str) -> CatalogEntry:
    """The entry for ``model_id``, with or without its organisation, any case; an unknown id gets a did-you-mean."""
    wanted = model_id.lower()
    matches = [e for e in entries() if wanted in (e.id.lower(), e.id.lower().split("/")[-1])]
    if len(matches) == 1:
        return matches[0]
    ids = [entry.id for entry in entries()]
    close = difflib.get_close_matches(model_id, ids, n=3, cutoff=0.5) or difflib.get_close_matches(
        model_id.split("/")[-1], [i.split("/")[-1] for i in ids], n=3, cutoff=0.5
    )
    hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else "run `ropescope catalog` for the ids"
    raise RopescopeInputError(model_id, "is neither a file nor a catalog id", hint)
