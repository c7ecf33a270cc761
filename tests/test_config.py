"""Normalising configs into a RopeSpec: model families, findings, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ropescope import RopescopeInputError, load_spec

LLAMA = {"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32, "max_position_embeddings": 4096}


def codes(spec) -> set[str]:
    return {f.code for f in spec.findings}


def test_plain_llama2_without_rope_theta_uses_default_base_and_says_so() -> None:
    spec = load_spec(LLAMA)
    assert (spec.rope_type, spec.base, spec.head_dim, spec.rotary_dim) == ("default", 10000.0, 128, 128)
    assert spec.num_layers == 32 and spec.training_context == 4096
    assert "default-base" in codes(spec)


def test_v4_and_v5_schemas_give_the_same_spec() -> None:
    v4 = {
        **LLAMA,
        "rope_theta": 5e5,
        "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024},
    }
    v5 = {
        **LLAMA,
        "rope_parameters": {
            "rope_type": "yarn",
            "rope_theta": 5e5,
            "factor": 4.0,
            "original_max_position_embeddings": 1024,
        },
    }
    a, b = load_spec(v4), load_spec(v5)
    assert (a.rope_type, a.base, dict(a.scaling), a.original_max_position_embeddings) == (
        b.rope_type,
        b.base,
        dict(b.scaling),
        b.original_max_position_embeddings,
    )
    assert "legacy-type-key" in codes(a) and "legacy-type-key" not in codes(b)


def test_gpt_neox_rotary_pct_and_rotary_emb_base() -> None:
    spec = load_spec(
        {
            "hidden_size": 6144,
            "num_attention_heads": 64,
            "rotary_pct": 0.25,
            "rotary_emb_base": 10000,
            "num_hidden_layers": 44,
            "max_position_embeddings": 2048,
        }
    )
    assert (spec.head_dim, spec.rotary_dim, spec.base) == (96, 24, 10000.0)


def test_deepseek_mla_rotates_only_the_rope_slice() -> None:
    spec = load_spec(
        {
            "hidden_size": 5120,
            "num_attention_heads": 128,
            "qk_rope_head_dim": 64,
            "qk_nope_head_dim": 128,
            "num_hidden_layers": 60,
            "max_position_embeddings": 163840,
            "rope_theta": 10000,
            "rope_scaling": {
                "type": "yarn",
                "factor": 40,
                "beta_fast": 32,
                "beta_slow": 1,
                "mscale": 0.707,
                "mscale_all_dim": 0.707,
                "original_max_position_embeddings": 4096,
            },
        }
    )
    assert (spec.head_dim, spec.rotary_dim, spec.rope_type) == (64, 64, "yarn")
    assert {"mla", "yarn-mscale-all-dim"} <= codes(spec)
    assert "factor-mismatch" not in codes(spec)  # 163840 / 4096 = 40


def test_glm_rope_ratio_and_half_rotation() -> None:
    spec = load_spec(
        {
            "model_type": "chatglm",
            "hidden_size": 4096,
            "num_attention_heads": 32,
            "kv_channels": 128,
            "rope_ratio": 500,
            "seq_length": 131072,
            "num_layers": 40,
        }
    )
    assert (spec.base, spec.head_dim, spec.rotary_dim, spec.max_position_embeddings) == (5e6, 128, 64, 131072)
    assert spec.num_layers == 40 and {"glm-rope-ratio", "glm-half-rotary"} <= codes(spec)


def test_gemma3_v4_form_gives_one_spec_per_layer_type() -> None:
    spec = load_spec(
        {
            "model_type": "gemma3_text",
            "hidden_size": 3840,
            "num_attention_heads": 16,
            "head_dim": 256,
            "num_hidden_layers": 48,
            "max_position_embeddings": 131072,
            "rope_theta": 1e6,
            "rope_local_base_freq": 1e4,
            "sliding_window": 1024,
            "rope_scaling": {"rope_type": "linear", "factor": 8.0},
        }
    )
    assert spec.layer_type == "full_attention" and (spec.rope_type, spec.base) == ("linear", 1e6)
    local = spec.layer_specs["sliding_attention"]
    assert (local.rope_type, local.base, local.sliding_window) == ("default", 1e4, 1024)


def test_phi3_su_is_read_as_longrope_with_top_level_original_context() -> None:
    spec = load_spec(
        {
            "hidden_size": 3072,
            "num_attention_heads": 32,
            "num_hidden_layers": 32,
            "max_position_embeddings": 131072,
            "original_max_position_embeddings": 4096,
            "rope_theta": 10000.0,
            "rope_scaling": {"type": "su", "short_factor": [1.0] * 48, "long_factor": [2.0] * 48},
        }
    )
    assert spec.rope_type == "longrope" and spec.original_max_position_embeddings == 4096
    assert {"rope-type-alias", "longrope-implicit-factor"} <= codes(spec)


@pytest.mark.parametrize(
    ("scaling", "expected"),
    [
        (
            {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096, "attn_factor": 1.0},
            "ignored-keys",
        ),
        ({"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 4096}, "factor-mismatch"),
        ({"rope_type": "yarn", "factor": 4.0}, "original-context-default"),
        ({"rope_type": "default", "factor": 8.0}, "ignored-keys"),
        (
            {
                "rope_type": "llama3",
                "type": "linear",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 1024,
            },
            "type-conflict",
        ),
    ],
)
def test_suspicious_but_valid_scaling_is_a_finding(scaling: dict, expected: str) -> None:
    spec = load_spec({**LLAMA, "max_position_embeddings": 16384, "rope_scaling": scaling})
    assert expected in codes(spec)


def test_both_schemas_present_is_a_finding_and_rope_scaling_wins() -> None:
    spec = load_spec(
        {
            **LLAMA,
            "rope_scaling": {"rope_type": "linear", "factor": 2.0},
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e4},
        }
    )
    assert spec.rope_type == "linear" and "both-schemas" in codes(spec)


def test_inert_sliding_window_is_reported_and_dropped() -> None:
    spec = load_spec({**LLAMA, "sliding_window": 4096, "use_sliding_window": False})
    assert spec.sliding_window is None and "inert-sliding-window" in codes(spec)


@pytest.mark.parametrize(
    ("config", "names"),
    [
        ({**LLAMA, "rope_scaling": {"rope_type": "banana"}}, "unknown rope type"),
        ({**LLAMA, "head_dim": 7}, "must be even"),
        ({**LLAMA, "head_dim": 64, "partial_rotary_factor": 0.3}, "must be even"),
        ({**LLAMA, "rope_scaling": {"rope_type": "linear", "factor": 0.5}}, "below 1"),
        ({**LLAMA, "rope_theta": 0}, "must exceed 1"),
        ({**LLAMA, "rope_theta": -5.0}, "must exceed 1"),
        ({**LLAMA, "rope_theta": 1}, "must exceed 1"),
        ({**LLAMA, "rope_scaling": {"rope_type": "linear"}}, "needs ['factor']"),
        ({**LLAMA, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "needs ['high_freq_factor'"),
        (
            {**LLAMA, "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "beta_fast": 1, "beta_slow": 32}},
            "must exceed beta_slow",
        ),
        (
            {
                **LLAMA,
                "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0},
            },
            "must exceed low_freq_factor",
        ),
        (
            {**LLAMA, "rope_scaling": {"rope_type": "longrope", "short_factor": [1.0] * 3, "long_factor": [1.0] * 64}},
            "has 3 numbers",
        ),
        ({"num_hidden_layers": 2}, "cannot be determined"),
        ({**LLAMA, "max_position_embeddings": -1}, "positive integer"),
    ],
)
def test_bad_configs_raise_an_error_naming_the_input_and_the_fix(config: dict, names: str) -> None:
    with pytest.raises(RopescopeInputError) as caught:
        load_spec(config)
    assert names in str(caught.value)
    assert caught.value.fix  # every error says what to do


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(RopescopeInputError, match="no such file"):
        load_spec(tmp_path / "absent.json")
    broken = tmp_path / "config.json"
    broken.write_text('{"rope_theta": ')
    with pytest.raises(RopescopeInputError, match="invalid JSON at line 1"):
        load_spec(broken)
    broken.write_text("[1, 2]")
    with pytest.raises(RopescopeInputError, match="not a JSON object"):
        load_spec(broken)


def test_a_model_folder_reads_its_config_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({**LLAMA, "rope_theta": 5e5}))
    assert load_spec(tmp_path).base == 5e5
