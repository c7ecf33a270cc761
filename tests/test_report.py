"""``ropescope report``: one offline HTML page of audit JSON, probe and lab folders, checked as text and in Chromium.

The inputs are real: the catalog audit and one single-model audit made here, a probe of a small reference decoder
run here, and three result folders kept in tests/data/report (the SmolLM2 16K loss probe and the lab's ``bases`` and
``kazemnejad`` sweeps, as ropescope wrote them). The browser test opens the page in the system's headless Chromium
through playwright and checks what a reader would see: no console error, no request (failed or not) beyond the
page itself, every image decoded, and the inputs' key numbers in the DOM.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import assert_input_error, run_cli
from conftest import chromium_path
from ropescope import bounds
from ropescope.audit import audit, audit_catalog
from ropescope.config import load_spec

pytest.importorskip("jinja2")
from ropescope.report.page import audit_zone_figure, render_report, write_report

DATA = Path(__file__).parent / "data" / "report"
LIMIT_BYTES = 2_000_000


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Audit JSON (catalog and Llama-2-7b at 16K), a decoder probe folder, and the stored result folders."""
    torch = pytest.importorskip("torch")
    from ropescope.model import Decoder, DecoderConfig
    from ropescope.probes.models import wrap_decoder
    from ropescope.probes.run import ProbeRun, ProbeSettings
    from ropescope.report.probe_view import write_results

    folder = tmp_path_factory.mktemp("inputs")
    catalog = folder / "catalog.json"
    catalog.write_text(json.dumps([report.to_dict() for _, report in audit_catalog()]))
    single = folder / "llama2.json"
    single.write_text(json.dumps(audit(load_spec("meta-llama/Llama-2-7b-hf"), 16384).to_dict()))
    torch.manual_seed(0)
    decoder = Decoder(DecoderConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4, encoding="rope"))
    settings = ProbeSettings(context=96, metrics=("entropy", "sinks", "distance", "loss"))
    ids = torch.randint(0, 64, (96,)).tolist()
    probe = folder / "decoder-probe"
    ProbeRun(wrap_decoder(decoder), ids, settings, lambda results: write_results(probe, results)).run()
    return [catalog, single, probe, DATA / "smollm2-16k", DATA / "bases", DATA / "kazemnejad", _compressed(folder)]


def _compressed(folder: Path) -> Path:
    """A compress run of every press on a tiny random Llama with the byte tokenizer."""
    from ropescope.presses.evaluate import CompressRun, CompressSettings
    from ropescope.probes.models import load_model
    from ropescope.report.probe_view import write_results
    from test_probe_model import SAMPLE_TEXT, save_tiny_model

    loaded = load_model(save_tiny_model(folder / "tiny-llama"))
    ids = list(loaded.tokenizer(SAMPLE_TEXT, add_special_tokens=True)["input_ids"])
    settings = CompressSettings(context=400, ratios=(0.25, 0.5), depths=(0.5,), trials=1, loss_tokens=32)
    out = folder / "compress"
    out.mkdir()
    CompressRun(loaded, ids, settings, lambda results: write_results(out, results)).run()
    return out


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_page_holds_every_section_in_flow_order_with_the_inputs_numbers(inputs: list[Path]) -> None:
    given = [inputs[3], inputs[6], inputs[4], inputs[0], inputs[2], inputs[5], inputs[1]]  # the page orders them
    html = render_report(given)
    assert len(html.encode()) < LIMIT_BYTES
    headings = re.findall(r"<h2>([^:<]+)", html)
    assert headings[:1] == ["Inputs and what they say"]
    kinds = [h for h in headings if h in ("Spectrum and audit", "Probes", "Lab", "Compression")]
    assert kinds == ["Spectrum and audit"] * 2 + ["Probes"] * 2 + ["Lab"] * 2 + ["Compression"]
    text = _text(html)
    for number in _key_numbers(inputs):
        assert number in text, number
    assert "ropescope 0.1.0" in text
    assert html.count("<figure>") == html.count("<figcaption>") == html.count('src="data:image/png;base64,')


def test_zone_plot_draws_the_men_minimum_the_audit_holds(inputs: list[Path]) -> None:
    """One model's audit holds Men's minimum base at its target: the zone plot draws it there (checked against a
    fresh search). The catalog's JSON holds none, so its plot has no Men curve and its caption says why."""
    single = json.loads(inputs[1].read_text())
    axis = audit_zone_figure(single).axes[0]
    men = bounds.men_min_base(single["rotary_dim"], single["context"]).base
    green = [
        (list(line.get_xdata()), list(line.get_ydata())) for line in axis.get_lines() if line.get_color() == "tab:green"
    ]
    assert green == [([16384], [pytest.approx(men, rel=1e-12)])]
    assert "Men 2024 minimum" in [text.get_text() for text in axis.texts]
    catalog = json.loads(inputs[0].read_text())
    assert not any("men2024" in (row.get("zone") or {}).get("lower", {}) for row in catalog)
    assert "Men et al.'s minimum-base curve is left out: the catalog audit does not search it" in _text(
        render_report([inputs[0]])
    )


