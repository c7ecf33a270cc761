"""ropescope.predict: the break-point predictor against closed forms worked here and a naive scan.

Closed forms (module docstring of ropescope.predict): for one unscaled stage at T the under-trained pairs are
those with T·b^(−2i/d) < π, the prediction is T and the top of the interval is the period 2π·b^(2c/d) of the
first of them (c). After a base change from b₀ at T₀ to b the prediction is min over those pairs of
T₀·(b/b₀)^(2i/d). Interpolation by s multiplies it by s.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ropescope import bounds
from ropescope.catalog import entries
from ropescope.config import load_spec, spec_from_config
from ropescope.errors import RopescopeInputError
from ropescope.lineage import from_facts
from ropescope.predict import MAX_WIDTH, TRAINED_ANGLE, predict_break, seen_angles, user_lineage
from ropescope.spectrum import spectrum

PLAIN = {"rope_theta": 10000.0, "head_dim": 128, "num_hidden_layers": 32, "max_position_embeddings": 4096}


def _first_under_trained(base: float, d: int, trained: int) -> int:
    """c = the first pair i with trained·base^(−2i/d) < π, by a plain loop."""
    return next(i for i in range(d // 2) if trained * base ** (-2 * i / d) < math.pi)


def test_single_stage_is_its_training_context_and_the_critical_period() -> None:
    prediction = predict_break(spec_from_config(PLAIN, "plain"))
    c = _first_under_trained(1e4, 128, 4096)
    assert c == 50  # 64·ln(4096/π)/ln(1e4) = 49.8
    assert prediction.context == prediction.low == 4096
    assert prediction.high == math.floor(2 * math.pi * 1e4 ** (2 * c / 128))  # 8,378
    assert prediction.inputs["critical_pair"] == c
    assert prediction.mechanism == "critical_dimension"
    assert prediction.lineage.origin == "assumed"
    assert any(f.code == "lineage-assumed" for f in prediction.findings)


def test_codellama_base_change_from_the_catalog() -> None:
    prediction = predict_break(load_spec("codellama/CodeLlama-7b-hf"))
    c = _first_under_trained(1e4, 128, 4096)
    assert prediction.lineage.origin == "catalog"
    assert prediction.low == math.floor(4096 * (1e6 / 1e4) ** (2 * c / 128))  # 149,575
    assert prediction.mechanism == "base_change"
    inputs = prediction.inputs
    assert inputs["critical_pair"] == c and inputs["critical_pair_stage_context"] == 4096
    assert inputs["critical_pair_period_in_training"] == pytest.approx(2 * math.pi * 1e4 ** (2 * c / 128))
    assert inputs["critical_pair_period_in_use"] == pytest.approx(2 * math.pi * 1e6 ** (2 * c / 128))
    # measured: perplexity fine at 131,072, risen past the paper's threshold at 163,840 (ChunkLlama Table 2)
    assert 131072 <= prediction.context < 163840


def test_yarn_and_linear_interpolation_windows() -> None:
    deepseek = predict_break(load_spec("deepseek-ai/DeepSeek-V2"))
    assert deepseek.low == 40 * 4096 and deepseek.mechanism == "interpolation"
    linear = {**PLAIN, "max_position_embeddings": 16384, "rope_scaling": {"rope_type": "linear", "factor": 4.0}}
    spec = spec_from_config(linear, "pi")
    assert predict_break(spec, from_facts(16384, (1e4, 4096), "user")).low == 4 * 4096


def test_llama3_trained_at_128k_breaks_at_its_trained_context() -> None:
    prediction = predict_break(load_spec("meta-llama/Llama-3.1-8B"))
    assert prediction.low == 131072
    assert prediction.lineage.stages[0].rope["rope_theta"] == 5e5  # pretraining stage implied by the config


def _fits_naively(spec, theta: np.ndarray, length: int) -> bool:  # type: ignore[no-untyped-def]
    omega = spectrum(spec, seq_len=length).inv_freq
    return all(omega[i] * length <= theta[i] * (1 + 1e-9) for i in range(theta.size) if theta[i] < TRAINED_ANGLE)


@pytest.mark.parametrize("model", ["internlm/internlm2-chat-7b", "microsoft/Phi-3-mini-128k-instruct"])
def test_length_dependent_spectra_against_a_naive_check(model: str) -> None:
    spec = load_spec(model)
    prediction = predict_break(spec)
    theta, _ = seen_angles(spec, prediction.lineage)
    assert _fits_naively(spec, theta, prediction.low)
    assert not _fits_naively(spec, theta, prediction.low + 1)


def test_every_pair_trained_has_no_rope_limit_but_the_precision_wall() -> None:
    small = spec_from_config({**PLAIN, "rope_theta": 500.0}, "small base")
    prediction = predict_break(small)
    collapsed = bounds.first_collapsed_positions(spectrum(small).inv_freq, 2**24 + 2, "fp32")
    assert prediction.mechanism == "precision_wall"
    assert prediction.context == int(collapsed[collapsed >= 0].min()) + 1
    assert predict_break(small, dtype="fp64").mechanism == "no_rope_limit"


def test_bf16_angles_break_at_the_first_collapse() -> None:
    spec = spec_from_config(PLAIN, "plain")
    collapsed = bounds.first_collapsed_positions(spectrum(spec).inv_freq, 4096, "bf16")
    prediction = predict_break(spec, dtype="bf16")
    assert prediction.mechanism == "precision_wall"
    assert prediction.context == int(collapsed[collapsed >= 0].min()) + 1 < 300


def test_verdict_follows_the_interval() -> None:
    prediction = predict_break(spec_from_config(PLAIN, "plain"))
    assert prediction.verdict(4096) == "ok"
    assert prediction.verdict(4097) == "at_risk"
    assert prediction.verdict(prediction.high) == "at_risk"
    assert prediction.verdict(prediction.high + 1) == "fail"


def test_no_catalog_model_breaks_below_its_last_training_context() -> None:
    for entry in entries():
        prediction = predict_break(load_spec(entry.id))
        assert entry.lineage is not None, entry.id
        assert prediction.low >= entry.lineage.trained_context, entry.id
        assert prediction.high <= MAX_WIDTH * prediction.low, entry.id


def test_user_lineage_and_its_errors() -> None:
    spec = spec_from_config(PLAIN, "plain")
    lineage = user_lineage(spec, 16384, (1e4, 4096))
    assert lineage is not None and lineage.trained_context == 16384 and lineage.origin == "user"
    assert user_lineage(spec, None, None) is None
    with pytest.raises(RopescopeInputError, match="exceeds the last training context"):
        user_lineage(spec, 2048, (1e4, 4096))
    with pytest.raises(RopescopeInputError, match="below the config's original_max_position_embeddings"):
        user_lineage(load_spec("meta-llama/Llama-3.1-8B"), 4096, None)
    with pytest.raises(RopescopeInputError, match="RoPE base above 1"):
        user_lineage(spec, 4096, (1.0, 1024))


def test_lineage_from_a_config_key_round_trips() -> None:
    lineage = from_facts(16384, (1e4, 4096), "user")
    config = {**PLAIN, "ropescope_lineage": {"stages": [s.to_dict() for s in lineage.stages]}}
    spec = spec_from_config(config, "with lineage")
    assert spec.lineage is not None and spec.lineage.origin == "config"
    assert [s.context for s in spec.lineage.stages] == [4096, 16384]
    for broken in ({"stages": []}, {"stages": [{"context": 0}]}, {"stages": [{"context": 8192}, {"context": 4096}]}):
        with pytest.raises(RopescopeInputError, match="ropescope_lineage"):
            spec_from_config({**PLAIN, "ropescope_lineage": broken}, "broken")
