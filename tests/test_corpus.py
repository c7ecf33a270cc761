"""The reader on real-shaped configs (tests/corpus/configs.json, each with the repository it comes from).

A RoPE config's inv_freq and attention factor must equal, to float32 rounding, what the model's own code computes
from the same config: transformers' rotary module of that model type (built from the config by ``AutoConfig``,
per layer type for per-layer configs, and through ``ROPE_INIT_FUNCTIONS`` at each listed seq_len for dynamic
types), or the formula of the model's published remote code where transformers has no such model. A non-RoPE
config must be named for its scheme.
"""

from __future__ import annotations

import copy
import importlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ropescope import load_spec, spectrum
from ropescope.config import positional_scheme
from ropescope.errors import NotRopeError
from test_spectrum_oracle import assert_float32_close

CORPUS = json.loads((Path(__file__).parent / "corpus" / "configs.json").read_text())["models"]
ROPE = [m for m in CORPUS if "oracle" in m["expect"]]
OTHER = [m for m in CORPUS if "scheme" in m["expect"]]


def _float32_inv_freq(base: float, rotary_dim: int) -> np.ndarray:
    """inv_freq as the remote codes write it: 1 / base ** (arange(0, d, 2).float() / d) in float32 torch."""
    import torch

    exponent = torch.arange(0, rotary_dim, 2).float() / rotary_dim
    return (1.0 / (torch.tensor(base, dtype=torch.float32) ** exponent)).double().numpy()


def _transformers_text_config(config: dict[str, Any]) -> Any:
    from transformers import AutoConfig

    settings = copy.deepcopy(config)
    return AutoConfig.for_model(settings.pop("model_type"), **settings).get_text_config()


def _rotary_module(text_config: Any) -> Any:
    """The model type's own rotary embedding module, built from its config."""
    module = importlib.import_module(type(text_config).__module__.replace(".configuration_", ".modeling_"))
    names = [n for n in dir(module) if n.endswith("RotaryEmbedding") and "Vision" not in n and "Text" not in n[:-15]]
    text_names = [n for n in dir(module) if n.endswith("TextRotaryEmbedding")]
    return getattr(module, (text_names or names)[0])(config=text_config)


def _expected(model: dict[str, Any], layer_type: str | None, seq_len: int | None) -> tuple[np.ndarray, float]:
    import torch  # noqa: F401
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    text_config = _transformers_text_config(model["config"])
    if text_config.model_type in ("gptj", "codegen"):  # angles from the sinusoid table: position 1 holds sin ω, cos ω
        module = importlib.import_module(type(text_config).__module__.replace(".configuration_", ".modeling_"))
        table = module.create_sinusoidal_positions(2, text_config.rotary_dim)[1].double()
        half = text_config.rotary_dim // 2
        return np.arctan2(table[:half].numpy(), table[half:].numpy()), 1.0
    parameters = text_config.rope_parameters
    rope_type = (parameters[layer_type] if layer_type else parameters)["rope_type"]
    if seq_len is not None and rope_type in ("dynamic", "longrope"):
        kwargs = {"layer_type": layer_type} if layer_type else {}
        inv_freq, factor = ROPE_INIT_FUNCTIONS[rope_type](text_config, None, seq_len=seq_len, **kwargs)
        return inv_freq.double().numpy(), float(factor)
    module = _rotary_module(text_config)
    prefix = f"{layer_type}_" if layer_type and hasattr(module, f"{layer_type}_inv_freq") else ""
    scaling = getattr(module, f"{prefix}attention_scaling", getattr(module, "attention_scaling", 1.0))
    return getattr(module, f"{prefix}inv_freq").double().numpy(), float(scaling)


@pytest.mark.hf
@pytest.mark.parametrize("model", [m for m in ROPE if m["expect"]["oracle"] == "transformers"], ids=lambda m: m["name"])
def test_rope_configs_match_transformers(model: dict[str, Any]) -> None:
    spec = load_spec(model["config"])
    if "num_layers" in model["expect"]:
        assert spec.num_layers == model["expect"]["num_layers"]
    layer_types = sorted(spec.layer_specs) or [None]
    for layer_type in layer_types:
        layer = spec.layer_specs[layer_type] if layer_type else spec
        for seq_len in model["expect"].get("seq_lens", [None]):
            ours = spectrum(layer, seq_len=seq_len)
            expected, factor = _expected(model, layer_type if spec.layer_specs else None, seq_len)
            context = f"{model['name']} layer {layer_type} seq_len {seq_len}"
            assert ours.inv_freq.shape == expected.shape, context
            assert_float32_close(ours, expected, context)
            assert math.isclose(ours.attention_factor, factor, rel_tol=1e-6), context


