"""``ropescope compress`` end to end on a tiny random Llama (byte tokenizer): the uncompressed path against
transformers' own generate and a plain forward, a press against its hook, KV bytes, resume, bad inputs; and
every press on SmolLM2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import smollm2_path

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import ropescope.cli.compress  # noqa: E402, F401  (registers the command)
from cli_helpers import run_main  # noqa: E402
from ropescope.presses.base import press  # noqa: E402
from ropescope.presses.evaluate import CompressRun, CompressSettings, config_key  # noqa: E402
from ropescope.presses.scored import SnapKVPress  # noqa: E402
from ropescope.probes.models import load_model  # noqa: E402
from ropescope.probes.passkey import run_trial  # noqa: E402
from test_probe_model import SAMPLE_TEXT, save_gpt2, save_tiny_model  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.hf]
SETTINGS = CompressSettings(
    context=400, presses=("snapkv", "streaming"), ratios=(0.5,), depths=(0.0, 1.0), trials=1, loss_windows=2,
    loss_tokens=32,
)  # fmt: skip


def run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    return run_main(monkeypatch, "compress", *args)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama-compress"))


@pytest.fixture(scope="module")
def measured(tiny_folder: Path) -> tuple:  # type: ignore[type-arg]
    loaded = load_model(tiny_folder)
    ids = list(loaded.tokenizer(SAMPLE_TEXT, add_special_tokens=True)["input_ids"])
    return loaded, ids, CompressRun(loaded, ids, SETTINGS, lambda r: None).run()


def _row(results: dict, name: str) -> dict:  # type: ignore[type-arg]
    return next(row for row in results["results"] if row["press"] == name)


def test_uncompressed_passkey_answers_equal_transformers_generate(measured) -> None:  # type: ignore[no-untyped-def]
    loaded, _, results = measured
    for name, prompt in results["prompts"].items():
        if not name.startswith("passkey/"):
            continue
        from ropescope.probes.passkey import question_ids

        total = SETTINGS.context + len(question_ids(loaded.tokenizer))
        trial = run_trial(loaded.model, loaded.tokenizer, total, prompt["depth"], prompt["key"])
        assert prompt["configs"][config_key("none", 0.0)]["answer"] == trial.answer


def test_question_in_prefill_protects_the_question_and_the_uncompressed_path_equals_generate(tiny_folder) -> None:  # type: ignore[no-untyped-def]
    from ropescope.probes.passkey import question_ids

    loaded = load_model(tiny_folder)
    ids = list(loaded.tokenizer(SAMPLE_TEXT, add_special_tokens=True)["input_ids"])
    settings = CompressSettings(
        context=400, presses=("snapkv",), ratios=(0.75,), depths=(0.5,), trials=1, loss_tokens=32,
        question_in_prefill=True,
    )  # fmt: skip
    run = CompressRun(loaded, ids, settings, lambda r: None)
    asked = len(question_ids(loaded.tokenizer))
    assert run.passkey_presses[config_key("snapkv", 0.75)].protect == asked
    prompt = run.run()["prompts"]["passkey/0.5/0"]
    trial = run_trial(loaded.model, loaded.tokenizer, 400 + asked, 0.5, prompt["key"])
    assert prompt["configs"][config_key("none", 0.0)]["answer"] == trial.answer
    kept = prompt["configs"][config_key("snapkv", 0.75)]["kv_bytes"]
    assert kept == prompt["full_bytes"] * (400 + asked - round(0.75 * (400 + asked))) // (400 + asked)


def test_uncompressed_loss_equals_a_plain_forward_and_a_press_equals_its_hook(measured) -> None:  # type: ignore[no-untyped-def]
    loaded, ids, results = measured
    model = loaded.model
    for name, prompt in results["prompts"].items():
        if not name.startswith("loss/"):
            continue
        window = torch.tensor([ids[prompt["start"] : prompt["start"] + 432]])
        with torch.no_grad():
            logits = model(window).logits[0, 400:-1]
        plain = torch.nn.functional.cross_entropy(logits, window[0, 401:], reduction="none")
        got = torch.tensor(prompt["configs"][config_key("none", 0.0)]["losses"], dtype=torch.float32)
        torch.testing.assert_close(got, plain, atol=1e-4, rtol=1e-4)
        with press(model, SnapKVPress(ratio=0.5)), torch.no_grad():  # the hook path, question fed after
            cache = model(window[:, :400], use_cache=True).past_key_values
            after = model(window[:, 400:], past_key_values=cache, position_ids=torch.arange(400, 432)[None]).logits
        hooked = torch.nn.functional.cross_entropy(after[0, :-1], window[0, 401:], reduction="none")
        got = torch.tensor(prompt["configs"][config_key("snapkv", 0.5)]["losses"], dtype=torch.float32)
        torch.testing.assert_close(got, hooked, atol=1e-4, rtol=1e-4)


def test_rows_kv_bytes_and_deltas(measured) -> None:  # type: ignore[no-untyped-def]
    _, _, results = measured
    assert [(r["press"], r["ratio"]) for r in results["results"]] == [("none", 0), ("snapkv", 0.5), ("streaming", 0.5)]
    none = _row(results, "none")
    assert none["loss_delta"] == 0 and none["kv_fraction"] == 1 and none["passkey_trials"] == 2
    full = 2 * 2 * 2 * 400 * 8 * 4  # layers × (K, V) × KV heads × tokens × head dim × float32 bytes
    assert none["kv_bytes"] == full
    for name in ("snapkv", "streaming"):
        row = _row(results, name)
        assert row["kv_bytes"] == full / 2 and abs(row["kv_fraction"] - 0.5) < 0.01  # (1 − ratio) × full
        losses = [
            sum(p["configs"][config_key(name, 0.5)]["losses"]) / 31
            for key, p in results["prompts"].items()
            if key.startswith("loss/")
        ]
        base = [
            sum(p["configs"][config_key("none", 0.0)]["losses"]) / 31
            for key, p in results["prompts"].items()
            if key.startswith("loss/")
        ]
        assert row["loss_delta"] == pytest.approx(sum(losses) / 2 - sum(base) / 2)
        assert row["decode_ms_per_token"] > 0 and len(row["passkey_by_depth"]) == 2


def test_cli_writes_results_table_plot_and_json_and_resumes(monkeypatch, capsys, tiny_folder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = tmp_path / "text.txt"
    text.write_text(SAMPLE_TEXT, encoding="utf-8")
    out = tmp_path / "run"
    args = [str(tiny_folder), "--context", "400", "--presses", "triattention,dapq,expected", "--ratios", "0.25,0.5"]
    args += ["--depths", "0.5", "--trials", "1", "--loss-tokens", "32", "--text", str(text), "--out", str(out)]
    assert run_cli(monkeypatch, *args) == 0
    printed = capsys.readouterr().out
    assert "triattention" in printed and "ms/tok" in printed and (out / "accuracy.png").is_file()
    results = json.loads((out / "results.json").read_text())
    assert results["schema_version"] == 1 and results["complete"] and len(results["results"]) == 7
    assert {"press", "ratio", "passkey_accuracy", "loss_delta", "kv_bytes", "decode_ms_per_token"} <= set(
        results["results"][1]
    )
    assert run_cli(monkeypatch, *args, "--json") == 0  # resumes: nothing to measure, prints the document
    printed = json.loads(capsys.readouterr().out)
    assert printed["prompts"] == results["prompts"] and printed["results"] == results["results"]
    assert run_cli(monkeypatch, *args[:-2], "--out", str(out), "--seed", "3") == 2
    assert "resuming would mix two runs" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--ratios", "1.0"], "--ratios: '1.0' is not a list of fractions in [0, 1)"),
        (["--ratios", "-0.1"], "not a list of fractions"),
        (["--presses", "h2o"], "--presses: unknown press h2o"),
        (["--context", "4K"], "the text has"),
        (["--ratios", "0.95"], "fewer than the 32 it always keeps"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(monkeypatch, capsys, tiny_folder, tmp_path, extra, fragment) -> None:  # type: ignore[no-untyped-def]
    args = {"--context": "400", "--presses": "snapkv", "--ratios": "0.5"}
    for option, value in zip(extra[::2], extra[1::2], strict=True):
        args[option] = value
    flat = [item for pair in args.items() for item in pair]
    out, text = tmp_path / "bad", tmp_path / "text.txt"
    text.write_text(SAMPLE_TEXT, encoding="utf-8")
    assert run_cli(monkeypatch, str(tiny_folder), *flat, "--text", str(text), "--out", str(out)) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and fragment in error, error
    assert not (out / "results.json").exists()


def test_a_model_without_rotary_is_refused_for_spectral_presses(monkeypatch, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    save_gpt2(tmp_path / "gpt2", positions=1024)
    capsys.readouterr()
    code = run_cli(monkeypatch, str(tmp_path / "gpt2"), "--context", "400", "--out", str(tmp_path / "o"))
    error = capsys.readouterr().err.strip()
    assert code == 2 and error.count("\n") == 0 and "has no rotary module" in error, error


@pytest.mark.smollm2
@pytest.mark.slow
def test_every_press_on_smollm2(monkeypatch, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "smollm2"
    args = [str(smollm2_path()), "--context", "512", "--ratios", "0.5", "--depths", "0.5", "--trials", "1"]
    assert run_cli(monkeypatch, *args, "--loss-tokens", "64", "--out", str(out)) == 0
    results = json.loads((out / "results.json").read_text())
    rows = {row["press"]: row for row in results["results"]}
    assert set(rows) == {"none", "streaming", "snapkv", "expected", "triattention", "dapq"}
    assert rows["none"]["passkey_accuracy"] == 1.0  # SmolLM2 retrieves a passkey at 512 tokens uncompressed
    for name, row in rows.items():
        assert abs(row["kv_fraction"] - (1 if name == "none" else 0.5)) < 0.01
        assert row["loss_delta"] > -0.05  # compression does not make the text easier to predict


@pytest.mark.parametrize("width", [80, 100, 200])
def test_the_table_fits_the_terminal_without_cutting_a_cell(measured, width: int) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console

    from ropescope.report.compress_view import render_compress_table

    _, _, results = measured
    console = Console(width=width, record=True)
    render_compress_table(console, results)
    lines = console.export_text().splitlines()
    assert all(len(line) <= width for line in lines) and "…" not in "".join(lines)
    assert any(line.split()[:2] == ["snapkv", "0.5"] for line in lines if line.strip())
