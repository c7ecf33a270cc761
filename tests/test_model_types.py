"""ropescope.model_types against the installed transformers: every default, and every composite's text type."""

from __future__ import annotations

import dataclasses

import pytest

from ropescope.model_types import MODEL_DEFAULTS, TEXT_MODEL_TYPES

pytestmark = [pytest.mark.hf]


@pytest.mark.parametrize("model_type", sorted(MODEL_DEFAULTS))
def test_defaults_equal_the_transformers_config_class(model_type: str) -> None:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    config_class = CONFIG_MAPPING[model_type]
    fields = {f.name: f.default for f in dataclasses.fields(config_class)}
    built = config_class()
    for key, value in MODEL_DEFAULTS[model_type].items():
        if key == "rope_theta":
            theta = config_class.default_theta
            assert value == (theta["global"] if isinstance(theta, dict) else theta), key
        elif key == "rope_local_base_freq":
            assert value == config_class.default_theta["local"]
        elif key == "rope_parameters":
            expected = {k: v for k, v in built.rope_parameters.items() if k not in ("type", "max_position_embeddings")}
            assert value == expected
        elif key == "full_attention_interval":  # a keyword default that shapes layer_types
            pattern = [
                "linear_attention" if (i + 1) % value else "full_attention" for i in range(len(built.layer_types))
            ]
            assert built.layer_types == pattern
        elif key in ("partial_rotary_factor", "rotary_pct"):
            assert value == built.rope_parameters["partial_rotary_factor"], key
        else:
            assert fields.get(key, getattr(built, key)) == value, key


@pytest.mark.parametrize("outer", sorted(TEXT_MODEL_TYPES))
def test_text_model_types_are_what_transformers_builds(outer: str) -> None:
    from transformers import AutoConfig

    assert AutoConfig.for_model(outer).get_text_config().model_type == TEXT_MODEL_TYPES[outer]
