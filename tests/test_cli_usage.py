"""Typer's usage errors come out as one line and exit 2, like ropescope's own input errors."""

from __future__ import annotations

import pytest

from cli_helpers import assert_input_error, run_cli


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["audit", "--nonsense"], ["ropescope audit: No such option: --nonsense", "ropescope audit --help"]),
        (["nosuch"], ["No such command 'nosuch'", "ropescope --help"]),
        (["compress"], ["ropescope compress: Missing argument", "ropescope compress --help"]),
        (["bounds", "Llama-2-7b-hf", "--context"], ["--context", "requires an argument"]),
    ],
)
def test_usage_errors_are_one_line(args: list[str], fragments: list[str]) -> None:
    assert_input_error(run_cli(*args), *fragments)


def test_help_still_prints_and_exits_0() -> None:
    result = run_cli("audit", "--help")
    assert result.returncode == 0 and "Usage" in result.stdout and result.stderr == ""
