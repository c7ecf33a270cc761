"""Property-based fuzzing of the reader and the spectrum on mutated real configs (Hypothesis).

Seeds are the corpus (tests/corpus/configs.json) and the embedded catalog. Each example applies a few mutations
to one seed: a key of the config or of a nested dict (``text_config``, ``rope_scaling``, per-layer parameters, ...)
is deleted, or set to a hostile value (NaN, ±inf, 400-digit integers, zero, negatives, huge or tiny floats,
strings, lists, dicts, null) or to a real key's plausible value. Properties: ``load_spec`` + ``spectrum`` (at a
random seq_len, for every layer type) + every accessor the CLI calls + ``audit`` (predicted break, fix and every
bound, at a random context up to 1M, without the Men minimum-base search) either return finite numbers that JSON
can carry, or raise ``RopescopeInputError`` (one line); nothing else escapes, and no input takes over 2 s.

The number of examples comes from the Hypothesis profile (tests/conftest.py): ``ci``, the default, runs 300,
derandomised; ``pytest tests/test_fuzz_config.py --hypothesis-profile fuzz-1e5`` runs 10⁵.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ropescope import load_spec, spectrum
from ropescope.audit import audit
from ropescope.catalog import entries
from ropescope.config import positional_scheme
from ropescope.errors import RopescopeInputError
from ropescope.report.spectrum_view import spectrum_document

SEEDS = [m["config"] for m in json.loads((Path(__file__).parent / "corpus" / "configs.json").read_text())["models"]]
SEEDS += [dict(entry.config) for entry in entries()]
KEYS = [
    "rope_theta", "rope_scaling", "rope_parameters", "head_dim", "hidden_size", "num_attention_heads", "n_embd",
    "n_head", "rotary_dim", "partial_rotary_factor", "rotary_pct", "max_position_embeddings", "seq_length",
    "original_max_position_embeddings", "num_hidden_layers", "layer_types", "qk_rope_head_dim", "use_mla",
    "kv_channels", "rope_ratio", "rope_local_base_freq", "sliding_window", "model_type", "text_config", "alibi",
    "use_dynamic_ntk", "use_logn_attn", "no_rope_layers", "full_attention_interval", "factor", "type", "rope_type",
    "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "attention_factor", "low_freq_factor", "high_freq_factor",
    "short_factor", "long_factor", "alpha", "mrope_section", "llama_4_scaling_beta", "truncate",
]  # fmt: skip
ROPE_TYPES = ["default", "linear", "dynamic", "yarn", "longrope", "llama3", "ntk", "proportional", "Linear", "su"]
HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, 1, 2, -1, 3, 10**400, -(10**400), 2**63, 1e-324, 5e-324, 1e300, 1e308]),
    st.integers(min_value=-(10**6), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([*ROPE_TYPES, "", "full_attention", "linear_attention", "gpt2", "llama", "qwen"]),
    st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(0, 64)), max_size=70),
    st.dictionaries(st.sampled_from(KEYS), st.one_of(st.floats(), st.integers(-5, 10**6), st.none()), max_size=4),
)


def _dicts(config: Any, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(config, dict):
        found.append(config)
        for value in config.values():
            _dicts(value, found)
    return found


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict[str, Any]:
    config = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        target = draw(st.sampled_from(_dicts(config, [])))
        if target and draw(st.booleans()) and draw(st.booleans()):
            del target[draw(st.sampled_from(sorted(target)))]
        else:
            target[draw(st.sampled_from(sorted({*KEYS, *target})))] = draw(HOSTILE)
    return config


def _assert_finite_json(document: Any) -> None:
    json.dumps(document, allow_nan=False)  # ValueError on any inf/NaN


def _exercise(config: dict[str, Any], seq_len: int | None, context: int, audited: int) -> None:
    positional_scheme(config)
    spec = load_spec(config)
    _assert_finite_json(spec.to_dict())
    for layer in [spec, *spec.layer_specs.values()]:
        computed = spectrum(layer, seq_len=seq_len)
        assert np.isfinite(computed.inv_freq).all() and math.isfinite(computed.attention_factor)
        assert math.isfinite(computed.effective_base)
        assert np.isfinite(computed.query_scale(np.array([0.0, float(context)]))).all()
        _assert_finite_json(spectrum_document(computed, context))
        computed.bands()
    _assert_finite_json(audit(spec, audited, search_men_base=False).to_dict())


@settings(deadline=None, suppress_health_check=list(HealthCheck))  # the 2 s limit is asserted below
@given(
    mutated_configs(),
    st.one_of(st.none(), st.integers(1, 1 << 27)),
    st.integers(1, 1 << 27),
    st.integers(1, 1 << 20),
)
def test_mutated_real_configs_give_finite_results_or_one_input_error(
    config: dict[str, Any], seq_len: int | None, context: int, audited: int
) -> None:
    start = time.perf_counter()
    try:
        _exercise(config, seq_len, context, audited)
    except RopescopeInputError as error:
        assert "\n" not in str(error) and error.fix
    assert time.perf_counter() - start < 2.0
