"""The ``spectrum`` and ``catalog`` commands, end to end, including every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import assert_input_error, run_cli

LLAMA31 = {
    "hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32, "max_position_embeddings": 131072,
    "rope_theta": 500000.0,
    "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
}  # fmt: skip


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA31))
    return path


def test_spectrum_json_has_the_documented_keys(config_file: Path) -> None:
    result = run_cli("spectrum", str(config_file), "--json", "--context", "128K")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    for key in ("rope_type", "base", "rotary_dim", "inv_freq", "attention_factor", "findings"):
        assert key in document
    assert document["rope_type"] == "llama3" and document["rotary_dim"] == 128 and document["context"] == 131072
    assert len(document["inv_freq"]) == 64 and document["bands"][0] == "extrapolated"
    expected_turns = 131071 * np.array(document["inv_freq"]) / (2 * np.pi)
    np.testing.assert_allclose(document["rotations_in_context"], expected_turns)


def test_spectrum_table(config_file: Path) -> None:
    result = run_cli("spectrum", str(config_file), "--context", "131072")
    assert result.returncode == 0, result.stderr
    printed = " ".join(result.stdout.split())  # the title wraps where the temporary folder's name is long
    assert "llama3 RoPE, base 500,000" in printed and "turns in 131,072" in printed
    assert "interpolated" in printed and "effective base" in printed


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["spectrum", "missing/config.json"], ["missing/config.json", "no such file"]),
        (["spectrum", "{cfg}", "--seq-len", "0"], ["--seq-len", "positive whole number"]),
        (["spectrum", "{cfg}", "--seq-len", "12.5"], ["--seq-len"]),
        (["spectrum", "{cfg}", "--context", "-4"], ["--context"]),
        (["spectrum", "{cfg}", "--layer-type", "sliding_attention"], ["--layer-type", "unknown layer type"]),
        (["spectrum", "{bad}"], ["invalid JSON"]),
        (["spectrum", "{unknown}"], ["unknown rope type 'banana'", "use one of"]),
        (["spectrum", "{odd}"], ["rotary dimension", "must be even"]),
        (["spectrum", "{small}"], ["factor", "below 1"]),
        (["spectrum", "{yarn}"], ["beta_fast", "must exceed beta_slow"]),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, config_file: Path, args: list[str], fragments: list[str]):
    variants = {
        "bad": "{not json",
        "unknown": json.dumps({**LLAMA31, "rope_scaling": {"rope_type": "banana"}}),
        "odd": json.dumps({**LLAMA31, "head_dim": 63, "rope_scaling": None}),
        "small": json.dumps({**LLAMA31, "rope_scaling": {"rope_type": "linear", "factor": 0.25}}),
        "yarn": json.dumps({**LLAMA31, "rope_scaling": {"rope_type": "yarn", "factor": 4, "beta_fast": 1}}),
    }
    paths = {"cfg": str(config_file)}
    for name, text in variants.items():
        paths[name] = str(tmp_path / f"{name}.json")
        Path(paths[name]).write_text(text)
    assert_input_error(run_cli(*[a.format(**paths) for a in args]), *fragments)


def test_usage_errors_exit_2() -> None:
    assert run_cli("spectrum").returncode == 2
    assert run_cli("spectrum", "x.json", "--no-such-option").returncode == 2


def test_catalog_lists_every_model_and_ids_resolve_without_organisation() -> None:
    result = run_cli("catalog", "--json")
    assert result.returncode == 0, result.stderr
    ids = [row["id"] for row in json.loads(result.stdout)]
    assert len(ids) == len(set(ids)) >= 50
    short = run_cli("spectrum", "llama-3.1-8b", "--json")
    assert json.loads(short.stdout)["rope_type"] == "llama3"


def test_unknown_catalog_id_suggests_the_closest() -> None:
    assert_input_error(run_cli("spectrum", "meta-llama/Llama-3.1-8", "--json"), "did you mean", "Llama-3.1-8B")
