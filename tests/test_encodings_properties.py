"""Properties every registered encoding must have, checked through a random reference decoder."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ropescope.config import load_spec  # noqa: E402
from ropescope.encodings import KINDS, build, names  # noqa: E402
from ropescope.errors import RopescopeInputError  # noqa: E402
from ropescope.model import Decoder, DecoderConfig  # noqa: E402

pytestmark = pytest.mark.torch

VOCAB, D_MODEL, HEADS, LAYERS, LENGTH = 40, 32, 4, 2, 12


def spec_options(scaling: dict) -> dict:
    params = {"rope_theta": 10_000.0, "rope_type": "default", **scaling}
    config = {"head_dim": D_MODEL // HEADS, "num_hidden_layers": LAYERS, "max_position_embeddings": 64}
    return {"spec": load_spec({**config, "rope_parameters": params})}


# every registered encoding with default options, plus RoPE under scalings whose declared invariance differs
CASES = {name: (name, {}) for name in names()}
CASES |= {
    "rope_yarn": ("rope", spec_options({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16})),
    "rope_interleaved_partial": ("rope", {"rotary_dim": D_MODEL // HEADS // 2, "interleaved": True}),
    "rope_dynamic": ("rope", spec_options({"rope_type": "dynamic", "factor": 4.0})),
    "rope_entropy_abf": ("rope", spec_options({"rope_type": "entropy_abf", "original_max_position_embeddings": 16})),
}
# FIRE normalises by ψ(max(L, i)); with its default threshold L = 512 the change from ψ(512) to ψ(1000) moves
# these random-init logits only ~5e-4, so the case uses L = 4, where the normaliser varies inside both windows
CASES["fire"] = ("fire", {"init_threshold": 4.0})


def decoder_for(case: str) -> Decoder:
    name, options = CASES[case]
    torch.manual_seed(0)
    config = DecoderConfig(VOCAB, D_MODEL, LAYERS, HEADS, encoding=name, encoding_options=options)
    model = Decoder(config).eval()
    with torch.no_grad():  # sharpen attention so positional effects show in the logits
        for block in model.blocks:
            block.attention.qkv.weight.mul_(10)
    return model


def grid(start: int, length: int = LENGTH) -> torch.Tensor:
    index = torch.arange(length)
    return torch.stack((index // 3 + start, index % 3 + 2 * start), dim=-1)


def sequence_positions(model: Decoder, start: int, length: int = LENGTH) -> torch.Tensor:
    return grid(start, length) if model.encoding.position_axes == 2 else torch.arange(start, start + length)


def tokens(batch: int = 2, length: int = LENGTH) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("case", list(CASES))
def test_shift_invariance_is_exactly_as_declared(case: str) -> None:
    model = decoder_for(case)
    ids = tokens()
    with torch.no_grad():
        base = model(ids, sequence_positions(model, 0))
        shifted = model(ids, sequence_positions(model, 1000))  # past every training context used here
    gap = (base - shifted).abs().max().item()
    # float32 angles at position ~1000 (matrix exponentials for ComRoPE) leave up to ~1e-4 of rounding;
    # the encodings that are not invariant move the logits by more than 0.05 here
    if model.encoding.shift_invariant:
        assert gap < 5e-4, f"{case} declares shift invariance but logits moved by {gap:g}"
    else:
        assert gap > 1e-2, f"{case} declares no shift invariance but logits moved only {gap:g}"


@pytest.mark.parametrize("case", list(CASES))
def test_incremental_decoding_with_cache_equals_parallel_forward(case: str) -> None:
    model = decoder_for(case)
    ids = tokens()
    positions = sequence_positions(model, 3)
    with torch.no_grad():
        parallel = model(ids, positions)
        pieces, cache = [], None
        for start, stop in ((0, 5), (5, 6), (6, 7), (7, LENGTH)):
            logits, cache = model(ids[:, start:stop], positions[start:stop], past=cache, use_cache=True)
            pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), parallel, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_gradients_reach_every_trainable_parameter(case: str) -> None:
    model = decoder_for(case).train()
    ids = tokens()
    logits = model(ids[:, :-1], sequence_positions(model, 0, LENGTH - 1))
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"{case}: no gradient for {name}"
        assert parameter.grad.abs().sum() > 0, f"{case}: zero gradient for {name}"


def test_encoding_parameters_are_trained_for_the_learned_schemes() -> None:
    expected = {"learned": "table", "t5_bias": "table", "carope": "frequency", "comrope_ap": "generators"}
    expected |= {"comrope_ld": "axis_scales", "fire": "mlp", "seqpe": "digit_embed"}
    for name, parameter_name in expected.items():
        model = decoder_for(name)
        assert any(parameter_name in n for n, _ in model.named_parameters()), name


def test_every_encoding_declares_kind_and_invariance() -> None:
    expected = {"nope", "sinusoidal", "learned", "t5_bias", "alibi", "rope", "xpos", "carope", "comrope_ap"}
    assert set(names()) == expected | {"comrope_ld", "wavelet", "axial_rope", "fire", "seqpe"}
    for name in names():
        encoding = decoder_for(name).encoding
        assert encoding.kind in KINDS
        assert isinstance(encoding.shift_invariant, bool)
        assert type(encoding).__module__.startswith("ropescope.encodings.")
        module = __import__(type(encoding).__module__, fromlist=["__doc__"])
        assert "arXiv" in module.__doc__, f"{name} cites no paper"


def test_positions_beyond_a_learned_table_raise_a_clear_error() -> None:
    config = DecoderConfig(VOCAB, D_MODEL, LAYERS, HEADS, encoding="learned", encoding_options={"max_positions": 16})
    model = Decoder(config)
    model(tokens(length=16))  # positions 0..15 fit
    with pytest.raises(RopescopeInputError, match=r"0\.\.15") as error:
        model(tokens(length=17))
    assert "16" in error.value.fix
    with pytest.raises(RopescopeInputError, match="outside the table"):
        model(tokens(length=4), torch.arange(-2, 2))


def test_unknown_encoding_and_option_raise_input_errors() -> None:
    with pytest.raises(RopescopeInputError, match="unknown name"):
        build("rotary-ish")
    with pytest.raises(RopescopeInputError, match="not options"):
        build("alibi", num_heads=4, slopes=[1.0])
    with pytest.raises(RopescopeInputError, match="2 coordinates"):
        decoder_for("axial_rope")(tokens(), torch.arange(LENGTH))


@pytest.mark.parametrize("case", [c for c in CASES if decoder_for(c).encoding.kind == "rotary"])
def test_rotary_angles_ignore_bfloat16_autocast(case: str) -> None:
    """Autocast must not lower the angle math: results are bit-identical with and without it."""
    model = decoder_for(case)
    encoding = model.blocks[0].attention.encoding
    q, k = torch.randn(2, 1, HEADS, LENGTH, D_MODEL // HEADS)
    hidden = torch.randn(1, LENGTH, D_MODEL)
    positions = sequence_positions(model, 5000)
    with torch.no_grad():
        plain = encoding.rotate(q, k, positions, hidden)[:2]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = encoding.rotate(q, k, positions, hidden)[:2]
    for a, b in zip(plain, autocast, strict=True):
        assert b.dtype == torch.float32 and torch.equal(a, b), case


@pytest.mark.parametrize("case", ["fire", "seqpe"])
def test_learned_position_networks_ignore_bfloat16_autocast(case: str) -> None:
    """FIRE's MLP and SeqPE's encoder run in float32 under autocast: bit-identical to a plain run."""
    model = decoder_for(case)
    encoding = model.encoding
    positions = sequence_positions(model, 5000)

    def run() -> torch.Tensor:
        if encoding.kind == "bias":
            return encoding.attention_bias(None, positions, positions)
        return encoding.embed(positions)

    with torch.no_grad():
        plain = run()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = run()
    assert autocast.dtype == torch.float32 and torch.equal(plain, autocast), case


def test_dynamic_rope_cache_caveat_is_real() -> None:
    """Beyond the original context, cached keys keep the rotation of their own length (transformers #25104)."""
    model = decoder_for("rope_dynamic")  # max_position_embeddings 64
    ids = torch.randint(0, VOCAB, (1, 80), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        parallel = model(ids)
        first, cache = model(ids[:, :60], use_cache=True)
        rest, _ = model(ids[:, 60:], past=cache, use_cache=True)
        short = model(ids[:, :60])
    torch.testing.assert_close(first, short, atol=1e-5, rtol=1e-5)  # below 64: the unscaled spectrum
    # the parallel pass rotates every token with the length-80 spectrum, the cached one did not
    assert (rest - parallel[:, 60:]).abs().max() > 1e-3