def test_page_loads_nothing_and_is_byte_identical_twice(inputs: list[Path]) -> None:
    first, second = render_report(inputs), render_report(inputs)
    assert first == second
    references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", first)
    assert references and all(ref.startswith(("data:", "#")) for ref in references), set(references)
    assert "<script" not in first and "@import" not in first and "url(" not in first


def _key_numbers(inputs: list[Path]) -> list[str]:
    """Numbers the page must show, read from the inputs (formatted as the page formats them)."""
    catalog = json.loads(inputs[0].read_text())
    single = json.loads(inputs[1].read_text())
    probe = json.loads((inputs[2] / "results.json").read_text())
    smollm2 = json.loads((DATA / "smollm2-16k" / "results.json").read_text())
    bases = json.loads((DATA / "bases" / "summary.json").read_text())
    ok = sum(row["verdict"] == "ok" for row in catalog)
    predicted = single["predicted_break"]
    lm = [run for run in bases["runs"] if run["task"] == "lm" and run["break_context"] is not None]
    compressed = json.loads((inputs[6] / "results.json").read_text())["results"]
    dapq = next(row for row in compressed if row["press"] == "dapq" and row["ratio"] == 0.5)
    return [
        f"{dapq['loss_delta']:+.3f}",
        "compressed at 400 tokens: streaming, snapkv, expected, triattention, dapq at ratios 0.25, 0.5",
        f"{dapq['kv_fraction']:.0%}",
        f"{len(catalog)} catalog models at their targets: {ok} ok",
        f"predicted break {predicted['context']:,} tokens",
        f"{predicted['low']:,}–{predicted['high']:,} tokens",
        f"{single['context']:,} tokens {single['verdict'].replace('_', ' ')}",
        f"{probe['metrics']['own']['loss']['mean_loss']:.4g} nats",
        f"{smollm2['metrics']['own']['loss']['mean_loss']:.4g} nats",
        f"{smollm2['text']['tokens']:,} tokens",
        f"{lm[0]['break_context']:,}",
        "kazemnejad",
    ]


@pytest.mark.browser
def test_page_in_headless_chromium(inputs: list[Path], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    page_path = write_report(inputs, tmp_path / "report.html")
    console: list[str] = []
    requests: list[str] = []
    failed: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
            page.on("request", lambda request: requests.append(request.url))
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.goto(page_path.as_uri(), wait_until="load")
            images: list[dict[str, Any]] = page.evaluate(
                "[...document.images].map(i => ({complete: i.complete, width: i.naturalWidth, alt: i.alt}))"
            )
            dom_text = re.sub(r"\s+", " ", page.evaluate("document.body.innerText"))
            title = page.title()
        finally:
            browser.close()
    assert [m for m in console if m.startswith(("error", "warning", "pageerror"))] == []
    assert failed == []
    assert [url for url in requests if not url.startswith("data:")] == [page_path.as_uri()]
    assert len(images) >= 8 and all(image["complete"] and image["width"] > 0 for image in images), images
    assert title.startswith("ropescope report")
    for number in _key_numbers(inputs):  # innerText shows verdicts upper-cased, as the reader sees them
        assert number.casefold() in dom_text.casefold(), number


def test_cli_writes_the_report(inputs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = run_cli("report", *map(str, inputs), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_text(encoding="utf-8") == render_report(inputs)
    assert f"wrote {out}" in result.stdout


def test_a_folder_of_result_folders_stands_for_them(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for name in ("bases", "smollm2-16k"):
        shutil.copytree(DATA / name, runs / name)
    html = render_report([runs])
    assert "Probes: SmolLM2-135M-Instruct.Q4_1.gguf" in html and "Lab: bases" in html


def _bad_version(tmp_path: Path) -> Path:
    folder = tmp_path / "future"
    folder.mkdir()
    summary = json.loads((DATA / "bases" / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps(summary | {"schema_version": 99}))
    return folder


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("{tmp}/empty",), ("holds no results", "results.json, summary.json")),
        (("{future}",), ("lab schema version 99", "this ropescope reads 1")),
        (("{tmp}/nothing-here",), ("no such file or folder",)),
        (("{tmp}/notes.json",), ("notes.json", "is no result ropescope knows")),
        (("{tmp}/broken.json",), ("broken.json", "is not JSON")),
        (("{bases}", "--out", "{tmp}/missing/report.html"), ("--out", "does not exist")),
        (("{bases}", "--out", "{tmp}/report.txt"), ("--out", ".html")),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.json").write_text('{"hello": 1}')
    (tmp_path / "broken.json").write_text("{")
    names = {"tmp": str(tmp_path), "future": str(_bad_version(tmp_path)), "bases": str(DATA / "bases")}
    out = tmp_path / "out.html"
    has_out = "--out" in args
    result = run_cli("report", *(a.format(**names) for a in args), *(() if has_out else ("--out", str(out))))
    assert_input_error(result, *fragments)
    assert not out.exists() and not list(tmp_path.glob("**/*.html")) and not list(tmp_path.glob("**/.*.tmp"))
