"""Writing result files so that a reader, or an interrupted run, never sees half a file."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from ropescope.errors import RopescopeInputError


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """``write(temporary)`` then a rename onto ``path``; an OS error (or an interrupt) leaves ``path`` as it was,
    and an OS error is one input error."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as error:
        raise RopescopeInputError(
            str(path), f"cannot be written ({error.strerror})", "choose a writable path"
        ) from None
    finally:  # also after an interrupt: no half-written temporary is left behind
        temporary.unlink(missing_ok=True)
    return path


def write_text_atomically(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    return write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_json_atomically(path: Path, document: object, indent: int | None = 2) -> Path:
    """``document`` as JSON (no NaN or infinity) at ``path``, atomically."""
    return write_text_atomically(path, json.dumps(document, indent=indent, allow_nan=False) + "\n")
