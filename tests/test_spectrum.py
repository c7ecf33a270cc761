"""Spectra against closed forms worked by hand and published numbers (the methods transformers lacks included)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ropescope import RopescopeInputError, load_spec, spectrum

D128 = {
    "hidden_size": 4096,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "max_position_embeddings": 4096,
    "rope_theta": 10000.0,
}


def test_default_spectrum_by_hand() -> None:
    s = spectrum(load_spec({"head_dim": 4, "hidden_size": 8, "num_attention_heads": 2, "rope_theta": 100.0}))
    np.testing.assert_allclose(s.inv_freq, [1.0, 0.1])  # 100^0, 100^(-2/4)
    assert s.effective_base == pytest.approx(10.0) and s.attention_factor == 1.0


@pytest.mark.parametrize(("factor", "published"), [(2, 20_221), (4, 40_890), (8, 82_685), (16, 167_199)])
def test_static_ntk_base_matches_the_yarn_paper_table(factor: int, published: int) -> None:
    """rope_theory.md §5.2: b' = 10000·s^(128/126) for d = 128."""
    s = spectrum(load_spec({**D128, "rope_scaling": {"rope_type": "ntk", "factor": factor}}))
    assert 1 / s.inv_freq[1] ** (128 / 2) == pytest.approx(published, abs=1)  # ω_1 = b'^(-2/128)


def test_entropy_abf_query_scale_matches_hand_values() -> None:
    """rope_theory.md §5.6: max(1, log(pos+1)/log 4096) is 1.0833 at 8192, 1.1667 at 16384, 1.25 at 32768
    (the worked values use the 1-based position pos+1 = 8192 …)."""
    spec = load_spec(
        {
            **D128,
            "rope_theta": 500000.0,
            "rope_scaling": {"rope_type": "entropy_abf", "original_max_position_embeddings": 4096},
        }
    )
    s = spectrum(spec)
    np.testing.assert_allclose(
        s.query_scale(np.array([0, 4095, 8191, 16383, 32767])), [1.0, 1.0, 13 / 12, 14 / 12, 15 / 12], rtol=1e-12
    )
    np.testing.assert_allclose(s.inv_freq, 500000.0 ** (-np.arange(0, 128, 2) / 128))


def test_query_scale_is_one_for_other_methods() -> None:
    assert np.all(spectrum(load_spec(D128)).query_scale(np.arange(10_000)) == 1.0)


def test_dynamic_ntk_equals_default_up_to_the_trained_length_then_grows() -> None:
    spec = load_spec({**D128, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}})
    plain = spectrum(load_spec(D128)).inv_freq
    np.testing.assert_allclose(spectrum(spec, seq_len=2048).inv_freq, plain)
    longer = spectrum(spec, seq_len=8192)  # base·(2·8192/4096 − 1)^(128/126) = 10000·3^(128/126)
    np.testing.assert_allclose(longer.inv_freq, (10000 * 3 ** (128 / 126)) ** (-np.arange(0, 128, 2) / 128))


def test_yarn_llama2_bands_and_temperature_by_hand() -> None:
    """Llama-2 (d=128, L=4096, b=1e4), YaRN s=16: correction dims d·ln(L/(2π·β))/(2 ln b) are 20.94 for β=32
    and 45.04 for β=1, floored/ceiled to 20 and 46; attention factor 0.1·ln 16 + 1 = 1.2773."""
    spec = load_spec(
        {**D128, "rope_scaling": {"rope_type": "yarn", "factor": 16.0, "original_max_position_embeddings": 4096}}
    )
    s = spectrum(spec)
    assert s.attention_factor == pytest.approx(0.1 * math.log(16) + 1)
    bands = s.bands()
    assert bands[:21] == ["extrapolated"] * 21 and bands[46:] == ["interpolated"] * 18
    assert set(bands[21:46]) == {"blended"}
    np.testing.assert_allclose(s.interpolation[21:46], (np.arange(21, 46) - 20) / 26)


def test_yarn_mscale_ratio_deepseek() -> None:
    """DeepSeek-V2: mscale = mscale_all_dim = 0.707 → cos/sin factor 1 (the correction is in the softmax scale)."""
    spec = load_spec(
        {
            **D128,
            "max_position_embeddings": 163840,
            "rope_scaling": {
                "type": "yarn",
                "factor": 40,
                "mscale": 0.707,
                "mscale_all_dim": 0.707,
                "original_max_position_embeddings": 4096,
            },
        }
    )
    assert spectrum(spec).attention_factor == 1.0


def test_llama31_spectrum_by_hand() -> None:
    """Llama 3.1: wavelengths < 8192/4 kept, > 8192/1 divided by 8, smoothed between."""
    spec = load_spec(
        {
            **D128,
            "rope_theta": 500000.0,
            "max_position_embeddings": 131072,
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            },
        }
    )
    s = spectrum(spec)
    base = 500000.0 ** (-np.arange(0, 128, 2) / 128)
    wavelength = 2 * np.pi / base
    short, long = wavelength < 2048, wavelength > 8192
    np.testing.assert_allclose(s.inv_freq[short], base[short])
    np.testing.assert_allclose(s.inv_freq[long], base[long] / 8)
    middle = ~short & ~long
    smooth = (8192 / wavelength[middle] - 1) / 3
    np.testing.assert_allclose(s.inv_freq[middle], (1 - smooth) * base[middle] / 8 + smooth * base[middle])


def test_longrope_switches_factors_past_the_original_context() -> None:
    spec = load_spec(
        {
            **D128,
            "max_position_embeddings": 131072,
            "original_max_position_embeddings": 4096,
            "rope_scaling": {"rope_type": "longrope", "short_factor": [1.0] * 64, "long_factor": [4.0] * 64},
        }
    )
    base = 10000.0 ** (-np.arange(0, 128, 2) / 128)
    np.testing.assert_allclose(spectrum(spec, seq_len=4096).inv_freq, base)
    np.testing.assert_allclose(spectrum(spec, seq_len=4097).inv_freq, base / 4)
    assert spectrum(spec).attention_factor == pytest.approx(math.sqrt(1 + math.log(32) / math.log(4096)))


def test_rotations_and_wavelengths() -> None:
    s = spectrum(load_spec({"head_dim": 4, "hidden_size": 8, "num_attention_heads": 2, "rope_theta": 100.0}))
    np.testing.assert_allclose(s.wavelengths, [2 * np.pi, 20 * np.pi])
    np.testing.assert_allclose(s.rotations(1001), [1000 / (2 * np.pi), 100 / (2 * np.pi)])


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8192"])
def test_seq_len_must_be_a_positive_integer(bad) -> None:
    with pytest.raises(RopescopeInputError, match="seq_len"):
        spectrum(load_spec(D128), seq_len=bad)