def test_phi_msft_remote_code_rotates_rotary_dim() -> None:
    # phi-msft's RotaryEmbedding(rotary_dim, base=10000): 1 / base ** (arange(0, rotary_dim, 2) / rotary_dim)
    pytest.importorskip("torch")
    model = next(m for m in ROPE if m["config"]["model_type"] == "phi-msft")
    spec = load_spec(model["config"])
    assert (spec.head_dim, spec.rotary_dim) == (80, 32)
    assert_float32_close(spectrum(spec), _float32_inv_freq(10_000.0, 32))


def test_qwen1_remote_code_dynamic_ntk_and_logn() -> None:
    # modeling_qwen.py: α = max(2 ** ceil(log2(ℓ / seq_length) + 1) − 1, 1); base·α^(d/(d−2)); and
    # logn_list[i − 1] = log(i, seq_length) if i > seq_length else 1.
    pytest.importorskip("torch")
    model = next(m for m in ROPE if m["config"]["model_type"] == "qwen")
    spec = load_spec(model["config"])
    assert (spec.rope_type, spec.rotary_dim, spec.original_max_position_embeddings) == ("qwen_dynamic", 128, 8192)
    assert {"qwen-dynamic-ntk", "qwen-logn-attn"} <= {f.code for f in spec.findings}
    for seq_len in model["expect"]["seq_lens"]:
        alpha = max(2 ** math.ceil(math.log(seq_len / 8192, 2) + 1) - 1, 1)
        base = 10_000.0 * alpha ** (128 / 126)
        assert_float32_close(spectrum(spec, seq_len=seq_len), _float32_inv_freq(base, 128), f"seq_len {seq_len}")
    runtime_base = spectrum(spec, seq_len=32768).inv_freq[1] ** (-128 / 2)  # ω_1 = b^(−2/d)
    assert runtime_base == pytest.approx(7.2e4, rel=0.01)  # issue 10's figure
    positions = np.arange(20000, dtype=np.float64)
    logn = np.array([math.log(i, 8192) if i > 8192 else 1.0 for i in range(1, 20001)])
    np.testing.assert_allclose(spectrum(spec).query_scale(positions), logn, rtol=1e-12)


def test_deepseek_vl2_small_mla_off_is_plain_attention() -> None:
    # the remote DeepseekV2 with use_mla false is Llama attention over hidden_size / num_attention_heads
    pytest.importorskip("torch")
    model = next(m for m in ROPE if m["config"]["model_type"] == "deepseek_vl_v2")
    spec = load_spec(model["config"])
    assert (spec.head_dim, spec.rotary_dim) == (128, 128) and "mla-off" in {f.code for f in spec.findings}
    assert_float32_close(spectrum(spec), _float32_inv_freq(10_000.0, 128))


def test_ministral3_query_scale_is_transformers_formula() -> None:
    # modeling_ministral3.get_llama_4_attn_scale: 1 + β·log(1 + floor(m / original_max_position_embeddings))
    model = next(m for m in ROPE if m["config"].get("model_type") == "mistral3")
    computed = spectrum(load_spec(model["config"]))
    positions = np.array([0.0, 16383.0, 16384.0, 49152.0, 262143.0])
    np.testing.assert_allclose(computed.query_scale(positions), 1 + 0.1 * np.log1p(np.floor(positions / 16384)))


@pytest.mark.parametrize("model", OTHER, ids=lambda m: m["name"])
def test_non_rope_configs_are_named_for_their_scheme(model: dict[str, Any]) -> None:
    scheme = positional_scheme(model["config"])
    assert (scheme.name, scheme.limit) == (model["expect"]["scheme"], model["expect"]["limit"])
    with pytest.raises(NotRopeError) as caught:
        load_spec(model["config"])
    assert caught.value.scheme == scheme and scheme.describe() in str(caught.value)


def test_every_entry_names_its_source() -> None:
    assert all(m["source"].startswith("https://") for m in CORPUS) and len({m["name"] for m in CORPUS}) == len(CORPUS)
