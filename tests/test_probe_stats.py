"""Streamed attention statistics against a naive O(L²) computation from the full attention matrices.

The reference takes transformers' eager attention probabilities (``output_attentions=True``) and evaluates every
definition of ``ropescope.probes.summary`` with plain loops over rows, columns and distances.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ropescope.errors import RopescopeInputError  # noqa: E402
from ropescope.probes.attention import AttentionProbe, probe_attention, probe_attention_forward  # noqa: E402
from ropescope.probes.stats import log_bin_edges, log_bin_index  # noqa: E402
from ropescope.probes.summary import secondary_sinks, summarise  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.hf]
LENGTH = 97
FIRST_K = 3


def tiny_llama(seed: int = 0, heads: int = 4, kv_heads: int = 2):
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=256,
        rope_theta=100.0,
        attn_implementation="sdpa",
    )
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():  # sharper attention than the default init, so sinks and slopes are not trivial
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(8.0)
    return model


def naive_statistics(probs: np.ndarray, visible: np.ndarray, first_k: int) -> dict[str, np.ndarray]:
    """Every statistic by its definition. probs (B, H, L, L), visible (B, L, L); sums over the batch."""
    batch, heads, length, _ = probs.shape
    edges = log_bin_edges(length)
    bins = len(edges) - 1

    def bin_of(value: int) -> int:
        return next(b for b in range(bins) if edges[b] <= value < edges[b + 1])

    sums = {name: np.zeros((heads, bins)) for name in ("entropy", "normalised", "first", "first_k", "distance")}
    counts = {name: np.zeros(bins) for name in ("rows", "normalisable", "first", "first_k", "pairs", "queries")}
    column, seen_by, uniform = np.zeros((heads, length)), np.zeros(length), np.zeros(length)
    for b in range(batch):
        for i in range(length):
            keys = np.flatnonzero(visible[b, i])
            if len(keys) == 0:
                continue
            q = bin_of(i)
            row = probs[b, :, i, :]
            counts["rows"][q] += 1
            for h in range(heads):
                p = row[h, keys]
                p = p[p > 0]
                entropy = -np.sum(p * np.log(p))
                sums["entropy"][h, q] += entropy
                if len(keys) > 1:
                    sums["normalised"][h, q] += entropy / math.log(len(keys))
                if i >= 1:
                    sums["first"][h, q] += row[h, 0] if visible[b, i, 0] else 0.0
                if i >= first_k:
                    sums["first_k"][h, q] += sum(row[h, j] for j in range(first_k) if visible[b, i, j])
            counts["normalisable"][q] += len(keys) > 1
            counts["first"][q] += i >= 1
            counts["first_k"][q] += i >= first_k
            for j in keys:
                column[:, j] += row[:, j]
                seen_by[j] += 1
                uniform[j] += 1.0 / len(keys)
            for d_bin in range(bins):
                in_bin = [j for j in keys if d_bin == bin_of(i - j)]
                if in_bin:
                    sums["distance"][:, d_bin] += row[:, in_bin].sum(-1)
                    counts["pairs"][d_bin] += len(in_bin)
                    counts["queries"][d_bin] += 1

    def mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.where(count > 0, count, 1), np.nan)

    return {
        "entropy": mean(sums["entropy"], counts["rows"]),
        "normalised_entropy": mean(sums["normalised"], counts["normalisable"]),
        "mean_entropy": sums["entropy"].sum(-1) / counts["rows"].sum(),
        "first_mass": sums["first"].sum(-1) / counts["first"].sum(),
        "first_mass_by_bin": mean(sums["first"], counts["first"]),
        "first_k_mass": sums["first_k"].sum(-1) / counts["first_k"].sum(),
        "column_mean": mean(column, seen_by),
        "uniform_ratio": mean(column, uniform),
        "column_queries": seen_by,
        "distance_mass": mean(sums["distance"], counts["queries"]),
        "distance_density": mean(sums["distance"], counts["pairs"]),
    }


def naive_slope(density: np.ndarray, length: int) -> float:
    edges = log_bin_edges(length)
    xs, ys = [], []
    for b in range(1, len(edges) - 1):
        centre = math.sqrt(edges[b] * min(edges[b + 1] - 1, length - 1))
        if np.isfinite(density[b]) and density[b] > 0:
            xs.append(math.log(centre))
            ys.append(math.log(density[b]))
    x, y = np.array(xs), np.array(ys)
    return float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())


def eager_attention(model, input_ids, attention_mask=None) -> list[np.ndarray]:
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(input_ids, attention_mask=attention_mask, output_attentions=True, use_cache=False)
    finally:
        model.set_attn_implementation("sdpa")
    return [a.double().numpy() for a in out.attentions]


def streamed(model, input_ids, attention_mask=None, rows: int = 16):
    probe = AttentionProbe(first_k=FIRST_K, block_rows=rows)
    with probe_attention(model, probe), torch.no_grad():
        model(input_ids, attention_mask=attention_mask, use_cache=False)
    return summarise(probe)


@pytest.mark.parametrize("kv_heads", [4, 2], ids=["mha", "gqa"])
def test_streamed_statistics_match_naive_reference(kv_heads: int) -> None:
    model = tiny_llama(kv_heads=kv_heads)
    input_ids = torch.randint(0, 50, (1, LENGTH), generator=torch.Generator().manual_seed(1))
    summary = streamed(model, input_ids)
    causal = np.tril(np.ones((LENGTH, LENGTH), dtype=bool))[None]
    for layer, probs in enumerate(eager_attention(model, input_ids)):
        expected = naive_statistics(probs, causal, FIRST_K)
        for name, value in expected.items():
            got = getattr(summary, name)[layer] if name != "column_queries" else summary.column_queries[layer]
            np.testing.assert_allclose(got, value, rtol=1e-5, atol=1e-6, err_msg=f"layer {layer} {name}")
        for head in range(model.config.num_attention_heads):
            slope = naive_slope(expected["distance_density"][head], LENGTH)
            assert summary.distance_slope[layer, head] == pytest.approx(slope, rel=1e-5, abs=1e-6)


def test_padding_mask_reaches_the_statistics() -> None:
    model = tiny_llama(seed=3)
    input_ids = torch.randint(0, 50, (2, 40), generator=torch.Generator().manual_seed(2))
    padding = torch.ones(2, 40, dtype=torch.long)
    padding[1, :7] = 0  # left padding on the second sequence
    summary = streamed(model, input_ids, padding, rows=5)
    keys = padding.bool().numpy()
    visible = np.tril(np.ones((40, 40), dtype=bool))[None] & keys[:, None, :]
    for layer, probs in enumerate(eager_attention(model, input_ids, padding)):
        expected = naive_statistics(probs, visible, FIRST_K)
        for name in ("entropy", "normalised_entropy", "first_mass", "column_mean", "distance_density"):
            np.testing.assert_allclose(getattr(summary, name)[layer], expected[name], rtol=1e-5, atol=1e-6)


def test_uniform_attention_closed_forms() -> None:
    """q = 0 makes every causal row uniform: H_i = ln(i+1), normalised entropy 1, A[i, 0] = 1/(i+1)."""
    length, heads = 50, 2
    probe = AttentionProbe(first_k=1, block_rows=7)
    query = torch.zeros(1, heads, length, 8)
    key = torch.randn(1, 1, length, 8)
    probe.observe(0, query, key, None, 0.3, True)
    summary = summarise(probe)
    positions = np.arange(length)
    assert summary.mean_entropy[0] == pytest.approx([np.log(positions + 1).mean()] * heads)
    np.testing.assert_allclose(summary.mean_normalised_entropy[0], 1.0)
    assert summary.first_mass[0] == pytest.approx([np.mean(1.0 / (positions[1:] + 1))] * heads)
    harmonic_tail = np.array([np.sum(1.0 / (np.arange(j, length) + 1)) / (length - j) for j in range(length)])
    np.testing.assert_allclose(summary.column_mean[0, 0], harmonic_tail, rtol=1e-6)
    np.testing.assert_allclose(summary.uniform_ratio[0], 1.0, rtol=1e-6)


def test_secondary_sinks_follow_the_stated_definition() -> None:
    length = 64
    probe = AttentionProbe()
    key = torch.zeros(1, 1, length, 4)
    key[0, 0, 10, 0] = 1.0  # every query that sees key 10 puts most of its mass there
    query = torch.zeros(1, 1, length, 4)
    query[..., 0] = 6.0
    probe.observe(0, query, key, None, 1.0, True)
    summary = summarise(probe)
    sinks = secondary_sinks(summary, threshold=0.1, min_queries=16)
    assert secondary_sinks(summary) == sinks  # defaults: ACT's 0.1 and max(16, L/16) = 16 queries
    position, mean, ratio = sinks[0][0][0]
    assert position == 10
    assert mean == pytest.approx(summary.column_mean[0, 0, 10])
    assert ratio > 1
    late = secondary_sinks(summary, threshold=0.1, min_queries=length)
    assert late == [[[]]]  # no key except 0 is seen by every query, and key 0 is never a secondary sink


def test_log_bins_match_their_edges() -> None:
    edges = log_bin_edges(1000)
    assert edges[:5].tolist() == [0, 1, 2, 4, 8] and edges[-1] == 1024
    values = torch.arange(1000)
    expected = [int(np.searchsorted(edges, v, side="right") - 1) for v in range(1000)]
    assert log_bin_index(values).tolist() == expected


def test_probe_leaves_logits_unchanged_and_restores_attention() -> None:
    model = tiny_llama(seed=5)
    input_ids = torch.randint(0, 50, (2, 61), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        plain = model(input_ids, use_cache=False).logits
        probe = AttentionProbe(block_rows=8)
        with probe_attention(model, probe):
            probed = model(input_ids, use_cache=False).logits
    assert torch.equal(plain, probed)
    assert sorted(probe.layers) == [0, 1]
    assert model.config._attn_implementation == "sdpa"
    with pytest.raises(RuntimeError), probe_attention(model, AttentionProbe()):
        raise RuntimeError("interrupted")
    assert model.config._attn_implementation == "sdpa"


def test_unsupported_attention_is_refused() -> None:
    model = tiny_llama()
    attention = model.model.layers[0].self_attn
    q = torch.zeros(1, 4, 5, 8)
    with probe_attention(model, AttentionProbe()), pytest.raises(RopescopeInputError, match="soft-capping"):
        probe_attention_forward(attention, q, q[:, :2], q[:, :2], None, softcap=30.0)
    with probe_attention(model, AttentionProbe()), pytest.raises(RopescopeInputError, match="use_cache"):
        AttentionProbe().observe(0, q, q[:, :2, :3], None, 1.0, True)


def test_probe_summary_rows_side_by_side() -> None:
    from ropescope.report.probe_view import probe_summary

    results = {
        "context": 1024,
        "metrics": {
            "own": {
                "loss": {"mean_loss": 3.0, "within_training_context": 2.5, "beyond_training_context": 4.0},
                "sinks": {"heads_with_first_token_sink": [0.0, 0.5], "secondary_positions": [{"position": 3}]},
                "passkey": {"cells": [{"accuracy": 1.0}, {"accuracy": 0.5}]},
            },
            "patched": {"loss": {"mean_loss": 3.25, "within_training_context": 3.0, "beyond_training_context": 3.5}},
        },
    }
    spectra, rows = probe_summary(results)
    table = dict(rows)
    assert spectra == ["own", "patched"]
    assert table["mean loss"] == ["3 nats", "3.25 nats"]
    assert table["loss beyond the training context"] == ["4 nats", "3.5 nats"]
    assert table["heads with a first-token sink"] == ["25 %", ""]
    assert table["secondary sink positions"] == ["1", ""]
    assert table["passkey accuracy"] == ["75 %", ""]
    assert "normalised attention entropy (0–1)" not in table  # not measured: no row
