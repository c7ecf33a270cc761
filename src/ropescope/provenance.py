"""Which code made a result: the SHA-256 of ropescope's own Python sources (each file's path inside the package and
its bytes, in path order). Resumable runs keep it in their resume key, so a run resumed after the code changed is
refused rather than mixing numbers from two versions of the code — a version number alone would not see an edit.
:func:`other_run` is that refusal, one for every resumable command."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from ropescope.errors import RopescopeInputError


@functools.cache
def code_sha256() -> str:
    """The fingerprint of the ``ropescope`` package this process imported."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def other_run(made_with: str) -> RopescopeInputError:
    """The refusal of a resumable run's previous results that were ``made_with`` something else (another model
    file, text, settings or code): resuming would mix two runs' numbers."""
    return RopescopeInputError(
        "previous results",
        f"were made with another {made_with}; resuming would mix two runs",
        "choose another --out, or delete its results.json to start afresh",
    )
