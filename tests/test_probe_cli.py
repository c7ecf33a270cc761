"""``ropescope probe`` end to end: a tiny random Llama folder, bad inputs (one line, exit 2), and SmolLM2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import smollm2_path

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import ropescope.cli.probe  # noqa: E402, F401  (registers the command)
from cli_helpers import run_main  # noqa: E402
from ropescope.probes.checkpoint import CHECKPOINT_FILE  # noqa: E402
from test_probe_model import SAMPLE_TEXT, save_tiny_model  # noqa: E402

PLOTS = {"entropy.png", "sinks.png", "distance.png", "loss.png", "passkey.png"}


def run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    return run_main(monkeypatch, "probe", *args)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama-cli"))


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text(SAMPLE_TEXT, encoding="utf-8")
    return path


@pytest.mark.torch
@pytest.mark.hf
def test_probe_writes_results_and_plots(monkeypatch, tiny_folder: Path, text_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = run_cli(
        monkeypatch,
        str(tiny_folder),
        "--context",
        "200",
        "--text",
        str(text_file),
        "--out",
        str(out),
        "--passkey-lengths",
        "200",
        "--passkey-depths",
        "0,1",
        "--passkey-trials",
        "1",
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["schema_version"] == 1 and results["complete"] and results["context"] == 200
    assert set(results) >= {"model", "spectrum", "metrics", "definitions", "settings", "text"}
    assert results["spectrum"]["own"]["base"] == 500.0
    assert set(results["metrics"]["own"]) == {"entropy", "sinks", "distance", "loss", "passkey"}
    assert results["text"]["source"] == str(text_file)
    assert {p.name for p in out.iterdir()} >= PLOTS
    assert not (out / CHECKPOINT_FILE).exists()  # the layer checkpoint goes once the forward pass is saved


@pytest.mark.torch
@pytest.mark.hf
def test_compare_mode_from_the_cli(monkeypatch, tiny_folder: Path, text_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "compare"
    code = run_cli(
        monkeypatch,
        str(tiny_folder),
        "--context",
        "128",
        "--text",
        str(text_file),
        "--out",
        str(out),
        "--metrics",
        "entropy,loss",
        "--patch",
        "linear:2",
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["metrics"]) == {"own", "patched"} and set(results["comparison"]) == {"entropy", "loss"}
    assert results["spectrum"]["patched"]["rope_type"] == "linear"
    assert {p.name for p in out.iterdir()} >= {"entropy.png", "loss.png"}


@pytest.mark.torch
@pytest.mark.hf
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics", "entropy,perplexity"], "--metrics: unknown metric perplexity"),
        (["--context", "100000"], "--context: 100000 tokens asked but the text has only"),
        (["--context", "0"], "--context: must be a positive whole number"),
        (["--passkey-depths", "0,2"], "--passkey-depths"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(
    monkeypatch, capsys, tiny_folder: Path, text_file: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    options = {"--context": "64", "--text": str(text_file), "--out": str(tmp_path / "o")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        options[flag] = value
    code = run_cli(monkeypatch, str(tiny_folder), *[x for pair in options.items() for x in pair])
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert error.count("\n") == 0 and message in error


@pytest.mark.torch
@pytest.mark.hf
def test_results_record_version_time_axes_and_refuse_to_mix_runs(
    monkeypatch, capsys, tiny_folder: Path, text_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "resume"
    args = [str(tiny_folder), "--context", "64", "--metrics", "loss", "--out", str(out)]
    assert run_cli(monkeypatch, *args, "--text", str(text_file)) == 0
    first = json.loads((out / "results.json").read_text())
    assert first["ropescope_version"] == "0.1.0" and first["created"].endswith("+00:00")
    assert first["axes"]["entropy"]["entropy"] == ["layer", "head", "position_bin"]
    assert set(first["resume_key"]) == {"model_sha256", "window_sha256", "code_sha256"}
    assert run_cli(monkeypatch, *args, "--text", str(text_file)) == 0  # same run: resumed, nothing recomputed
    assert json.loads((out / "results.json").read_text())["created"] == first["created"]
    capsys.readouterr()
    other = tmp_path / "other.txt"
    other.write_text(SAMPLE_TEXT[::-1], encoding="utf-8")
    assert run_cli(monkeypatch, *args, "--text", str(other)) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "results.json: were made with another text" in error
    assert json.loads((out / "results.json").read_text()) == first  # left as it was
    edited = first | {"resume_key": first["resume_key"] | {"code_sha256": "0" * 64}}  # made by other code
    (out / "results.json").write_text(json.dumps(edited))
    assert run_cli(monkeypatch, *args, "--text", str(text_file)) == 2
    assert "were made with another ropescope code" in capsys.readouterr().err


@pytest.mark.torch
@pytest.mark.hf
def test_out_that_is_a_file_and_a_folder_without_tokenizer_fail_at_once(
    monkeypatch, capsys, tiny_folder: Path, text_file: Path, tmp_path: Path
) -> None:
    existing = tmp_path / "results.txt"
    existing.write_text("x")
    assert run_cli(monkeypatch, str(tiny_folder), "--context", "64", "--out", str(existing)) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: --out: {existing} is a file — give a folder for results.json and the plots"
    )
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((tiny_folder / "config.json").read_text())
    for weights in tiny_folder.glob("*.safetensors"):
        (bare / weights.name).write_bytes(weights.read_bytes())
    assert (
        run_cli(monkeypatch, str(bare), "--context", "64", "--text", str(text_file), "--out", str(tmp_path / "o")) == 2
    )
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and f"{bare}: {bare} has no tokenizer" in error and "--tokenizer" in error
    code = run_cli(
        monkeypatch,
        str(bare),
        "--context",
        "64",
        "--metrics",
        "loss",
        "--text",
        str(text_file),
        "--tokenizer",
        str(tiny_folder),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 0


@pytest.mark.torch
@pytest.mark.hf
def test_missing_model_exits_2(monkeypatch, capsys, tmp_path: Path) -> None:
    code = run_cli(monkeypatch, str(tmp_path / "nope"), "--context", "64")
    assert code == 2 and "no such file or folder" in capsys.readouterr().err


@pytest.mark.torch
@pytest.mark.hf
@pytest.mark.smollm2
@pytest.mark.slow
def test_smollm2_all_metrics_from_the_cli(monkeypatch, tmp_path: Path) -> None:
    out = tmp_path / "smollm2"
    code = run_cli(
        monkeypatch,
        str(smollm2_path()),
        "--context",
        "512",
        "--out",
        str(out),
        "--passkey-lengths",
        "256,512",
        "--passkey-depths",
        "0,0.5,1",
        "--passkey-trials",
        "1",
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    own = results["metrics"]["own"]
    assert results["model"]["num_layers"] == 30 and results["spectrum"]["own"]["base"] == 100000.0
    assert len(own["entropy"]["normalised_entropy"]) == 30 and len(own["entropy"]["normalised_entropy"][0]) == 9
    # a trained model attends to its first token far more than uniformly (StreamingLLM, Gu et al.)
    assert max(max(layer) for layer in own["sinks"]["first_mass"]) > 0.5
    assert 1.0 < own["loss"]["mean_loss"] < 6.0  # far below ln(49152) ≈ 10.8 of a uniform guess
    assert sum(cell["accuracy"] for cell in own["passkey"]["cells"]) >= 4  # retrieves within training context
    assert {p.name for p in out.iterdir()} >= PLOTS
