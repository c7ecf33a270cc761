"""The code fingerprint against hashlib over the package's files, worked here independently, and its reaction to
an edit (a copy of the package with one byte changed)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import ropescope
from ropescope.provenance import code_sha256

PACKAGE = Path(ropescope.__file__).parent


def _by_hand(root: Path) -> str:
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    joined = b"".join(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() for p in files)
    return hashlib.sha256(joined).hexdigest()


def test_fingerprint_is_the_hash_of_the_sources() -> None:
    assert code_sha256() == _by_hand(PACKAGE) and len(code_sha256()) == 64


def test_an_edit_changes_the_fingerprint(tmp_path: Path) -> None:
    copy = tmp_path / "ropescope"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    command = [sys.executable, "-c", "from ropescope.provenance import code_sha256; print(code_sha256())"]
    same = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    with (copy / "spectrum.py").open("a") as file:
        file.write("\n# an edit\n")
    edited = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    assert same == code_sha256() != edited == _by_hand(copy)
