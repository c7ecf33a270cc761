"""Each defect class of issue 10, one test each: what the reader makes of real config shapes and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import assert_input_error, run_cli
from ropescope import RopescopeInputError, load_spec, spectrum
from ropescope.config import positional_scheme
from ropescope.errors import NotRopeError

LLAMA = {"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32, "max_position_embeddings": 4096}
YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}


def codes(spec) -> set[str]:
    return {f.code for f in spec.findings}


def test_top_level_rotary_dim_is_the_rotary_dimension() -> None:
    spec = load_spec({"model_type": "gptj", "n_embd": 4096, "n_head": 16, "rotary_dim": 64})
    assert (spec.head_dim, spec.rotary_dim, spec.base) == (256, 64, 10_000.0)
    with pytest.raises(RopescopeInputError, match="wider than the head"):
        load_spec({"model_type": "gptj", "n_embd": 64, "n_head": 16, "rotary_dim": 64})


@pytest.mark.parametrize(
    ("config", "name", "limit"),
    [
        ({"model_type": "gpt2", "n_embd": 768, "n_head": 12}, "learned_absolute", 1024),
        ({"model_type": "gpt_bigcode", "n_embd": 768, "n_head": 12, "n_positions": 8192}, "learned_absolute", 8192),
        ({"model_type": "falcon", "hidden_size": 2048, "num_attention_heads": 32, "alibi": True}, "alibi", None),
        ({"model_type": "bloom", "hidden_size": 1024, "n_head": 16}, "alibi", None),
        ({"model_type": "mpt", "d_model": 4096, "n_heads": 32}, "alibi", None),
        ({"model_type": "mpt", "attn_config": {"alibi": False}, "max_seq_len": 4096}, "learned_absolute", 4096),
        ({"model_type": "t5", "hidden_size": 768, "num_attention_heads": 12}, "t5_relative_bias", None),
        ({"model_type": "rwkv", "hidden_size": 768}, "none", None),
        ({"model_type": "xglm", "d_model": 1024}, "sinusoidal_absolute", None),
        ({"model_type": "jais", "position_embedding_type": "alibi"}, "alibi", None),
    ],
)
def test_models_without_rope_are_named_for_their_scheme(config: dict, name: str, limit: int | None) -> None:
    scheme = positional_scheme(config)
    assert (scheme.name, scheme.limit) == (name, limit) and scheme.reason
    with pytest.raises(NotRopeError) as caught:
        load_spec(config)
    assert caught.value.scheme == scheme and "not RoPE" in str(caught.value)
    assert positional_scheme({**LLAMA, "model_type": "llama"}).is_rope


def test_describe_names_the_limit() -> None:
    assert positional_scheme({"model_type": "gpt2"}).describe() == "learned absolute positions, table size 1024"
    assert positional_scheme({"model_type": "bloom"}).describe() == "ALiBi: no rotary limit"


def test_llava_text_config_gets_llamaconfig_defaults() -> None:
    spec = load_spec({"model_type": "llava", "text_config": {"model_type": "llama"}, "hidden_size": 1024})
    assert (spec.head_dim, spec.base, spec.num_layers, spec.max_position_embeddings) == (128, 1e4, 32, 2048)
    text = next(f for f in spec.findings if f.code == "text-config")
    assert "hidden_size" in text.message  # the top-level (vision) width is named as not the language model's
    assert "model-type-defaults" in codes(spec) and "default-base" in codes(spec)
    assert load_spec({"model_type": "llava", "text_config": {}}).model_type == "llama"


@pytest.mark.parametrize(
    "wrap",
    [
        lambda c: {"model_type": "internvl_chat", "llm_config": c},
        lambda c: {"model_type": "deepseek_vl_v2", "language_config": c},
        lambda c: {"model_type": "qwen2_5_omni", "thinker_config": {"text_config": c}, "hidden_size": 8},
    ],
)
def test_other_nestings_are_read(wrap) -> None:  # type: ignore[no-untyped-def]
    spec = load_spec(wrap({"model_type": "qwen2", "hidden_size": 3584, "num_attention_heads": 28, "rope_theta": 1e6}))
    assert (spec.head_dim, spec.base) == (128, 1e6)


def test_mla_switched_off_is_plain_attention() -> None:
    config = {**LLAMA, "model_type": "deepseek_v2", "qk_rope_head_dim": 0, "use_mla": False}
    spec = load_spec(config)
    assert (spec.head_dim, spec.rotary_dim) == (128, 128) and "mla-off" in codes(spec)


def test_hunyuan_dynamic_alpha_is_the_ntk_alpha_base() -> None:
    spec = load_spec(
        {**LLAMA, "model_type": "hunyuan_v1_dense", "head_dim": 128,
         "rope_scaling": {"type": "dynamic", "alpha": 1000.0, "factor": 1.0}}
    )  # fmt: skip
    # b·α^(d/(d−2)), so b_eff = 1/ω_min = (b·α^(128/126))^(126/128) = b^(126/128)·α
    assert spectrum(spec).effective_base == pytest.approx(1e4 ** (126 / 128) * 1000, rel=1e-12)


def test_v5_per_layer_parameters_with_a_null_entry() -> None:
    spec = load_spec(
        {**LLAMA, "num_hidden_layers": 4, "layer_types": ["sliding_attention", "full_attention"] * 2,
         "rope_parameters": {"full_attention": None, "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}}
    )  # fmt: skip
    assert set(spec.layer_specs) == {"sliding_attention"} and spec.num_layers == 2
    assert "nope-layer-types" in codes(spec)


def test_linear_attention_layers_are_not_counted() -> None:
    spec = load_spec(
        {**LLAMA, "num_hidden_layers": 8, "layer_types": ["linear_attention"] * 6 + ["full_attention"] * 2}
    )
    assert spec.num_layers == 2 and "non-rotary-layers" in codes(spec)


def test_mrope_section_is_checked_and_reported() -> None:
    spec = load_spec({**LLAMA, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}})
    assert spec.scaling["mrope_section"] == (16, 24, 24) and "mrope" in codes(spec)
    with pytest.raises(RopescopeInputError, match="adds up to 60 pairs"):
        load_spec({**LLAMA, "rope_scaling": {"type": "mrope", "mrope_section": [16, 20, 24]}})


@pytest.mark.parametrize("name", ["Linear", "YaRN", "Dynamic"])
def test_rope_type_names_are_case_sensitive_like_transformers(name: str) -> None:
    with pytest.raises(RopescopeInputError, match="case-sensitive") as caught:
        load_spec({**LLAMA, "rope_scaling": {"rope_type": name, "factor": 2.0}})
    assert f"write {name.lower()!r}" in str(caught.value)


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({**LLAMA, "rope_theta": 1, "rope_scaling": YARN}, "must exceed 1"),
        ({**LLAMA, "rope_theta": 5e-324}, "must exceed 1"),
        ({**LLAMA, "rope_scaling": {"rope_type": "dynamic", "factor": 1e300}}, "cannot be computed"),
        ({**LLAMA, "rope_scaling": {**YARN, "attention_factor": -1.0}}, "must be positive"),
        ({**LLAMA, "rope_scaling": {**YARN, "mscale": 1.0, "mscale_all_dim": -100.0}}, "attention factor"),
        ({**LLAMA, "head_dim": 2, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, "undefined for d = 2"),
        ({**LLAMA, "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 0, "high_freq_factor": 4}},
         "must be positive"),
        ({**LLAMA, "original_max_position_embeddings": 1,
          "rope_scaling": {"rope_type": "longrope", "short_factor": [1.0] * 64, "long_factor": [1.0] * 64}}, "≥ 2"),
        ({**LLAMA, "head_dim": 10**9}, "wider than any model"),
        ({**LLAMA, "num_hidden_layers": float("nan")}, "positive integer"),
        ({**LLAMA, "max_position_embeddings": 10**400}, "huge integer"),
        ({**LLAMA, "rope_theta": float("inf")}, "finite number"),
    ],
)  # fmt: skip
def test_inputs_that_crashed_or_overflowed_are_one_input_error(config: dict, fragment: str) -> None:
    with pytest.raises(RopescopeInputError) as caught:
        spectrum(load_spec(config), seq_len=8192)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("scaling", "code", "extra"),
    [
        ({**YARN, "mscale": 0.707}, "yarn-mscale-ignored", {}),
        ({**YARN, "original_max_position_embeddings": 32768}, "original-above-max", {"max_position_embeddings": 8192}),
    ],
)
def test_missing_findings(scaling: dict, code: str, extra: dict) -> None:
    assert code in codes(load_spec({**LLAMA, **extra, "rope_scaling": scaling}))


def test_mscale_alone_is_ignored_as_in_transformers() -> None:
    plain, with_mscale = (load_spec({**LLAMA, "rope_scaling": s}) for s in (YARN, {**YARN, "mscale": 0.707}))
    assert spectrum(plain).attention_factor == spectrum(with_mscale).attention_factor == 0.1 * math.log(4) + 1


def test_qwen1_logn_and_dynamic_ntk() -> None:
    spec = load_spec(
        {"model_type": "qwen", "hidden_size": 4096, "num_attention_heads": 32, "kv_channels": 128,
         "seq_length": 8192, "rotary_emb_base": 10000, "use_dynamic_ntk": True, "use_logn_attn": True}
    )  # fmt: skip
    at_training = spectrum(spec, seq_len=8192)
    np.testing.assert_allclose(at_training.inv_freq, 1e4 ** (-np.arange(0, 128, 2) / 128), rtol=1e-15)
    assert at_training.query_scale(np.array([8191.0, 8192.0 * 8192 - 1])).tolist() == [1.0, 2.0]


def test_folder_without_config_and_latin1_file(tmp_path: Path) -> None:
    with pytest.raises(RopescopeInputError, match=r"folder without a config\.json"):
        load_spec(tmp_path)
    (tmp_path / "config.json").write_bytes('{"model_type": "llama", "name": "Café"}'.encode("latin-1"))
    with pytest.raises(RopescopeInputError, match="not UTF-8") as caught:
        load_spec(tmp_path)
    assert "save the file as UTF-8" in str(caught.value)


def test_spectrum_cli_refuses_non_rope_absurd_context_and_never_prints_infinity(tmp_path: Path) -> None:
    gpt2 = tmp_path / "gpt2.json"
    gpt2.write_text(json.dumps({"model_type": "gpt2", "n_embd": 768, "n_head": 12}))
    assert_input_error(run_cli("spectrum", str(gpt2)), "learned absolute positions, table size 1024", "not RoPE")
    assert_input_error(run_cli("spectrum", str(gpt2), "--context", "99999999999999999999999"), "--context", "at most")
    proportional = tmp_path / "p.json"
    proportional.write_text(json.dumps({**LLAMA, "rope_parameters": {"rope_type": "proportional", "rope_theta": 1e6,
                                                                  "partial_rotary_factor": 0.25}}))  # fmt: skip
    result = run_cli("spectrum", str(proportional), "--json")
    assert result.returncode == 0 and "Infinity" not in result.stdout
    assert json.loads(result.stdout)["wavelengths"][-1] is None  # ω = 0: no wavelength
