"""ACT sink calibration against a naive eager computation (the whole attention matrix), its column means against
the probe's streaming statistic, the model-level switch, and the greedy head search by hand."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ropescope.errors import RopescopeInputError  # noqa: E402
from ropescope.interventions.act import (  # noqa: E402
    SinkCalibration,
    act,
    calibrate,
    causal_with_columns,
    search_layers,
)
from ropescope.interventions.base import attend  # noqa: E402
from ropescope.probes.attention import AttentionProbe  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.hf]
SCALE = 8**-0.5


def _inputs(length: int = 24):  # type: ignore[no-untyped-def]
    """Queries, keys and values (2, 3, L, 8) with keys 0, 5 and 11 made attractive to every query."""
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, length, 8, generator=generator) for _ in range(3))
    direction = torch.randn(8, generator=generator)
    q += direction
    k[:, :, [0, 5, 11]] += 1.2 * direction  # sink rows put up to 96 % on sinks
    return q, k, v


def _naive(q, k, v, beta: float, threshold: float):  # type: ignore[no-untyped-def]
    """ACT on the materialised attention matrix of every (batch, head), one at a time."""
    length = q.shape[2]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    out = torch.empty_like(q)
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            a = torch.softmax((q[b, h] @ k[b, h].T * SCALE).masked_fill(~causal, float("-inf")), -1)
            means = a.sum(0) / torch.arange(length, 0, -1)
            sinks = [j for j in range(length) if means[j] > threshold][1:]
            calibrated = a.clone()
            if sinks:
                mass = a[:, sinks].sum(-1, keepdim=True)
                calibrated = a * (1 - beta * mass) / (1 - mass)
                calibrated[:, sinks] = beta * a[:, sinks]
            out[b, h] = calibrated @ v[b, h]
    return out


@pytest.mark.parametrize("block", [None, 1, 5])
@pytest.mark.parametrize(("beta", "threshold"), [(0.4, 0.1), (0.0, 0.05), (1.0, 0.1)])
def test_matches_the_naive_eager_computation(beta: float, threshold: float, block: int | None) -> None:
    """In float64 the two agree to rounding; in float32 the redistributed share, a difference, loses up to
    1/(1 − S) ≈ 25× float32 rounding in rows that put 96 % of their attention on sinks."""
    for dtype, tolerance in ((torch.float64, 1e-10), (torch.float32, 1e-4)):
        q, k, v = (x.to(dtype) for x in _inputs())
        out = attend(q, k, v, SCALE, True)[0]
        fast, found = calibrate(q, k, v, SCALE, SinkCalibration((), beta, threshold), block)
        assert found >= 6  # keys 5 and 11 in most of the 6 (batch, head) pairs
        naive = _naive(q.double(), k.double(), v.double(), beta, threshold)
        torch.testing.assert_close(fast.double(), naive, atol=tolerance, rtol=tolerance)
        if beta == 1.0:
            torch.testing.assert_close(fast, out, atol=1e-6, rtol=0)


@pytest.mark.parametrize("block", [None, 1, 7])
def test_column_means_match_the_probe_statistic(block: int | None) -> None:
    q, k, v = _inputs()
    out, lse = attend(q, k, v, SCALE, True)
    probe = AttentionProbe()
    probe.observe(0, q, k, None, SCALE, True)
    stats = probe.layers[0]
    blocked_out, blocked_lse, means = causal_with_columns(q, k, v, SCALE, block)
    torch.testing.assert_close(blocked_out, out, atol=1e-5, rtol=1e-5)  # against PyTorch's fused kernel
    torch.testing.assert_close(blocked_lse, lse, atol=1e-5, rtol=1e-5)
    expected = stats.column_mass / stats.column_queries  # summed over the batch of 2
    received = (means * torch.arange(24, 0, -1)).sum(0) / (2 * torch.arange(24, 0, -1))
    torch.testing.assert_close(received.double(), expected, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    config = transformers.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval()


def test_no_heads_changes_nothing_and_the_attention_comes_back(model) -> None:  # type: ignore[no-untyped-def]
    ids = torch.randint(0, 64, (2, 30), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = model(ids, use_cache=False).logits
        with act(model, SinkCalibration(())):
            same = model(ids, use_cache=False).logits
        with act(model, SinkCalibration(((1, 0), (1, 3)), threshold=0.05)) as state:
            calibrated = model(ids, use_cache=False).logits
    torch.testing.assert_close(same, plain, atol=1e-6, rtol=0)
    assert state.sinks and sum(state.sinks) > 0
    assert (calibrated - plain).abs().max() > 1e-6
    assert model.config._attn_implementation == "sdpa"


def test_bad_heads_and_settings(model) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RopescopeInputError, match="not a head"), act(model, SinkCalibration(((2, 0),))):
        pass
    with pytest.raises(RopescopeInputError, match="beta"):
        SinkCalibration((), beta=1.5)


def test_greedy_search_keeps_the_layers_that_help() -> None:
    def score(calibration: SinkCalibration) -> tuple[float]:  # +1 per head in layers 1 and 3, −1 elsewhere
        return (sum(1.0 if layer in (1, 3) else -1.0 for layer, _ in calibration.heads),)

    chosen, steps = search_layers(score, [0, 1, 2, 3], heads=2)
    assert chosen.heads == ((1, 0), (1, 1), (3, 0), (3, 1))
    assert [step["kept"] for step in steps] == [True, False, True, False, True]
    assert [step["score"] for step in steps] == [[0.0], [-2.0], [2.0], [0.0], [4.0]]
