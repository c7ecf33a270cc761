"""RoPE family: HF parity for every scaling, the RoPE equation, layouts, partial rotary, precision."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ropescope.config import load_spec  # noqa: E402
from ropescope.encodings import build  # noqa: E402
from ropescope.encodings.rope import apply_rotary  # noqa: E402
from ropescope.errors import RopescopeInputError  # noqa: E402

pytestmark = pytest.mark.torch

HEAD_DIM = 16
SCALINGS = {
    "default": {},
    "linear": {"rope_type": "linear", "factor": 4.0},
    "ntk": {"rope_type": "ntk", "factor": 4.0},
    "dynamic": {"rope_type": "dynamic", "factor": 4.0},
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64},
    "longrope": {
        "rope_type": "longrope",
        "factor": 4.0,
        "original_max_position_embeddings": 64,
        "short_factor": [1.0 + 0.1 * i for i in range(HEAD_DIM // 2)],
        "long_factor": [1.0 + 0.5 * i for i in range(HEAD_DIM // 2)],
    },
    "llama3": {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    },
    "entropy_abf": {"rope_type": "entropy_abf", "original_max_position_embeddings": 64},
    "proportional": {"rope_type": "proportional", "factor": 2.0, "partial_rotary_factor": 0.5},
}
HF_TYPES = ["default", "linear", "dynamic", "yarn", "longrope", "llama3"]


def config_dict(scaling: dict, max_positions: int = 256) -> dict:
    params = {"rope_theta": 10_000.0, **scaling}
    params.setdefault("rope_type", "default")
    return {
        "hidden_size": 2 * HEAD_DIM,
        "num_attention_heads": 2,
        "head_dim": HEAD_DIM,
        "num_hidden_layers": 1,
        "max_position_embeddings": max_positions,
        "rope_parameters": params,
    }


def rope_for(name: str, **options):
    return build("rope", spec=load_spec(config_dict(SCALINGS[name])), head_dim=HEAD_DIM, **options)


@pytest.mark.hf
@pytest.mark.parametrize("name", HF_TYPES)
def test_rotation_matches_transformers_for_every_scaling(name: str) -> None:
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    hf_config = LlamaConfig(**config_dict(SCALINGS[name]), vocab_size=32)
    oracle = LlamaRotaryEmbedding(hf_config)
    generator = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 1, 2, 300, HEAD_DIM, generator=generator)
    positions = torch.arange(300)  # beyond 256 and 64: dynamic and longrope switch
    cos, sin = oracle(q, positions[None])
    expected_q, expected_k = apply_rotary_pos_emb(q, k, cos, sin)
    got_q, got_k, _ = rope_for(name).rotate(q, k, positions)
    torch.testing.assert_close(got_q, expected_q, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(got_k, expected_k, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("name", list(SCALINGS))
def test_score_depends_only_on_relative_position(name: str) -> None:
    """The RoPE equation: with one q and one k placed at every position, score[m, n] = g(m − n)."""
    encoding = rope_for(name, angle_dtype=torch.float64)
    generator = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, HEAD_DIM, generator=generator, dtype=torch.float64)
    length = 48  # below the original context, where Entropy-ABF's query scale is 1
    positions = torch.arange(length)
    rq, rk, _ = encoding.rotate(q.expand(1, 1, length, -1), k.expand(1, 1, length, -1), positions)
    scores = (rq @ rk.transpose(-1, -2))[0, 0]
    for offset in range(-length + 1, length):
        diagonal = torch.diagonal(scores, offset)
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal), atol=1e-10, rtol=1e-10)
    factor = encoding.attention_factor
    assert scores[0, 0].item() == pytest.approx(factor**2 * float(q @ k), rel=1e-12)


def test_layouts_are_the_same_rotation_up_to_a_permutation() -> None:
    half, interleaved = rope_for("yarn"), rope_for("yarn", interleaved=True)
    pairs = HEAD_DIM // 2
    # interleaved slot (2i, 2i+1) holds half-split dims (i, i + pairs)
    perm = torch.tensor([j for i in range(pairs) for j in (i, i + pairs)])
    x = torch.randn(2, 3, 10, HEAD_DIM)
    positions = torch.arange(5, 15)
    via_half, _, _ = half.rotate(x, x, positions)
    via_interleaved, _, _ = interleaved.rotate(x[..., perm], x[..., perm], positions)
    torch.testing.assert_close(via_interleaved, via_half[..., perm])


def test_partial_rotary_leaves_the_other_dimensions_untouched() -> None:
    spec = load_spec({**config_dict({}), "partial_rotary_factor": 0.5})
    partial = build("rope", spec=spec, head_dim=HEAD_DIM)
    full_of_slice = build("rope", base=10_000.0, rotary_dim=HEAD_DIM // 2)
    assert partial.rotary_dim == HEAD_DIM // 2
    x = torch.randn(1, 2, 7, HEAD_DIM)
    positions = torch.arange(7)
    rotated, _, _ = partial.rotate(x, x, positions)
    assert torch.equal(rotated[..., HEAD_DIM // 2 :], x[..., HEAD_DIM // 2 :])
    expected, _, _ = full_of_slice.rotate(x[..., : HEAD_DIM // 2], x[..., : HEAD_DIM // 2], positions)
    torch.testing.assert_close(rotated[..., : HEAD_DIM // 2], expected)


def test_hand_worked_rotation() -> None:
    """d = 4, base 100: θ = (1, 0.1). Position 2 rotates pair 0 by 2 rad and pair 1 by 0.2 rad."""
    encoding = build("rope", base=100.0, rotary_dim=4, angle_dtype=torch.float64)
    x = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64)  # half split: pairs (x0, x2), (x1, x3)
    out, _, _ = encoding.rotate(x.view(1, 1, 1, 4), x.view(1, 1, 1, 4), torch.tensor([2]))
    expected = [math.cos(2), -math.sin(0.2), math.sin(2), math.cos(0.2)]
    torch.testing.assert_close(out.flatten(), torch.tensor(expected, dtype=torch.float64))


def test_attention_factor_scales_norms_and_entropy_abf_scales_queries() -> None:
    yarn = rope_for("yarn")
    assert yarn.attention_factor == pytest.approx(0.1 * math.log(4.0) + 1)
    x = torch.randn(1, 1, 5, HEAD_DIM)
    out, _, _ = yarn.rotate(x, x, torch.arange(5))
    torch.testing.assert_close(out.norm(dim=-1), yarn.attention_factor * x.norm(dim=-1))

    eabf = rope_for("entropy_abf")
    positions = torch.tensor([0, 63, 127, 255])
    q, k, _ = eabf.rotate(x[:, :, :4], x[:, :, :4], positions)
    expected_scale = [1.0, 1.0, math.log(128) / math.log(64), math.log(256) / math.log(64)]
    torch.testing.assert_close(q.norm(dim=-1) / k.norm(dim=-1), torch.tensor([[expected_scale]]))
    assert not eabf.shift_invariant and rope_for("yarn").shift_invariant and not rope_for("dynamic").shift_invariant


def test_angles_stay_float32_under_bfloat16_autocast() -> None:
    encoding = build("rope", base=10_000.0, rotary_dim=HEAD_DIM)
    positions = torch.tensor([8188, 8189, 8190, 8191])
    exact = positions.double()[:, None] * encoding.inv_freq
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cos, sin = encoding.cos_sin(positions)
        q = torch.randn(1, 1, 4, HEAD_DIM, dtype=torch.bfloat16)
        rotated, _, _ = encoding.rotate(q, q, positions)
    assert cos.dtype == torch.float32 and rotated.dtype == torch.bfloat16
    torch.testing.assert_close(cos.double(), exact.cos(), atol=5e-4, rtol=0)
    torch.testing.assert_close(sin.double(), exact.sin(), atol=5e-4, rtol=0)
    # the failure this prevents: bfloat16 positions collapse to 8192 (transformers PR #29285)
    assert torch.unique(positions.to(torch.bfloat16)).numel() == 1
    wide = build("rope", base=10_000.0, rotary_dim=HEAD_DIM, angle_dtype=torch.float64)
    cos64, _ = wide.cos_sin(positions)
    assert cos64.dtype == torch.float64
    torch.testing.assert_close(cos64, exact.cos(), atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"base": 10_000.0, "spec": load_spec(config_dict({}))}, "more than one"),
        ({"rotary_dim": 7}, "rotary_dim"),
        ({"rotary_dim": 32, "head_dim": 16}, "exceeds head_dim"),
        ({"spec": load_spec(config_dict({})), "rotary_dim": 8}, "pairs"),
        ({"rotary_dim": 8, "angle_dtype": torch.bfloat16}, "angle_dtype"),
        ({"rotary_dim": 8, "bogus": 1}, "not options"),
    ],
)
def test_bad_rope_options_raise_input_errors(options: dict, fragment: str) -> None:
    with pytest.raises(RopescopeInputError, match=fragment):
        build("rope", **options)


def test_bad_positions_shape_raises() -> None:
    x = torch.randn(1, 1, 2, 8)
    with pytest.raises(RopescopeInputError, match="positions"):
        build("rope", rotary_dim=8).rotate(x, x, torch.zeros(1, 1, 2))


def test_apply_rotary_is_an_isometry_without_attention_factor() -> None:
    x = torch.randn(3, 4, 6, 8, dtype=torch.float64)
    angles = torch.rand(6, 4, dtype=torch.float64) * 100
    out = apply_rotary(x, angles.cos(), angles.sin())
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))
    assert np.isfinite(out.numpy()).all()


@pytest.mark.parametrize("interleaved", [False, True])
def test_in_place_and_autograd_paths_agree(interleaved: bool) -> None:
    x = torch.randn(2, 3, 5, 12, dtype=torch.float64)
    angles = torch.rand(5, 4, dtype=torch.float64) * 10  # rotary_dim 8 of 12: partial
    with torch.no_grad():
        fast = apply_rotary(x, angles.cos(), angles.sin(), interleaved)
    tracked = x.clone().requires_grad_()
    slow = apply_rotary(tracked, angles.cos(), angles.sin(), interleaved)
    torch.testing.assert_close(fast, slow.detach(), atol=1e-14, rtol=0)
    slow.sum().backward()
    assert tracked.grad is not None and torch.equal(fast[..., 8:], x[..., 8:])
