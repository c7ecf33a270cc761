"""The spectrum equals transformers' own RoPE functions (the oracle) for generated configs, in both schemas.

For every rope type transformers implements, we generate random configs, write them in the v4 schema
(``rope_theta`` + ``rope_scaling``, with ``type`` or ``rope_type``) and in the v5 schema (``rope_parameters``),
and compare ``ropescope.spectrum`` with what transformers computes for the same config: the model's rotary module
for ``default`` (Llama full rotary, StableLM partial rotary) and ``ROPE_INIT_FUNCTIONS`` for the others.
transformers works in float32, so the tolerance is float32 rounding.
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import numpy as np
import pytest

from ropescope import Spectrum, load_spec, spectrum
from ropescope.spectrum import default_inv_freq

pytestmark = [pytest.mark.hf]

CASES_PER_TYPE = 60
RTOL = 32 * 2.0**-23  # 32 float32 ulps: transformers rounds base**x, the ramp and the blend in float32


def _random_config(rng: random.Random, rope_type: str) -> tuple[dict[str, Any], dict[str, Any], int | None]:
    """(shape keys, scaling params incl. rope_theta, seq_len to evaluate at)."""
    heads = rng.choice([2, 4, 8])
    head_dim = rng.choice([16, 32, 64, 96, 128, 256])
    partial = rng.choice([1.0, 1.0, 0.5, 0.25]) if rope_type != "llama3" else 1.0
    if int(head_dim * partial) % 2 or int(head_dim * partial) < 4:
        partial = 1.0
    original = rng.choice([512, 1024, 2048, 4096, 8192, 32768])
    factor = round(rng.uniform(1.0, 64.0), 3)
    max_positions = rng.choice([original, int(original * factor), original * 4])
    shape = {
        "hidden_size": heads * head_dim,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "num_hidden_layers": 2,
        "intermediate_size": 64,
        "vocab_size": 128,
        "max_position_embeddings": max_positions,
    }
    if partial != 1.0:
        shape["partial_rotary_factor"] = partial
    params: dict[str, Any] = {"rope_theta": float(10 ** rng.uniform(2, 8))}
    seq_len = None
    if rope_type in {"linear", "dynamic"}:
        params["factor"] = factor
        if rope_type == "dynamic":
            seq_len = rng.choice([None, max_positions // 2, max_positions, max_positions * 3 + 7])
    elif rope_type == "yarn":
        params.update(factor=factor, original_max_position_embeddings=original)
        if rng.random() < 0.5:
            params.update(beta_fast=float(rng.choice([16, 32, 64])), beta_slow=float(rng.choice([0.5, 1, 2])))
        choice = rng.random()
        if choice < 0.25:
            params["attention_factor"] = round(rng.uniform(0.5, 2.0), 4)
        elif choice < 0.6:
            params.update(mscale=rng.choice([0.707, 1.0]), mscale_all_dim=rng.choice([0.707, 1.0, 0.5]))
        if rng.random() < 0.3:
            params["truncate"] = False
    elif rope_type == "longrope":
        pairs = int(head_dim * partial) // 2
        params.update(
            short_factor=[round(rng.uniform(1.0, 2.0), 4) for _ in range(pairs)],
            long_factor=[round(rng.uniform(1.0, 60.0), 4) for _ in range(pairs)],
            original_max_position_embeddings=original,
        )
        if rng.random() < 0.5:
            params["factor"] = factor
        seq_len = rng.choice([None, original, original + 1, original * 8])
    elif rope_type == "llama3":
        low = rng.choice([0.5, 1.0, 2.0])
        params.update(
            factor=factor,
            low_freq_factor=low,
            high_freq_factor=low * rng.choice([2.0, 4.0, 8.0]),
            original_max_position_embeddings=original,
        )
        shape["max_position_embeddings"] = original * rng.choice([2, 16])
    return shape, params, seq_len


def _v4(shape: dict[str, Any], params: dict[str, Any], rope_type: str, key: str) -> dict[str, Any]:
    scaling = {k: v for k, v in params.items() if k != "rope_theta"}
    config = {**shape, "rope_theta": params["rope_theta"]}
    if rope_type != "default":
        config["rope_scaling"] = {key: rope_type, **scaling}
    return config


def _v5(shape: dict[str, Any], params: dict[str, Any], rope_type: str) -> dict[str, Any]:
    return {**shape, "rope_parameters": {"rope_type": rope_type, **params}}


def _oracle(config: dict[str, Any], rope_type: str, seq_len: int | None) -> tuple[np.ndarray, float]:
    import torch  # noqa: F401
    from transformers import LlamaConfig, StableLmConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
    from transformers.models.stablelm.modeling_stablelm import StableLmRotaryEmbedding

    partial = "partial_rotary_factor" in config or "partial_rotary_factor" in config.get("rope_parameters", {})
    hf_config = (StableLmConfig if partial else LlamaConfig)(**copy.deepcopy(config))  # it mutates nested dicts
    if rope_type == "default":
        module = (StableLmRotaryEmbedding if partial else LlamaRotaryEmbedding)(hf_config)
        return module.inv_freq.double().numpy(), float(module.attention_scaling)
    inv_freq, attention_factor = ROPE_INIT_FUNCTIONS[rope_type](hf_config, device=None, seq_len=seq_len)
    return inv_freq.double().numpy(), float(attention_factor)


def assert_float32_close(ours: Spectrum, expected: np.ndarray, context: str = "") -> None:
    """Within 32 float32 ulps of each value; for a blended pair (YaRN ramp, llama3 smoothing) the weight is
    computed in float32 with cancellation, so the bound is 32 ulps of the pair's *unscaled* frequency."""
    tolerance = RTOL * np.abs(expected)
    if ours.interpolation is not None:
        blended = (ours.interpolation > 0) & (ours.interpolation < 1)
        unscaled = default_inv_freq(ours.spec.base, ours.spec.rotary_dim)
        tolerance = np.where(blended, RTOL * unscaled, tolerance)
    error = np.abs(ours.inv_freq - expected)
    assert np.all(error <= tolerance), (
        f"{context}: worst excess {np.max(error - tolerance):.3g} at {np.argmax(error / tolerance)}"
    )


