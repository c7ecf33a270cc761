"""The reference decoder: transformers' Llama as an oracle, training, batching, and bad inputs."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ropescope.errors import RopescopeInputError  # noqa: E402
from ropescope.model import Decoder, DecoderConfig  # noqa: E402

pytestmark = pytest.mark.torch


def llama_twin(model: Decoder):
    """A transformers LlamaForCausalLM with the same sizes and weights as ``model`` (RoPE, SwiGLU, tied)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    c = model.config
    config = LlamaConfig(**c.llama_config_kwargs(), max_position_embeddings=4096)
    twin = LlamaForCausalLM(config).eval()
    d, h = c.d_model, c.hidden
    with torch.no_grad():
        twin.model.embed_tokens.weight.copy_(model.embed.weight)
        twin.model.norm.weight.copy_(model.norm.weight)
        for ours, theirs in zip(model.blocks, twin.model.layers, strict=True):
            qkv = ours.attention.qkv.weight
            theirs.self_attn.q_proj.weight.copy_(qkv[:d])
            theirs.self_attn.k_proj.weight.copy_(qkv[d : 2 * d])
            theirs.self_attn.v_proj.weight.copy_(qkv[2 * d :])
            theirs.self_attn.o_proj.weight.copy_(ours.attention.out.weight)
            theirs.mlp.gate_proj.weight.copy_(ours.mlp.up.weight[:h])
            theirs.mlp.up_proj.weight.copy_(ours.mlp.up.weight[h:])
            theirs.mlp.down_proj.weight.copy_(ours.mlp.down.weight)
            theirs.input_layernorm.weight.copy_(ours.attention_norm.weight)
            theirs.post_attention_layernorm.weight.copy_(ours.mlp_norm.weight)
    return twin


@pytest.mark.hf
def test_rope_decoder_equals_transformers_llama_with_the_same_weights() -> None:
    torch.manual_seed(0)
    model = Decoder(DecoderConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4)).eval()
    with torch.no_grad():
        for parameter in model.parameters():  # not the near-uniform init: make every part matter
            parameter.add_(0.3 * torch.randn_like(parameter))
    twin = llama_twin(model)
    ids = torch.randint(0, 50, (2, 11))
    positions = torch.arange(11) + 300
    with torch.no_grad():
        torch.testing.assert_close(model(ids), twin(ids).logits, atol=1e-5, rtol=1e-4)
        expected = twin(ids, position_ids=positions[None].expand(2, -1)).logits
        torch.testing.assert_close(model(ids, positions), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("encoding", ["rope", "alibi", "sinusoidal", "carope"])
def test_loss_falls_on_an_arithmetic_progression_task(encoding: str) -> None:
    """Sequences (s + t·k) mod 16 with random s and k ∈ {1, 2, 3}: the next token needs the last two."""
    torch.manual_seed(0)
    model = Decoder(DecoderConfig(vocab_size=16, d_model=32, n_layers=2, n_heads=4, encoding=encoding))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)

    def progression_loss() -> torch.Tensor:
        start, step = torch.randint(0, 16, (32, 1)), torch.randint(1, 4, (32, 1))
        ids = (start + step * torch.arange(12)) % 16
        logits = model(ids[:, :-1])[:, 1:]  # from the second token on, the step is determined
        return torch.nn.functional.cross_entropy(logits.reshape(-1, 16), ids[:, 2:].reshape(-1))

    with torch.no_grad():
        before = progression_loss().item()
    for _ in range(60):
        optimizer.zero_grad()
        progression_loss().backward()
        optimizer.step()
    with torch.no_grad():
        after = progression_loss().item()
    assert before > 2.5  # ≈ ln 16 at initialisation
    assert after < 0.35 * before, f"{encoding}: loss {before:.2f} → {after:.2f}"


def test_batch_specific_positions_match_per_row_forwards() -> None:
    torch.manual_seed(0)
    model = Decoder(DecoderConfig(vocab_size=20, d_model=16, n_layers=1, n_heads=2, encoding="alibi")).eval()
    ids = torch.randint(0, 20, (2, 5))
    positions = torch.stack((torch.arange(5), torch.arange(5) * 2 + 7))
    with torch.no_grad():
        both = model(ids, positions)
        for row in range(2):
            torch.testing.assert_close(both[row], model(ids[row : row + 1], positions[row])[0])


def test_gelu_untied_variant_runs_and_has_separate_head() -> None:
    config = DecoderConfig(vocab_size=20, d_model=16, n_layers=1, n_heads=2, mlp="gelu", tie_embeddings=False)
    model = Decoder(config)
    assert config.hidden == 64 and model.lm_head.weight is not model.embed.weight
    assert model(torch.zeros(1, 3, dtype=torch.long)).shape == (1, 3, 20)
    assert DecoderConfig(vocab_size=20, d_model=48, n_layers=1, n_heads=2).hidden == 128


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"d_model": 30}, "divisible"),
        ({"n_layers": 0}, "positive"),
        ({"mlp": "relu"}, "swiglu"),
        ({"encoding": "alibi2"}, "unknown"),
        ({"encoding": "rope", "encoding_options": {"bogus": 1}}, "not options"),
    ],
)
def test_bad_configs_raise_input_errors(options: dict, fragment: str) -> None:
    sizes = {"vocab_size": 10, "d_model": 32, "n_layers": 1, "n_heads": 4} | options
    with pytest.raises(RopescopeInputError, match=fragment):
        Decoder(DecoderConfig(**sizes))


def test_bad_forward_inputs_raise_input_errors() -> None:
    model = Decoder(DecoderConfig(vocab_size=10, d_model=16, n_layers=2, n_heads=2))
    with pytest.raises(RopescopeInputError, match="batch"):
        model(torch.zeros(4, dtype=torch.long))
    _, cache = model(torch.zeros(1, 3, dtype=torch.long), use_cache=True)
    with pytest.raises(RopescopeInputError, match="layers"):
        model(torch.zeros(1, 1, dtype=torch.long), past=cache[:1])


def test_only_the_plain_rope_swiglu_decoder_has_a_llama_twin() -> None:
    kwargs = DecoderConfig(vocab_size=20, d_model=16, n_layers=1, n_heads=2).llama_config_kwargs()
    assert kwargs["intermediate_size"] == 48 and kwargs["hidden_size"] == 16
    with pytest.raises(RopescopeInputError, match="no LlamaForCausalLM twin"):
        DecoderConfig(vocab_size=20, d_model=16, n_layers=1, n_heads=2, encoding="alibi").llama_config_kwargs()
