"""What ``ropescope report`` reads: a small registry of loaders, each keyed by what a file or folder holds.

A loader names its kind (the report's section), the file that marks a result folder (``results.json`` of
``ropescope probe`` and of ``ropescope compress``, ``summary.json`` of ``ropescope lab run``; none for a JSON file
given directly, such as ``ropescope audit --json``), the schema versions it reads and how it recognises its
document. A new kind of
result (compression, bias) registers one more :class:`Loader`, a section builder in
``ropescope.report.page.SECTIONS`` and its template. A folder holding no
known result but whose direct subfolders do stands for those subfolders (``runs/``). Anything else, or a schema
version this ropescope does not read, is one input error naming the path and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ropescope.errors import RopescopeInputError


@dataclass(frozen=True)
class Loader:
    """One kind of result: ``marker`` is the file inside its folder (``None``: a JSON file given directly)."""

    kind: str
    marker: str | None
    versions: tuple[int | None, ...]
    holds: Callable[[Any], bool]
    made_by: str  # the command that writes it, for error messages


@dataclass(frozen=True)
class Source:
    """One input of the report: its kind, where it is, its parsed document and when it was made."""

    kind: str
    path: Path
    file: Path
    document: Any
    created: str  # "YYYY-MM-DD HH:MM UTC", from the document's ``created`` or else the file's modification time
    created_from: str  # "document" or "file time"


def _is_audit(document: Any) -> bool:
    items = document if isinstance(document, list) else [document]
    return bool(items) and all(
        isinstance(item, dict) and {"model", "context", "predicted_break", "verdict"} <= item.keys() for item in items
    )


def _is_probe(document: Any) -> bool:
    return isinstance(document, dict) and {"metrics", "spectrum", "settings", "model"} <= document.keys()


def _is_compress(document: Any) -> bool:
    return isinstance(document, dict) and {"results", "prompts", "settings", "model"} <= document.keys()


def _is_lab(document: Any) -> bool:
    return isinstance(document, dict) and {"spec", "runs"} <= document.keys()


def _is_bias(document: Any) -> bool:
    return isinstance(document, dict) and {"rows", "settings", "model", "definitions"} <= document.keys()


LOADERS: list[Loader] = [
    Loader("audit", None, (None,), _is_audit, "`ropescope audit ... --json > FILE.json`"),
    Loader("probe", "results.json", (1,), _is_probe, "`ropescope probe MODEL --context L --out DIR`"),
    Loader("lab", "summary.json", (1,), _is_lab, "`ropescope lab run SPEC --out DIR`"),
    Loader("compress", "results.json", (1,), _is_compress, "`ropescope compress MODEL --context N --out DIR`"),
    Loader("bias", "results.json", (1,), _is_bias, "`ropescope bias MODEL --out DIR`"),
]
KINDS = ("audit", "probe", "lab", "compress", "bias")  # the report's sections, in the order of the flow


def register(loader: Loader) -> None:
    """Add a kind of result; its section builder goes in ``ropescope.report.page.SECTIONS``."""
    if loader.kind not in KINDS:
        raise ValueError(f"unknown section {loader.kind!r}; the report's sections are {', '.join(KINDS)}")
    LOADERS.append(loader)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RopescopeInputError(str(path), f"cannot be read ({error.strerror})", "check the path") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise RopescopeInputError(str(path), f"is not JSON ({error})", "give a file ropescope wrote") from None


def _created(document: Any, file: Path) -> tuple[str, str]:
    stamp = document.get("created") if isinstance(document, dict) else None
    if isinstance(stamp, str):
        try:
            moment = datetime.fromisoformat(stamp)
        except ValueError:
            moment = None
        if moment is not None:
            return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"), "document"
    moment = datetime.fromtimestamp(file.stat().st_mtime, UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC"), "file time"


def _check(loader: Loader, file: Path, document: Any) -> Source:
    version = document.get("schema_version") if isinstance(document, dict) else None
    if version not in loader.versions:
        readable = ", ".join(str(v) for v in loader.versions)
        raise RopescopeInputError(
            str(file),
            f"has {loader.kind} schema version {version!r}; this ropescope reads {readable}",
            f"rerun {loader.made_by} with this ropescope, or use the ropescope that wrote it",
        )
    created, origin = _created(document, file)
    return Source(loader.kind, file if loader.marker is None else file.parent, file, document, created, origin)


def _from_folder(folder: Path) -> Source | None:
    """The result in ``folder``: the first loader whose marker file is there and holds its kind of document."""
    for marker in dict.fromkeys(loader.marker for loader in LOADERS if loader.marker is not None):
        file = folder / marker
        if not file.is_file():
            continue
        document = _read_json(file)
        candidates = [loader for loader in LOADERS if loader.marker == marker]
        for loader in candidates:
            if loader.holds(document):
                return _check(loader, file, document)
        kinds = " or ".join(loader.kind for loader in candidates)
        made_by = " or ".join(loader.made_by for loader in candidates)
        raise RopescopeInputError(str(file), f"is not a {kinds} result", f"give a folder written by {made_by}")
    return None


def load_source(path: Path) -> list[Source]:
    """The results at ``path``: a JSON file, a result folder, or a folder of result folders (sorted by name)."""
    markers = ", ".join(loader.marker for loader in LOADERS if loader.marker)
    if path.is_file():
        document = _read_json(path)
        for loader in LOADERS:
            if loader.marker in (None, path.name) and loader.holds(document):
                return [_check(loader, path, document)]
        raise RopescopeInputError(
            str(path),
            "is no result ropescope knows (audit JSON, or a folder's " + markers + ")",
            "give `ropescope audit --json` output or a result folder",
        )
    if not path.is_dir():
        raise RopescopeInputError(str(path), "no such file or folder", "give result files or folders")
    found = _from_folder(path)
    if found is not None:
        return [found]
    inside = [source for child in sorted(path.iterdir()) if child.is_dir() and (source := _from_folder(child))]
    if not inside:
        raise RopescopeInputError(
            str(path), f"holds no results (no {markers}, nor subfolders with one)", "give a folder a command wrote"
        )
    return inside


def load_sources(paths: list[Path]) -> list[Source]:
    """Every input, in the order of the flow (audit, probe, lab, ...), keeping the given order within a kind."""
    if not paths:
        raise RopescopeInputError("RESULTS", "none given", "name audit JSON files and result folders")
    sources = [source for path in paths for source in load_source(path)]
    return sorted(sources, key=lambda source: KINDS.index(source.kind))
