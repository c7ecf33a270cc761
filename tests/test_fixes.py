"""ropescope.fixes and ``audit --emit-config``: every fix it can recommend round-trips to ``ok``.

The round trip is the independent check: the patched config is written, read back by the same reader as any
user file (with its ``ropescope_lineage``) and predicted again at the fix's angle dtype.
"""

from __future__ import annotations

import json

import pytest

from cli_helpers import assert_input_error, run_cli
from ropescope.catalog import get_entry
from ropescope.config import load_spec, spec_from_config
from ropescope.fixes import patched_config, recommend_fix
from ropescope.predict import predict_break

PLAIN = {"rope_theta": 10000.0, "head_dim": 128, "num_hidden_layers": 32, "max_position_embeddings": 4096}
V5_LINEAR = {
    "head_dim": 64,
    "num_hidden_layers": 4,
    "max_position_embeddings": 8192,
    "rope_parameters": {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0},
}

CASES = [
    # (model or config, target context, expected fix kind, expected rope_type after)
    (PLAIN, 32768, "rescale", "yarn"),  # unscaled RoPE: YaRN over the last training context
    ("codellama/CodeLlama-7b-hf", 262144, "rescale", "yarn"),  # base-changed lineage carried along
    ("deepseek-ai/DeepSeek-V2", 1048576, "rescale", "yarn"),  # a larger YaRN factor
    ("meta-llama/Llama-3.1-8B", 1048576, "rescale", "llama3"),
    ("internlm/internlm2-chat-7b", 1000000, "rescale", "dynamic"),
    ("microsoft/Phi-3-mini-128k-instruct", 1048576, "rescale", "longrope"),
    (V5_LINEAR, 65536, "rescale", "linear"),
    ({**PLAIN, "rope_scaling": {"rope_type": "proportional"}}, 16384, "rebase", "proportional"),
    (PLAIN, 20_000_000, "rescale", "yarn"),  # past the fp32 precision wall: YaRN with fp64 angles
]


def _config(source):  # type: ignore[no-untyped-def]
    return get_entry(source).config if isinstance(source, str) else source


@pytest.mark.parametrize(("source", "context", "kind", "rope_type"), CASES)
def test_every_fix_round_trips_to_ok(source, context: int, kind: str, rope_type: str) -> None:  # type: ignore[no-untyped-def]
    spec = load_spec(source)
    prediction = predict_break(spec)
    assert prediction.verdict(context) != "ok"
    fix = recommend_fix(spec, prediction, context)
    assert fix is not None and fix.kind == kind
    assert fix.predicted.verdict(context) == "ok"
    patched = spec_from_config(json.loads(json.dumps(patched_config(_config(source), fix))), "out.json")
    assert patched.rope_type == rope_type and patched.lineage is not None
    again = predict_break(patched, dtype=fix.dtype)
    assert again.verdict(context) == "ok"
    assert again.low == fix.predicted.low
    assert fix.needs_fine_tuning == (rope_type not in ("yarn", "dynamic"))


def test_precision_wall_fix_is_fp64_angles() -> None:
    spec = load_spec("openbmb/MiniCPM-2B-128k")  # dynamic NTK: the RoPE break lies past the fp32 wall
    prediction = predict_break(spec)
    assert prediction.mechanism == "precision_wall"
    fix = recommend_fix(spec, prediction, 12_000_000)
    assert fix is not None and fix.kind == "fp64_angles" and fix.rope_parameters is None
    assert predict_break(spec, dtype="fp64").verdict(12_000_000) == "ok"


def test_no_fix_when_ok() -> None:
    spec = load_spec(PLAIN)
    assert recommend_fix(spec, predict_break(spec), 4096) is None


def test_yarn_factor_is_the_smallest_integer() -> None:
    spec = load_spec("HuggingFaceTB/SmolLM2-135M")
    fix = recommend_fix(spec, predict_break(spec), 16384)
    assert fix is not None and fix.rope_parameters["factor"] == 2  # predicted 10,717 × 2 ≥ 16,384 > 10,717
    assert fix.rope_scaling == {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 8192}


def test_cli_emit_config_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "yarn.json"
    first = run_cli("audit", "CodeLlama-7b-hf", "--context", "256K", "--emit-config", str(out))
    assert first.returncode == 0, first.stderr
    assert "rope_parameters" in first.stdout and out.is_file()
    second = run_cli("audit", str(out), "--context", "256K", "--json")
    assert second.returncode == 0, second.stderr
    document = json.loads(second.stdout)
    assert document["verdict"] == "ok" and document["prediction"]["lineage"]["origin"] == "config"


def test_cli_user_lineage_changes_the_prediction() -> None:
    result = run_cli("audit", "Llama-2-7b-hf", "--context", "16K", "--trained-context", "16K", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["trained_context"] == 16384 and document["verdict"] == "ok"
    rebased = run_cli("audit", "Llama-2-7b-hf", "--context", "4K", "--pretrained", "1e4@2K", "--json")
    assert json.loads(rebased.stdout)["prediction"]["lineage"]["origin"] == "user"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--trained-context", "0"), ("--trained-context",)),
        (("--trained-context", "lots"), ("--trained-context",)),
        (("--pretrained", "10000"), ("--pretrained", "BASE@N")),
        (("--pretrained", "x@4K"), ("--pretrained", "BASE@N")),
        (("--pretrained", "1@4096"), ("--pretrained", "above 1")),
        (("--pretrained", "1e4@0"), ("--pretrained", "token count")),
        (("--pretrained", "1e4@8K"), ("--pretrained", "exceeds the last training context")),
        (("--emit-config", "{tmp}/out.txt"), ("--emit-config", ".json")),
        (("--emit-config", "{tmp}/missing/out.json"), ("--emit-config", "does not exist")),
    ],
)
def test_cli_lineage_and_emit_bad_input(tmp_path, args: tuple[str, ...], fragments: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    filled = [a.format(tmp=tmp_path) for a in args]
    assert_input_error(run_cli("audit", "Llama-2-7b-hf", "--context", "16K", *filled), *fragments)
    assert list(tmp_path.iterdir()) == []


def test_cli_emit_refused_when_nothing_to_change(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "same.json"
    assert_input_error(
        run_cli("audit", "Llama-2-7b-hf", "--context", "4K", "--emit-config", str(out)), "--emit-config", "no change"
    )
    assert not out.exists()


def test_cli_catalog_refuses_one_model_options() -> None:
    assert_input_error(run_cli("audit", "--trained-context", "4K"), "--trained-context", "one model")