@pytest.mark.parametrize("schema", ["v4-type", "v4-rope_type", "v5"])
@pytest.mark.parametrize("rope_type", ["default", "linear", "dynamic", "yarn", "longrope", "llama3"])
def test_spectrum_matches_transformers(rope_type: str, schema: str) -> None:
    rng = random.Random(f"{rope_type}-{schema}")
    for case in range(CASES_PER_TYPE):
        shape, params, seq_len = _random_config(rng, rope_type)
        if schema == "v5":
            config = _v5(shape, params, rope_type)
        else:
            config = _v4(shape, params, rope_type, "type" if schema == "v4-type" else "rope_type")
        ours = spectrum(load_spec(config), seq_len=seq_len)
        expected_freq, expected_factor = _oracle(config, rope_type, seq_len)
        context = f"case {case}: {config} seq_len={seq_len}"
        assert ours.inv_freq.dtype == np.float64
        assert ours.inv_freq.shape == expected_freq.shape, context
        assert_float32_close(ours, expected_freq, context)
        assert math.isclose(ours.attention_factor, expected_factor, rel_tol=1e-6), context


def test_proportional_matches_transformers() -> None:
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    rng = random.Random("proportional")
    for _ in range(CASES_PER_TYPE):
        head_dim = rng.choice([64, 128, 256])
        params = {
            "rope_type": "proportional",
            "rope_theta": float(10 ** rng.uniform(3, 7)),
            "partial_rotary_factor": rng.choice([0.25, 0.5, 0.75, 1.0]),
            "factor": rng.choice([1.0, 8.0]),
        }
        config = {
            "hidden_size": 2 * head_dim,
            "num_attention_heads": 2,
            "head_dim": head_dim,
            "num_hidden_layers": 1,
            "rope_parameters": params,
        }
        expected, factor = ROPE_INIT_FUNCTIONS["proportional"](LlamaConfig(**copy.deepcopy(config)), device=None)
        ours = spectrum(load_spec(config))
        assert_float32_close(ours, expected.double().numpy())
        assert ours.attention_factor == factor


def test_per_layer_type_specs_match_transformers_gemma3() -> None:
    """v5 nested rope_parameters: one spec per layer type, each equal to transformers' for that layer type."""
    from transformers import Gemma3TextConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    config = {
        "model_type": "gemma3_text",
        "hidden_size": 64,
        "num_attention_heads": 2,
        "head_dim": 32,
        "num_hidden_layers": 6,
        "max_position_embeddings": 131072,
        "sliding_window": 1024,
        "layer_types": ["sliding_attention"] * 5 + ["full_attention"],
        "rope_parameters": {
            "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
        },
    }
    spec = load_spec(config)
    assert spec.layer_type == "full_attention" and set(spec.layer_specs) == {"full_attention", "sliding_attention"}
    hf = Gemma3TextConfig(**copy.deepcopy(config))
    expected, _ = ROPE_INIT_FUNCTIONS["linear"](hf, device=None, layer_type="full_attention")
    assert_float32_close(spectrum(spec), expected.double().numpy())
    local = spec.layer_specs["sliding_attention"]
    assert local.rope_type == "default" and local.base == 10_000.0
    np.testing.assert_allclose(spectrum(local).inv_freq, 10_000.0 ** (-np.arange(0, 32, 2) / 32), rtol=1e-15)
