"""Run the real ``ropescope`` command in a subprocess, as a user would."""

from __future__ import annotations

import subprocess
import sys
from typing import Any


def run_cli(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ropescope", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def assert_input_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit code 2, one line on stderr naming the problem, no traceback, nothing on stdout."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def run_main(monkeypatch: Any, *args: str) -> int:
    """Run ``ropescope ARGS`` in this process (``monkeypatch`` sets ``sys.argv``); its exit code."""
    from ropescope.cli import main

    monkeypatch.setattr(sys, "argv", ["ropescope", *args])
    try:
        main()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0
