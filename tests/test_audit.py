"""ropescope.audit and the ``audit``/``bounds``/``calibrate`` commands.

Every number is checked against a closed form worked here (b_eff of plain, YaRN and dynamic spectra, the Liu
2026 limits), a published value (Men min B = −8.36 for LLaMA-2 at 4K, d_extra = 92), or a naive computation.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from cli_helpers import assert_input_error, run_cli
from ropescope import bounds
from ropescope.audit import SENSITIVITY_EPS, VERDICTS, audit, audit_catalog
from ropescope.catalog import entries
from ropescope.config import load_spec

PLAIN = {"rope_theta": 10000.0, "head_dim": 128, "num_hidden_layers": 32, "max_position_embeddings": 4096}
BOUND_NAMES = {"aliasing", "dc_stability", "depth_stability", "precision_wall", "men2024", "critical_dimension"}


def test_llama2_report_against_hand_values() -> None:
    report = audit(load_spec("meta-llama/Llama-2-7b-hf"), 4096)
    b_eff = 1e4 ** (126 / 128)
    assert report.effective_base == pytest.approx(b_eff, rel=1e-12)
    assert report.check("aliasing").limit == pytest.approx(4096 / (2 * math.pi), rel=1e-12)
    assert report.check("aliasing", "paper").value == 1e4
    assert report.check("aliasing").value == pytest.approx(b_eff, rel=1e-12)
    depth = report.check("depth_stability")
    assert depth.limit == pytest.approx(4096 / math.acos(0.5 ** (1 / 32)), rel=1e-12)
    assert not depth.satisfied  # 8660 < 19750
    men = report.check("men2024")
    assert round(men.detail["min_b"], 2) == -8.36  # rope_theory.md §2.3
    assert men.limit == pytest.approx(26_953, rel=1e-4)  # the L = 4K minimum (test_bounds pins the table)
    critical = report.check("critical_dimension", "paper")
    assert critical.detail["critical_dim"] == 92
    assert critical.limit == pytest.approx(2 * math.pi * 1e4 ** (92 / 128), rel=1e-12)
    assert report.bounds_verdict == "at_risk"  # the Men condition fails at its own training length
    assert report.verdict == "ok" and report.fix is None  # the predicted break is its training context, 4096
    assert report.trained_context == 4096
    assert set(report.sensitivity) == set(SENSITIVITY_EPS)
    assert [f.code for f in report.findings] == ["default-base"]


def test_exact_form_uses_the_yarn_spectrum_at_context() -> None:
    config = {
        **PLAIN,
        "head_dim": 64,
        "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096},
        "max_position_embeddings": 16384,
    }
    report = audit(load_spec(config), 16384, search_men_base=False)
    # the slowest pair lies in YaRN's interpolated band: ω_min = 1e4^(−62/64)/4.
    assert report.effective_base == pytest.approx(4 * 1e4 ** (62 / 64), rel=1e-12)
    assert report.check("aliasing", "paper").value == 1e4
    assert report.check("aliasing").value == pytest.approx(4 * 1e4 ** (62 / 64), rel=1e-12)


def test_exact_form_evaluates_dynamic_ntk_at_context() -> None:
    config = {**PLAIN, "head_dim": 64, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}
    report = audit(load_spec(config), 8192, search_men_base=False)
    # base' = b·(s·L/L_max − (s−1))^(d/(d−2)) = b·3^(64/62), so b_eff = base'^(62/64) = 3·b^(62/64).
    assert report.effective_base == pytest.approx(3 * 1e4 ** (62 / 64), rel=1e-12)


def test_men_check_matches_naive_sum_on_used_spectrum() -> None:
    from ropescope.spectrum import spectrum

    spec = load_spec("meta-llama/Llama-3.1-8B")
    report = audit(spec, 20_000, search_men_base=False)
    inv_freq = spectrum(spec, seq_len=20_000).inv_freq
    naive = np.cos(np.arange(20_000)[:, None] * inv_freq[None, :]).sum(axis=1)
    men = report.check("men2024")
    assert men.detail["min_b"] == pytest.approx(naive.min(), abs=1e-9)
    assert men.detail["argmin"] == int(naive.argmin())
    assert men.satisfied == (naive.min() >= 0)


@pytest.mark.parametrize(
    ("config", "context", "dtype", "verdict", "violated"),
    [
        (PLAIN, 100_000, "fp32", "fail", "aliasing"),  # 100000 > 2π·8660 = 54410
        (PLAIN, 300, "bf16", "fail", "precision_wall"),  # bf16 positions collapse at 256
        ({**PLAIN, "rope_theta": 5e5, "max_position_embeddings": 8192}, 8192, "fp32", "ok", None),
        (PLAIN, 4096, "fp32", "at_risk", "men2024"),
    ],
)
def test_bounds_verdict_rules(config: dict, context: int, dtype: str, verdict: str, violated: str | None) -> None:
    report = audit(load_spec(config), context, dtype, search_men_base=False)
    assert report.bounds_verdict == verdict
    if violated is not None:
        assert not report.check(violated).satisfied


def test_precision_wall_exact_form_is_the_kernel_simulation() -> None:
    report = audit(load_spec(PLAIN), 300, "bf16", search_men_base=False)
    wall = report.check("precision_wall")
    assert wall.detail["first_collapse"] <= 256
    assert wall.detail["largest_exact_position"] == 256
    assert report.check("precision_wall", "paper").limit == 128
    fp32 = audit(load_spec(PLAIN), 300, "fp32", search_men_base=False).check("precision_wall")
    assert fp32.satisfied and fp32.detail["first_collapse"] is None


def test_sensitivity_follows_eps() -> None:
    # b_eff = 8660 at L = 4096, N = 1: DC bound L/arccos ε is 1779 (ε=0.1), 3911 (0.5), 9083 (0.9).
    config = {**PLAIN, "num_hidden_layers": 1}
    report = audit(load_spec(config), 4096, search_men_base=False)
    assert report.check("dc_stability").satisfied
    assert not audit(load_spec(config), 4096, eps=0.9, search_men_base=False).check("dc_stability").satisfied
    assert report.sensitivity[0.9] == "at_risk"


def test_verdict_and_fix_come_from_the_predicted_break() -> None:
    report = audit(load_spec(PLAIN), 16384, search_men_base=False)
    assert report.prediction.low == 4096 and report.verdict == "fail"
    assert report.fix is not None and report.fix.kind == "rescale"
    assert report.fix.rope_parameters["factor"] == 4  # YaRN ×4 over 4096 reaches 16,384
    assert report.fix.predicted.low >= 16384


def test_json_document_has_the_documented_keys() -> None:
    document = audit(load_spec("meta-llama/Llama-2-7b-hf"), 4096).to_dict()
    text = json.dumps(document, allow_nan=False)
    assert json.loads(text) == document
    for key in ("context", "dtype", "eps", "layers", "rotary_dim", "base", "effective_base", "bounds", "zone"):
        assert key in document
    assert {b["name"] for b in document["bounds"]} == BOUND_NAMES
    for bound in document["bounds"]:
        assert bound["form"] in ("paper", "exact", None)
        assert bound["kind"] in ("lower", "upper")
        assert isinstance(bound["satisfied"], bool) and "limit" in bound
    assert set(document["zone"]) >= {"min_base", "max_base"}
    assert document["verdict"] in VERDICTS and document["bounds_verdict"] in VERDICTS
    assert document["findings"][0]["code"] == "default-base"
    assert document["trained_context"] == 4096
    assert set(document["predicted_break"]) >= {"context", "low", "high", "mechanism"}
    assert document["fix"] is None


def test_catalog_audit_covers_every_model() -> None:
    rows = audit_catalog()
    assert [model for model, _ in rows] == [entry.id for entry in entries()]
    advertised = {entry.id: entry.advertised_context for entry in entries()}
    for model, report in rows:
        assert report.context == advertised[model]
        assert report.verdict in VERDICTS


@pytest.mark.parametrize(
    ("call", "what"),
    [
        (lambda: audit(load_spec(PLAIN), 0), "context"),
        (lambda: audit(load_spec(PLAIN), 4096, "fp8"), "dtype"),
        (lambda: audit(load_spec(PLAIN), 4096, eps=1.0), "eps"),
    ],
)
def test_audit_bad_input(call, what: str) -> None:  # type: ignore[no-untyped-def]
    from ropescope.errors import RopescopeInputError

    with pytest.raises(RopescopeInputError) as error:
        call()
    assert error.value.what == what


# ------------------------------------------------------------------ CLI


def test_cli_catalog_table() -> None:
    result = run_cli("audit")
    assert result.returncode == 0, result.stderr
    for entry in entries():
        assert entry.id.split("/")[-1][:12] in result.stdout
    assert "predicted break" in result.stdout and "mechanism" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 100


def test_cli_catalog_at_one_context_json() -> None:
    result = run_cli("audit", "--context", "2048", "--json")
    assert result.returncode == 0, result.stderr
    documents = json.loads(result.stdout)
    assert len(documents) == len(entries()) and {d["context"] for d in documents} == {2048}


def test_cli_audit_json() -> None:
    result = run_cli("audit", "Llama-2-7b-hf", "--context", "4K", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["context"] == 4096 and document["verdict"] == "ok" and document["bounds_verdict"] == "at_risk"
    assert document["predicted_break"]["context"] == 4096 and document["trained_context"] == 4096
    assert {b["name"] for b in document["bounds"]} == BOUND_NAMES


def test_cli_bounds_json() -> None:
    result = run_cli("bounds", "--rotary-dim", "128", "--layers", "32", "--context", "4096", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["zone"]["min_base"] == pytest.approx(26_953, rel=1e-4)  # Men dominates at 4K
    assert set(document["sensitivity"]) == {"0.1", "0.5", "0.9"}


def test_cli_plot_writes_png(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "zone.png"
    result = run_cli("audit", "TinyLlama-1.1B-intermediate-step-1431k-3T", "--context", "2048", "--plot", str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_tables() -> None:
    single = run_cli("audit", "Llama-2-7b-hf", "--context", "4096")
    assert single.returncode == 0, single.stderr
    assert "Verdict at 4,096 tokens: ok" in single.stdout and "ε=0.9: at_risk" in single.stdout
    assert "Predicted break: 4,096 tokens (interval 4,096–8,378)" in single.stdout
    assert "min B = -8.36" in single.stdout and "4,060" in single.stdout
    design = run_cli("bounds", "--rotary-dim", "128", "--layers", "32", "--context", "4096")
    assert design.returncode == 0, design.stderr
    assert "Goldilocks zone: 26,952 ≤ base < 10,804,128" in design.stdout
    table = run_cli("calibrate")
    assert table.returncode == 0, table.stderr
    assert "predicted break" in table.stdout and "baseline: L ≤ trained" in table.stdout and "ε=0.9" in table.stdout
    for text in (single.stdout, design.stdout, table.stdout):
        assert max(len(line) for line in text.splitlines()) <= 100


def test_cli_bounds_plot(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "design.png"
    result = run_cli("bounds", "--rotary-dim", "64", "--layers", "8", "--context", "2K", "--plot", str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_calibrate_runs() -> None:
    result = run_cli("calibrate", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["scored_observations"] > 0 and document["scores"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("audit", "Llama-2-7b-hf", "--context", "0"), ("--context", "8192, 128K or 1M")),
        (("audit", "Llama-2-7b-hf", "--context", "4.5k"), ("--context",)),
        (("audit", "Llama-2-7b-hf", "--context", "-4096"), ("--context",)),
        (("audit", "Llama-2-7b-hf"), ("--context", "required")),
        (("audit", "Llama-2-7b-hf", "--context", "4096", "--dtype", "fp8"), ("--dtype", "fp32")),
        (("audit", "Llama-2-7b-hf", "--context", "4096", "--eps", "0"), ("--eps",)),
        (("audit", "Llama-2-7b-hf", "--context", "4096", "--eps", "1.5"), ("--eps",)),
        (("audit", "Llama-2-7b-hf", "--context", "4096", "--eps", "half"), ("--eps", "number")),
        (("audit", "Llama-2-7b-hff", "--context", "4096"), ("did you mean",)),
        (("bounds", "--rotary-dim", "127", "--layers", "32", "--context", "4096"), ("--rotary-dim",)),
        (("bounds", "--rotary-dim", "128", "--layers", "0", "--context", "4096"), ("--layers",)),
        (("calibrate", "--dtype", "int8"), ("--dtype",)),
    ],
)
def test_cli_bad_input_one_line_exit_2(args: tuple[str, ...], fragments: tuple[str, ...]) -> None:
    assert_input_error(run_cli(*args), *fragments)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["audit", "Llama-2-7b-hf", "--context", "4K", "--plot", "{tmp}/missing/zone.png"], "does not exist"),
        (["audit", "--plot", "{tmp}/zone.txt"], "extension"),
        (["bounds", "--rotary-dim", "64", "--layers", "2", "--context", "4K", "--plot", "{tmp}/z"], "extension"),
        (["audit", "Llama-2-7b-hf", "--context", "4K", "--plot", "/sys/zone.png"], "cannot be written"),
    ],
)
def test_bad_plot_paths_fail_before_any_output(tmp_path, args: list[str], fragment: str) -> None:
    assert_input_error(run_cli(*[a.format(tmp=tmp_path) for a in args]), "--plot", fragment)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("config", "context", "verdict", "mechanism"),
    [
        ({"model_type": "gpt2", "n_embd": 768, "n_head": 12, "n_positions": 1024}, 2048, "fail", "learned_table"),
        ({"model_type": "gpt2", "n_embd": 768, "n_head": 12, "n_positions": 1024}, 1024, "ok", "learned_table"),
        ({"model_type": "bloom", "hidden_size": 1024, "n_head": 16}, 100_000, "ok", "no_rope_limit"),
    ],
)
def test_models_without_rope_are_audited_by_their_scheme(tmp_path, config, context, verdict, mechanism) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = run_cli("audit", str(path), "--context", str(context), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["verdict"] == verdict and document["predicted_break"]["mechanism"] == mechanism


def test_men_search_reports_progress() -> None:
    seen: list[tuple[float, int]] = []
    audit(load_spec(PLAIN), 8192, progress=lambda base, checks: seen.append((base, checks)))
    assert seen and all(b2 >= b1 for (b1, _), (b2, _) in itertools.pairwise(seen))


@pytest.mark.parametrize("width", [80, 100, 200])
def test_catalog_table_fits_the_terminal_without_cutting_numbers(width: int) -> None:
    from io import StringIO

    from rich.console import Console

    from ropescope.report.audit_view import render_audit_catalog

    out = StringIO()
    render_audit_catalog(Console(file=out, width=width), audit_catalog(), "fp32", 0.5)
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width
    row = next(line for line in lines if "Qwen2.5-7B-Instruct-1M" in line)
    assert "903,878–1,848,970" in row and "1,010,000" in row


def test_design_mode_recommends_the_largest_reliable_floor_and_the_fix() -> None:
    from ropescope.audit import RELIABLE_FALSE_ALARMS, design
    from ropescope.calibrate import shipped_rates

    rates = shipped_rates()
    zone = bounds.goldilocks_zone(128, 32, 1 << 20, "fp32", 0.5, search_men_base=False)
    at_target = design(zone, 1 << 20, rates)
    reliable = {
        name: base
        for name, base in zone.lower.items()
        if rates.false_alarm_share(name, "exact", 0.5) <= RELIABLE_FALSE_ALARMS
    }
    assert at_target.floor == max(reliable.values())
    assert at_target.base >= at_target.floor and float(f"{at_target.base:.2g}") == at_target.base
    assert at_target.prediction.low == 1 << 20 and at_target.fix is None  # trained at the target
    short = design(zone, 8192, rates)  # trained at 8K for a 1M target: YaRN over the training context
    assert short.prediction.low == 8192
    assert short.fix is not None and short.fix.rope_parameters["factor"] == 128
    assert short.small_base == pytest.approx((8192 / math.pi) ** (128 / 126))
