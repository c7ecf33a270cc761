"""The README's Python snippets run as written, in order, in one namespace (the stand-ins they need are in the
README itself)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"

pytestmark = [pytest.mark.torch, pytest.mark.hf]


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_readme_has_python_snippets() -> None:
    assert len(snippets()) >= 3


def test_readme_python_snippets_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a snippet writes its stand-in config file here
    namespace: dict[str, object] = {}
    for index, code in enumerate(snippets()):
        exec(compile(code, f"README.md python snippet {index + 1}", "exec"), namespace)
    assert {"hf_model", "input_ids", "decoder", "token_ids", "results"} <= namespace.keys()
