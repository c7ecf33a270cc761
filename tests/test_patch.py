"""Patching a loaded transformers model's rotary spectrum equals loading it under the patched config."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import ropescope  # noqa: E402
from ropescope.config import load_spec  # noqa: E402
from ropescope.errors import RopescopeInputError  # noqa: E402
from ropescope.patching import patch, rotary_tables  # noqa: E402
from ropescope.spectrum import spectrum  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.hf]

SIZES = {
    "vocab_size": 64,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_position_embeddings": 256,
}
YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64, "rope_theta": 10_000.0}
DEFAULT = {"rope_type": "default", "rope_theta": 10_000.0}


def build(family: str, rope_parameters: dict, **extra):
    import transformers

    config_class, model_class = {
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
        "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
        "gemma3": (transformers.Gemma3TextConfig, transformers.Gemma3ForCausalLM),
    }[family]
    config = config_class(**SIZES, rope_parameters=rope_parameters, **extra)
    torch.manual_seed(0)
    return model_class(config).eval(), config


def twin(family: str, rope_parameters: dict, weights: dict, **extra):
    model, config = build(family, rope_parameters, **extra)
    model.load_state_dict(weights)
    return model, config


def ids(length: int = 40) -> torch.Tensor:
    return torch.randint(0, 64, (2, length), generator=torch.Generator().manual_seed(1))


def logits(model, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(tokens).logits


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_default_model_patched_to_yarn_equals_the_yarn_model(family: str) -> None:
    model, _ = build(family, dict(DEFAULT))
    reference, config = twin(family, dict(YARN), model.state_dict())
    spec = load_spec(config.to_dict())
    tokens = ids(120)  # past the original context of 64
    before = logits(model, tokens)
    assert not torch.allclose(before, logits(reference, tokens), atol=1e-4)
    with ropescope.patch(model, spec) as tables:  # the spelling users write
        rotary = tables[0].module
        torch.testing.assert_close(rotary.inv_freq, reference.model.rotary_emb.inv_freq)
        assert rotary.attention_scaling == pytest.approx(reference.model.rotary_emb.attention_scaling)
        torch.testing.assert_close(logits(model, tokens), logits(reference, tokens), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits(model, tokens), before, atol=0, rtol=0)
    assert rotary.attention_scaling == 1.0 and rotary.rope_type == "default"


def test_new_base_from_a_spectrum_and_restore_after_an_exception() -> None:
    model, config = build("llama", dict(DEFAULT))
    reference, _ = twin("llama", {"rope_type": "default", "rope_theta": 500_000.0}, model.state_dict())
    new_base = spectrum(load_spec(config.to_dict()).with_base(500_000.0))
    tokens = ids()
    before = logits(model, tokens)
    buffer = model.model.rotary_emb.inv_freq
    with pytest.raises(RuntimeError, match="inside"), patch(model, new_base):
        torch.testing.assert_close(logits(model, tokens), logits(reference, tokens), atol=1e-5, rtol=1e-5)
        raise RuntimeError("inside the block")
    assert model.model.rotary_emb.inv_freq is buffer and buffer.dtype == torch.float32
    torch.testing.assert_close(logits(model, tokens), before, atol=0, rtol=0)


def test_dynamic_target_is_recomputed_at_the_current_length() -> None:
    model, _ = build("llama", dict(DEFAULT))
    dynamic = {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10_000.0}
    reference, config = twin("llama", dynamic, model.state_dict())
    with patch(model, load_spec(config.to_dict())):
        for length in (100, 300):  # below and beyond max_position_embeddings = 256
            tokens = ids(length)
            torch.testing.assert_close(logits(model, tokens), logits(reference, tokens), atol=1e-5, rtol=1e-5)
    assert not model.model.rotary_emb._forward_pre_hooks


def test_gemma3_per_layer_type_tables() -> None:
    extra = {"sliding_window": 16, "layer_types": ["sliding_attention", "full_attention"]}
    model, _ = build("gemma3", {"full_attention": dict(DEFAULT), "sliding_attention": dict(DEFAULT)}, **extra)
    scaled = {"full_attention": dict(YARN), "sliding_attention": {"rope_type": "default", "rope_theta": 1_000.0}}
    reference, config = twin("gemma3", scaled, model.state_dict(), **extra)
    spec = load_spec(config.to_dict())
    assert set(spec.layer_specs) == {"full_attention", "sliding_attention"}
    tokens = ids()
    with patch(model, spec) as tables:
        assert sorted(t.layer_type for t in tables) == ["full_attention", "sliding_attention"]
        torch.testing.assert_close(logits(model, tokens), logits(reference, tokens), atol=1e-5, rtol=1e-5)
    rotary = model.model.rotary_emb
    with patch(model, {"full_attention": spec.layer_specs["full_attention"]}):
        torch.testing.assert_close(rotary.full_attention_inv_freq, reference.model.rotary_emb.full_attention_inv_freq)
        assert torch.equal(rotary.sliding_attention_inv_freq, rotary.sliding_attention_original_inv_freq)
        assert rotary.rope_type == {"full_attention": "default", "sliding_attention": "default"}


def test_unknown_architectures_and_mismatches_raise_clear_errors() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64, n_positions=64))
    with pytest.raises(RopescopeInputError, match="no rotary module"), patch(gpt2, load_spec({"head_dim": 16})):
        pass
    model, _ = build("llama", dict(DEFAULT))
    with (
        pytest.raises(RopescopeInputError, match="16 rotary pairs"),
        patch(model, load_spec({"head_dim": 32, "num_hidden_layers": 1})),
    ):
        pass
    eabf = {"head_dim": 16, "max_position_embeddings": 64, "rope_parameters": {"rope_type": "entropy_abf"}}
    with pytest.raises(RopescopeInputError, match="Entropy-ABF"), patch(model, load_spec(eabf)):
        pass
    with (
        pytest.raises(RopescopeInputError, match="layer types"),
        patch(model, {"full_attention": load_spec({"head_dim": 16})}),
    ):
        pass
    with pytest.raises(RopescopeInputError, match="RopeSpec"), patch(model, 10_000.0):
        pass
    assert len(rotary_tables(model)) == 1 and model.model.rotary_emb.rope_type == "default"
