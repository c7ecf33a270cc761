"""The attention probes on the reference decoder (``ropescope.model.Decoder``).

Reference: the decoder's full attention matrices computed naively in float64 from the q, k and additive mask its
layers hand to SDPA (checked against SDPA's own output, so any bias the encoding adds is in them), then every
statistic by its definition (``naive_statistics`` of test_probe_stats). Also: logits bit-identical with and
without the probe, the hook restored, the runner's loss against cross-entropy of the decoder's own logits, and a
run resumed from a layer checkpoint against an uninterrupted run.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from ropescope.errors import RopescopeInputError  # noqa: E402
from ropescope.model import Decoder, DecoderConfig, sdpa_attention  # noqa: E402
from ropescope.probes.attention import AttentionProbe, probe_attention  # noqa: E402
from ropescope.probes.models import wrap_decoder  # noqa: E402
from ropescope.probes.run import ProbeRun, ProbeSettings  # noqa: E402
from ropescope.probes.summary import summarise  # noqa: E402
from test_probe_model import interrupted_then_resumed, without_time  # noqa: E402
from test_probe_stats import naive_slope, naive_statistics  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.hf]
LENGTH = 61
FIRST_K = 3
ENCODINGS = ("rope", "alibi", "t5_bias", "wavelet")


def tiny_decoder(encoding: str, seed: int = 0) -> Decoder:
    torch.manual_seed(seed)
    options = {"num_buckets": 8, "max_distance": 32} if encoding == "t5_bias" else {}
    config = DecoderConfig(
        vocab_size=50, d_model=32, n_layers=2, n_heads=4, encoding=encoding, encoding_options=options
    )
    model = Decoder(config).eval()
    with torch.no_grad():  # away from the near-uniform init, so sinks, slopes and biases all matter
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return model


def naive_attention(model: Decoder, tokens: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
    """(probabilities (B, H, L, L) in float64, the same without the additive bias) for every layer."""
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def record(layer, q, k, v, mask, causal):
        out = sdpa_attention(layer, q, k, v, mask, causal)
        scores = q.double() @ k.double().transpose(-1, -2) / q.shape[-1] ** 0.5
        hidden = torch.ones(scores.shape[-2:], dtype=torch.bool).triu(1)
        bias = torch.zeros(()) if mask is None or mask.dtype == torch.bool else mask.double().masked_fill(hidden, 0)
        probs = torch.softmax((scores + bias).masked_fill(hidden, float("-inf")), dim=-1)
        torch.testing.assert_close((probs @ v.double()).float(), out, rtol=1e-5, atol=1e-5)  # what SDPA computed
        unbiased = torch.softmax(scores.masked_fill(hidden, float("-inf")), dim=-1)
        seen.append((probs.numpy(), unbiased.numpy()))
        return out

    with torch.no_grad(), model.attention_function(record):
        model(tokens)
    return seen


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_streamed_decoder_statistics_match_naive_reference(encoding: str) -> None:
    model = tiny_decoder(encoding)
    tokens = torch.randint(0, 50, (2, LENGTH), generator=torch.Generator().manual_seed(1))
    probe = AttentionProbe(first_k=FIRST_K, block_rows=8)
    with probe_attention(model, probe), torch.no_grad():
        model(tokens)
    summary = summarise(probe)
    causal = np.tril(np.ones((LENGTH, LENGTH), dtype=bool))[None].repeat(2, 0)
    for layer, (probs, unbiased) in enumerate(naive_attention(model, tokens)):
        expected = naive_statistics(probs, causal, FIRST_K)
        for name, value in expected.items():
            got = getattr(summary, name)[layer]
            np.testing.assert_allclose(got, value, rtol=1e-5, atol=1e-6, err_msg=f"{encoding} layer {layer} {name}")
        for head in range(model.config.n_heads):
            slope = naive_slope(expected["distance_density"][head], LENGTH)
            assert summary.distance_slope[layer, head] == pytest.approx(slope, rel=1e-5, abs=1e-6)
        if encoding != "rope":  # the bias moves the statistics: leaving it out would fail the checks above
            without = naive_statistics(unbiased, causal, FIRST_K)["mean_entropy"]
            assert np.abs(without - expected["mean_entropy"]).max() > 1e-3  # 100× the tolerance


@pytest.mark.parametrize("encoding", ["rope", "alibi"])
def test_probe_leaves_decoder_logits_unchanged_and_restores_the_hook(encoding: str) -> None:
    model = tiny_decoder(encoding, seed=4)
    tokens = torch.randint(0, 50, (2, 45), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        plain = model(tokens)
        probe = AttentionProbe(block_rows=7)
        with probe_attention(model, probe):
            probed = model(tokens)
    assert torch.equal(plain, probed)
    assert sorted(probe.layers) == [0, 1]
    assert all(block.attention.attend is sdpa_attention for block in model.blocks)
    with pytest.raises(RuntimeError), probe_attention(model, AttentionProbe()):
        raise RuntimeError("interrupted")
    assert all(block.attention.attend is sdpa_attention for block in model.blocks)


def test_probe_run_on_a_decoder(tmp_path) -> None:
    model = tiny_decoder("alibi", seed=2)
    ids = torch.randint(0, 50, (90,), generator=torch.Generator().manual_seed(2)).tolist()
    settings = ProbeSettings(context=80, metrics=("entropy", "sinks", "distance", "loss"), loss_bins=4)
    results = ProbeRun(wrap_decoder(model), ids, settings, lambda r: None).run()
    assert results["complete"] and results["model"]["encoding"] == "alibi"
    assert results["spectrum"]["own"] == {"encoding": "alibi", "training_context": None}
    own = results["metrics"]["own"]
    assert set(own) == {"entropy", "sinks", "distance", "loss"}
    assert np.asarray(own["entropy"]["normalised_entropy"]).shape[:2] == (2, 4)
    window = torch.tensor([ids[:80]])
    with torch.no_grad():
        logits = model(window)
    reference = torch.nn.functional.cross_entropy(logits[0, :-1], window[0, 1:]).item()
    assert own["loss"]["mean_loss"] == pytest.approx(reference, rel=1e-5)


@pytest.mark.parametrize("encoding", ["rope", "alibi", "sinusoidal"])
def test_decoder_forward_pass_resumes_from_its_layer_checkpoint(tmp_path, encoding: str) -> None:
    model = tiny_decoder(encoding, seed=3)
    ids = torch.randint(0, 50, (90,), generator=torch.Generator().manual_seed(3)).tolist()
    settings = ProbeSettings(context=80, metrics=("entropy", "sinks", "distance", "loss"), loss_bins=4)
    fresh = ProbeRun(wrap_decoder(model), ids, settings, lambda r: None).run()
    resumed, reported = interrupted_then_resumed(wrap_decoder(model), ids, settings, tmp_path, ("own", 1))
    assert reported == [1, 2, 2]
    assert without_time(resumed) == without_time(fresh)


def test_decoder_without_tokenizer_refuses_passkey_and_patch() -> None:
    loaded = wrap_decoder(tiny_decoder("rope"))
    with pytest.raises(RopescopeInputError, match="tokenizer"):
        ProbeRun(loaded, list(range(40)), ProbeSettings(context=30), lambda r: None)
    with pytest.raises(RopescopeInputError, match="rotary spec"):
        ProbeRun(loaded, list(range(40)), ProbeSettings(context=30, metrics=("loss",), patch="yarn:4"), lambda r: None)
    with pytest.raises(RopescopeInputError, match="Decoder"):
        wrap_decoder(torch.nn.Linear(2, 2))
