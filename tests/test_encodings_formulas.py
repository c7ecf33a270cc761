"""Each encoding's formula pinned against a small case worked by hand (or a naive loop, or transformers)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from ropescope.encodings import build  # noqa: E402
from ropescope.encodings.alibi import alibi_slopes  # noqa: E402
from ropescope.encodings.seqpe import position_digits  # noqa: E402
from ropescope.encodings.t5_bias import relative_position_bucket  # noqa: E402
from ropescope.encodings.wavelet import ricker  # noqa: E402
from ropescope.errors import RopescopeInputError  # noqa: E402
from ropescope.model import Decoder, DecoderConfig  # noqa: E402

pytestmark = pytest.mark.torch
f64 = torch.float64


def test_nope_ignores_positions_entirely() -> None:
    encoding = build("nope")
    assert encoding.kind == "none" and not list(encoding.parameters())
    torch.manual_seed(0)
    model = Decoder(DecoderConfig(30, 16, 1, 2, encoding="nope")).eval()
    ids = torch.randint(0, 30, (1, 6))
    with torch.no_grad():
        torch.testing.assert_close(model(ids), model(ids, torch.tensor([9, 2, 7, 7, 0, 5])), atol=0, rtol=0)


def test_sinusoidal_hand_worked() -> None:
    """d = 4: frequencies 1 and 10000^(-1/2) = 0.01; interleaved sin, cos."""
    table = build("sinusoidal", d_model=4, angle_dtype=f64).embed(torch.tensor([0, 1, 3]))
    expected = [[0, 1, 0, 1], [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)]]
    expected.append([math.sin(3), math.cos(3), math.sin(0.03), math.cos(0.03)])
    torch.testing.assert_close(table, torch.tensor(expected, dtype=f64))
    with pytest.raises(RopescopeInputError, match="even"):
        build("sinusoidal", d_model=5)


def test_learned_returns_its_rows() -> None:
    encoding = build("learned", d_model=3, max_positions=5)
    torch.testing.assert_close(encoding.embed(torch.tensor([4, 0])), encoding.table.weight[[4, 0]])
    with pytest.raises(RopescopeInputError, match="integers"):
        encoding.embed(torch.tensor([0.5]))


def test_t5_buckets_hand_worked() -> None:
    """32 buckets, max distance 128. Causal: 16 exact buckets 0..15; 20 → 16 + ⌊ln(20/16)/ln 8 · 16⌋ = 17."""
    relative = torch.tensor([0, -1, -15, -16, -20, -127, -128, -1000, 3])
    causal = relative_position_bucket(relative, bidirectional=False)
    assert causal.tolist() == [0, 1, 15, 16, 17, 31, 31, 31, 0]
    # bidirectional: 16 buckets per side, 8 exact; key after query gets offset 16; 9 → 8 + ⌊ln(9/8)/ln 16 · 8⌋ = 8
    both = relative_position_bucket(torch.tensor([0, 5, -5, 9, -9, 200]), bidirectional=True)
    assert both.tolist() == [0, 21, 5, 24, 8, 31]


@pytest.mark.hf
def test_t5_buckets_match_transformers() -> None:
    from transformers.models.t5.modeling_t5 import T5Attention

    relative = torch.arange(-600, 600)
    for bidirectional in (True, False):
        for buckets, distance in ((32, 128), (64, 256), (8, 20)):
            expected = T5Attention._relative_position_bucket(relative, bidirectional, buckets, distance)
            assert torch.equal(relative_position_bucket(relative, bidirectional, buckets, distance), expected)


def test_t5_bias_reads_the_table_per_head() -> None:
    encoding = build("t5_bias", num_heads=2)
    bias = encoding.attention_bias(None, torch.tensor([5]), torch.tensor([0, 4, 5]))
    buckets = [5, 1, 0]  # distances 5, 1, 0
    torch.testing.assert_close(bias[0, :, 0], encoding.table.weight[buckets].T)
    with pytest.raises(RopescopeInputError, match="multiple"):
        build("t5_bias", num_heads=2, num_buckets=7)


def test_alibi_slopes_from_the_paper() -> None:
    assert alibi_slopes(8) == [2.0**-k for k in range(1, 9)]
    assert alibi_slopes(6) == [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3]
    assert alibi_slopes(12) == [2.0**-k for k in range(1, 9)] + [2.0 ** (-k / 2) for k in (1, 3, 5, 7)]
    bias = build("alibi", num_heads=2).attention_bias(None, torch.tensor([5]), torch.tensor([2, 5]))
    torch.testing.assert_close(bias[0, :, 0], torch.tensor([[-3 * 2.0**-4, 0.0], [-3 * 2.0**-8, 0.0]]))
    with pytest.raises(RopescopeInputError, match="positive"):
        alibi_slopes(0)


def test_xpos_hand_worked() -> None:
    """d = 4, γ = 0.4: ζ = (0.4/1.4, 0.9/1.4); at position S = 512 the query pair i is scaled by ζ_i."""
    encoding = build("xpos", head_dim=4, angle_dtype=f64)
    zeta = torch.tensor([0.4 / 1.4, 0.9 / 1.4], dtype=f64)
    x = torch.ones(1, 1, 1, 4, dtype=f64)
    q, k, _ = encoding.rotate(x, x, torch.tensor([512]))

    def pair_norm(t: torch.Tensor) -> torch.Tensor:  # half-split pairs of d = 4: dims (0, 2) and (1, 3)
        return torch.stack((t[..., [0, 2]].norm(dim=-1), t[..., [1, 3]].norm(dim=-1)), -1)

    torch.testing.assert_close(pair_norm(q).flatten(), math.sqrt(2) * zeta)
    torch.testing.assert_close(pair_norm(k).flatten(), math.sqrt(2) / zeta)
    # logits carry ζ^((n − m)/S) times the RoPE score: query at 600, key at 88 → exponent 1
    rope = build("rope", base=10_000.0, rotary_dim=4, angle_dtype=f64)
    a, b = torch.randn(2, 1, 1, 1, 4, dtype=f64)
    xq, _, _ = encoding.rotate(a, a, torch.tensor([600]))
    _, xk, _ = encoding.rotate(b, b, torch.tensor([88]))
    rq, _, _ = rope.rotate(a, a, torch.tensor([600]))
    _, rk, _ = rope.rotate(b, b, torch.tensor([88]))

    def per_pair(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.stack((u[..., [0, 2]] @ v[..., [0, 2]].mT, u[..., [1, 3]] @ v[..., [1, 3]].mT))

    torch.testing.assert_close(per_pair(xq, xk).flatten(), zeta * per_pair(rq, rk).flatten())


def test_carope_starts_as_rope_and_accumulates_input_dependent_phases() -> None:
    head_dim, heads = 8, 2
    encoding = build("carope", d_model=6, num_heads=heads, head_dim=head_dim, angle_dtype=f64)
    rope = build("rope", base=10_000.0, rotary_dim=head_dim, angle_dtype=f64)
    hidden = torch.randn(1, 5, 6, dtype=f64)
    x = torch.randn(1, heads, 5, head_dim, dtype=f64)
    got, _, _ = encoding.rotate(x, x, torch.arange(5), hidden)
    expected, _, _ = rope.rotate(x, x, torch.arange(1, 6))  # Σ_{t=1..m} θ_1^i = m·θ_i
    torch.testing.assert_close(got, expected)
    # hand-worked: head 0 with W row (1, 0, …), bias 0: f(x_t) = 1/(softplus(x_t0) + 1), φ_i(m) = Σ f^i
    with torch.no_grad():
        encoding.frequency.weight.zero_()
        encoding.frequency.weight[0, 0] = 1.0
        encoding.frequency.bias.zero_()
    hidden = torch.zeros(1, 3, 6, dtype=f64)
    hidden[0, :, 0] = torch.tensor([0.0, 1.0, -2.0], dtype=f64)
    f = 1 / (torch.log1p(torch.exp(hidden[0, :, 0])) + 1)
    phases = encoding.phases(hidden)
    for i in range(head_dim // 2):
        torch.testing.assert_close(phases[0, 0, :, i], torch.cumsum(f**i, 0))
    f_other = 1 / (math.log(2) + 1)  # head 1 sees zero logits
    torch.testing.assert_close(phases[0, 1, :, 1], f_other * torch.arange(1, 4, dtype=f64))
    with pytest.raises(RopescopeInputError, match="hidden"):
        encoding.rotate(x, x, torch.arange(5))


def test_comrope_with_2x2_blocks_is_rope_with_the_generator_frequency() -> None:
    encoding = build("comrope_ap", num_heads=1, head_dim=4, block_size=2, angle_dtype=f64)
    with torch.no_grad():
        encoding.generators.zero_()
        encoding.generators[0, 0, 1, 0] = 0.5  # S = P − Pᵀ = [[0, −0.5], [0.5, 0]]: rotation by 0.5·x
        encoding.generators[0, 1, 1, 0] = 0.01
    rope = build("rope", base=1.0, rotary_dim=4, interleaved=True, angle_dtype=f64)
    rope.inv_freq = torch.tensor([0.5, 0.01], dtype=f64)
    x = torch.randn(1, 1, 6, 4, dtype=f64)
    positions = torch.arange(6) * 3
    got, _, _ = encoding.rotate(x, x, positions)
    expected, _, _ = rope.rotate(x, x, positions)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("name", ["comrope_ap", "comrope_ld"])
def test_comrope_satisfies_the_rope_equation_on_two_axes(name: str) -> None:
    """R(x)ᵀR(y) = R(y − x) for random trained-looking parameters, because the generators commute."""
    torch.manual_seed(0)
    encoding = build(name, num_heads=2, head_dim=8, block_size=4, num_axes=2, angle_dtype=f64)
    if name == "comrope_ld":
        with torch.no_grad():
            encoding.axis_scales.copy_(torch.randn_like(encoding.axis_scales))
    x, y = torch.tensor([[1.5, -2.0]], dtype=f64), torch.tensor([[4.0, 0.5]], dtype=f64)
    rx, ry, rd = (encoding.rotations(p)[0, :, 0] for p in (x, y, y - x))
    torch.testing.assert_close(rx.transpose(-1, -2) @ ry, rd)
    # the property is not automatic: two non-commuting skew generators break it
    a, b = torch.randn(2, 4, 4, dtype=f64)
    a, b = a - a.T, b - b.T

    def rotation(p: torch.Tensor) -> torch.Tensor:
        return torch.linalg.matrix_exp(p[0] * a + p[1] * b)

    assert not torch.allclose(rotation(x[0]).T @ rotation(y[0]), rotation((y - x)[0]))


def test_wavelet_bias_matches_a_naive_loop() -> None:
    assert ricker(torch.tensor(0.0)) == 1 and ricker(torch.tensor(1.0)) == 0
    assert ricker(torch.tensor(2.0)).item() == pytest.approx(-3 * math.exp(-2))
    encoding = build("wavelet", head_dim=8, num_scales=4)  # scales 1,1,2,2,4,4,8,8; shifts 0,1,0,2,0,4,0,8
    assert encoding.scale.tolist() == [1, 1, 2, 2, 4, 4, 8, 8]
    assert encoding.shift.tolist() == [0, 1, 0, 2, 0, 4, 0, 8]
    q = torch.randn(2, 3, 4, 8, dtype=f64)
    query_positions, key_positions = torch.tensor([3, 4, 5, 9]), torch.tensor([0, 1, 2, 3, 4, 5, 9])
    bias = encoding.attention_bias(q, query_positions, key_positions)
    for m_index, m in enumerate(query_positions.tolist()):
        for n_index, n in enumerate(key_positions.tolist()):
            p = [
                ricker(torch.tensor((m - n - b) / a, dtype=f64)) / math.sqrt(a)
                for a, b in zip(encoding.scale.tolist(), encoding.shift.tolist(), strict=True)
            ]
            expected = q[:, :, m_index] @ torch.stack(p) / math.sqrt(8)
            torch.testing.assert_close(bias[:, :, m_index, n_index], expected)
    with pytest.raises(RopescopeInputError, match="divide"):
        build("wavelet", head_dim=8, num_scales=3)


def test_axial_rope_hand_worked_and_two_dimensional_relativity() -> None:
    """head_dim 4: one pair per axis, θ = 1; the first pair turns by the row, the second by the column."""
    encoding = build("axial_rope", head_dim=4, angle_dtype=f64)
    x = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=f64).view(1, 1, 1, 4)
    out, _, _ = encoding.rotate(x, x, torch.tensor([[2, 5]]))
    expected = [math.cos(2), math.cos(5), math.sin(2), math.sin(5)]
    torch.testing.assert_close(out.flatten(), torch.tensor(expected, dtype=f64))
    encoding = build("axial_rope", head_dim=8, angle_dtype=f64)
    q, k = torch.randn(2, 8, dtype=f64)
    points = torch.tensor([[0, 0], [1, 3], [2, 1], [4, 4]])

    def score(a: torch.Tensor, b: torch.Tensor) -> float:
        rotated_q = encoding.rotate(q.view(1, 1, 1, 8), q.view(1, 1, 1, 8), a)[0]
        return (rotated_q @ encoding.rotate(k.view(1, 1, 1, 8), k.view(1, 1, 1, 8), b)[1].mT).item()

    for a in points:
        for b in points:
            assert score(a[None], b[None]) == pytest.approx(score((a + 7)[None], (b + 7)[None]), abs=1e-10)
    with pytest.raises(RopescopeInputError, match="multiple of 4"):
        build("axial_rope", head_dim=6)


def test_fire_bias_hand_worked_from_a_fixed_mlp() -> None:
    """c = 1 (ψ = ln(1 + x)), L = 2, width 2: f(x) = (relu(x) + 0.25, 2·relu(0.7 − x) − 1) for x ≥ 0."""
    encoding = build("fire", num_heads=2, mlp_width=2, init_c=1.0, init_threshold=2.0).double()
    first, _, second = encoding.mlp
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        first.bias.copy_(torch.tensor([0.0, 0.7]))
        second.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        second.bias.copy_(torch.tensor([0.25, -1.0]))
    positions = torch.tensor([0, 1, 3])
    bias = encoding.attention_bias(None, positions, positions)
    assert bias.shape == (1, 2, 3, 3)
    # queries 0 and 1 normalise by ψ(max(2, i)) = ln 3, query 3 by ln 4 (each + ε = 1e-6); ψ(|i − j|) = ln(1 + |i − j|)
    ln3, ln4 = math.log(3) + 1e-6, math.log(4) + 1e-6
    x = {(0, 0): 0.0, (1, 0): math.log(2) / ln3, (1, 1): 0.0, (3, 0): math.log(4) / ln4, (3, 1): math.log(3) / ln4}
    x[(3, 3)] = 0.0
    for (i, j), value in x.items():
        expected = [value + 0.25, 2 * max(0.7 - value, 0.0) - 1]
        got = bias[0, :, [0, 1, 3].index(i), [0, 1, 3].index(j)]
        torch.testing.assert_close(got, torch.tensor(expected, dtype=f64))
    # future keys (masked by the decoder) see |i − j|: query 0, key 3 → ln 4 / ln 3
    assert bias[0, 0, 0, 2].item() == pytest.approx(math.log(4) / ln3 + 0.25)
    # c and the threshold multiplier enter through their absolute values; batched positions keep their batch
    with torch.no_grad():
        encoding.c.neg_()
        encoding.threshold_scale.neg_()
    batched = encoding.attention_bias(None, positions.expand(2, 3), positions.expand(2, 3))
    torch.testing.assert_close(batched, bias.expand(2, -1, -1, -1))
    with pytest.raises(RopescopeInputError, match="positive"):
        build("fire", num_heads=2, init_c=0.0)


def test_seqpe_digits_hand_worked() -> None:
    assert position_digits(torch.tensor([[407], [5]]), 4).tolist() == [[0, 4, 0, 7], [0, 0, 0, 5]]
    assert position_digits(torch.tensor([[2, 3]]), 2).tolist() == [[0, 2, 0, 3]]  # the paper's figure
    assert position_digits(torch.tensor([99_999]).view(1, 1), 5).tolist() == [[9, 9, 9, 9, 9]]


def naive_seqpe(encoding: torch.nn.Module, position: tuple[int, ...], max_digits: int, heads: int) -> torch.Tensor:
    """SeqPE's e(p) by its definition, one token and one head at a time (LayerNorm ε = 1e-5, tanh GELU)."""

    def layer_norm(x: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
        mean = sum(x.tolist()) / len(x)
        variance = sum((v - mean) ** 2 for v in x.tolist()) / len(x)
        return (x - mean) / math.sqrt(variance + 1e-5) * norm.weight + norm.bias

    def gelu(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))

    digits = [int(c) for p in position for c in f"{p:0{max_digits}d}"]
    tokens = []
    for place, digit in enumerate(digits):
        vector = encoding.digit_embed.weight[digit] + encoding.place_embed.weight[place]
        if len(position) > 1:
            vector = vector + encoding.axis_embed[place // max_digits]
        tokens.append(vector)
    tokens.append(encoding.summary)
    width = tokens[0].shape[0]
    size = width // heads
    for block in encoding.blocks:
        normed = [layer_norm(t, block.attention_norm) for t in tokens]
        qkv = [block.qkv.weight @ t + block.qkv.bias for t in normed]
        mixed = []
        for t in range(len(tokens)):
            out = []
            for h in range(heads):
                q = qkv[t][h * size : (h + 1) * size]
                keys = [qkv[s][width + h * size : width + (h + 1) * size] for s in range(t + 1)]
                values = [qkv[s][2 * width + h * size : 2 * width + (h + 1) * size] for s in range(t + 1)]
                scores = [math.exp(float(q @ k) / math.sqrt(size)) for k in keys]
                out.append(sum(w / sum(scores) * v for w, v in zip(scores, values, strict=True)))
            mixed.append(block.out.weight @ torch.cat(out) + block.out.bias)
        tokens = [t + m for t, m in zip(tokens, mixed, strict=True)]
        tokens = [
            t
            + block.down.weight @ gelu(block.up.weight @ layer_norm(t, block.mlp_norm) + block.up.bias)
            + block.down.bias
            for t in tokens
        ]
    return encoding.project.weight @ layer_norm(tokens[-1], encoding.norm) + encoding.project.bias


@pytest.mark.parametrize("dims", [1, 2])
def test_seqpe_matches_a_naive_loop(dims: int) -> None:
    torch.manual_seed(0)
    options = {"d_model": 3, "max_digits": 3, "dims": dims, "encoder_dim": 4, "encoder_heads": 2, "encoder_layers": 2}
    encoding = build("seqpe", **options).double()
    with torch.no_grad():  # every parameter away from its initialisation, LayerNorms included
        for parameter in encoding.parameters():
            parameter.copy_(torch.randn_like(parameter))
    points = [(0, 7), (42, 999), (305, 30), (42, 999)] if dims == 2 else [(0,), (7,), (305,), (999,), (7,)]
    got = encoding.embed(torch.tensor(points).squeeze(-1))
    with torch.no_grad():
        expected = torch.stack([naive_seqpe(encoding, p, 3, 2) for p in points])
    torch.testing.assert_close(got, expected)


def test_seqpe_refuses_positions_its_digits_cannot_hold() -> None:
    encoding = build("seqpe", d_model=4, max_digits=2, encoder_heads=2)
    encoding.embed(torch.tensor([0, 99]))
    with pytest.raises(RopescopeInputError, match=r"0\.\.99") as error:
        encoding.embed(torch.tensor([5, 100]))
    assert "max_digits=3" in error.value.fix and "\n" not in str(error.value)
    with pytest.raises(RopescopeInputError, match=r"-1\.\.3"):
        encoding.embed(torch.tensor([-1, 3]))
    with pytest.raises(RopescopeInputError, match="whole numbers"):
        encoding.embed(torch.tensor([0.5]))
    with pytest.raises(RopescopeInputError, match="divides"):
        build("seqpe", d_model=6, encoder_heads=4)


def test_seqpe_regularisers_by_their_definitions() -> None:
    torch.manual_seed(1)
    encoding = build("seqpe", d_model=4, max_digits=3, encoder_heads=2).double()
    with torch.no_grad():
        for parameter in encoding.parameters():
            parameter.copy_(torch.randn_like(parameter))
    e = {p: encoding.embed(torch.tensor([p]))[0].detach() for p in range(130)}
    # contrastive: pivot 5 → distances 16, 4, 4 to (9, 3, 7): the first nearest, 3; pivot 40 → 37
    pivots, candidates = torch.tensor([5, 40]), torch.tensor([[9, 3, 7], [0, 44, 37]])
    expected = 0.0
    for pivot, row, target in ((5, [9, 3, 7], 1), (40, [0, 44, 37], 2)):
        logits = [float(e[pivot] @ e[c]) for c in row]
        expected += (math.log(sum(math.exp(v) for v in logits)) - logits[target]) / 2
    assert encoding.contrastive_loss(pivots, candidates).item() == pytest.approx(expected)

    # distillation: symmetric KL between the rows of softmax(E Eᵀ) of teacher 0, 1, 2 and student 120, 121, 122
    def similarity(group: list[int]) -> list[list[float]]:
        rows = []
        for a in group:
            weights = [math.exp(float(e[a] @ e[b])) for b in group]
            rows.append([w / sum(weights) for w in weights])
        return rows

    teacher, student = similarity([0, 1, 2]), similarity([120, 121, 122])
    kl = sum(
        t * math.log(t / s) + s * math.log(s / t)
        for t_row, s_row in zip(teacher, student, strict=True)
        for t, s in zip(t_row, s_row, strict=True)
    )
    loss = encoding.distillation_loss(torch.tensor([[0, 1, 2]]), torch.tensor([[120, 121, 122]]))
    assert loss.item() == pytest.approx(kl / 3)
    assert encoding.distillation_loss(torch.tensor([[4, 9]]), torch.tensor([[4, 9]])).item() == pytest.approx(0.0)
