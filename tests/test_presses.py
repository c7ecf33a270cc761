"""Presses on a tiny random Llama (GQA, batch 2): ratio 0 changes nothing, hooks go away, memory shrinks, and
the streaming press's re-rotated keys equal keys that transformers computes at the new positions."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ropescope.errors import RopescopeInputError  # noqa: E402
from ropescope.presses.base import attention_modules, cache_bytes, press  # noqa: E402
from ropescope.presses.streaming import StreamingPress  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.hf]


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    config = transformers.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rope_parameters={"rope_type": "yarn", "factor": 2.0,
        "rope_theta": 10000.0, "original_max_position_embeddings": 64},
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval()


def _prefill(model, ids):  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return model(ids, use_cache=True)


def test_ratio_zero_is_bit_identical_and_hooks_go_away(model) -> None:  # type: ignore[no-untyped-def]
    ids = torch.randint(0, 64, (2, 40), generator=torch.Generator().manual_seed(1))
    plain = _prefill(model, ids)
    with press(model, StreamingPress(ratio=0.0)):
        pressed = _prefill(model, ids)
    assert torch.equal(plain.logits, pressed.logits)
    assert cache_bytes(plain.past_key_values) == cache_bytes(pressed.past_key_values)
    assert all(not m._forward_hooks for m in attention_modules(model))


def test_hooks_removed_after_an_exception(model) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError), press(model, StreamingPress(ratio=0.5)):
        raise RuntimeError("inside")
    assert all(not m._forward_hooks for m in attention_modules(model))


def test_streaming_keeps_sinks_and_window_with_keys_at_their_new_positions(model) -> None:  # type: ignore[no-untyped-def]
    ids = torch.randint(0, 64, (2, 40), generator=torch.Generator().manual_seed(2))
    full = _prefill(model, ids).past_key_values
    with press(model, StreamingPress(ratio=0.5, sinks=4)):
        out = _prefill(model, ids)
    cache = out.past_key_values
    assert cache.get_seq_length() == 20
    assert cache_bytes(cache) == cache_bytes(full) // 2  # (1 − ratio) × full
    for layer_idx, (kept, whole) in enumerate(zip(cache.layers, full.layers, strict=True)):
        torch.testing.assert_close(kept.keys[:, :, :4], whole.keys[:, :, :4])  # sinks untouched
        torch.testing.assert_close(kept.values[:, :, 4:], whole.values[:, :, 24:])  # the 16 most recent
        # transformers' own rotary at the new positions 4..19, applied to the same un-rotated keys
        rotary = model.model.rotary_emb
        unrotated = _unrotated(model, ids, layer_idx)[:, :, 24:]
        cos, sin = rotary(unrotated, torch.arange(4, 20)[None])
        expected = transformers.models.llama.modeling_llama.apply_rotary_pos_emb(unrotated, unrotated, cos, sin)[1]
        torch.testing.assert_close(kept.keys[:, :, 4:], expected, atol=1e-5, rtol=1e-4)
    with torch.no_grad():  # decoding continues on the compressed cache
        step = model(ids[:, -1:], past_key_values=cache, use_cache=True)
    assert step.logits.shape == (2, 1, 64) and torch.isfinite(step.logits).all()


def _unrotated(model, ids, layer_idx: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """The layer's keys before RoPE, from its input hidden states (captured by a hook)."""
    captured = {}
    attention = model.model.layers[layer_idx].self_attn
    handle = attention.register_forward_hook(
        lambda module, args, kwargs, output: captured.setdefault("hidden", kwargs["hidden_states"]), with_kwargs=True
    )
    try:
        with torch.no_grad():
            model(ids)
    finally:
        handle.remove()
    hidden = captured["hidden"]
    shape = (*hidden.shape[:-1], -1, attention.head_dim)
    with torch.no_grad():
        return attention.k_proj(hidden).view(shape).transpose(1, 2)


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_bad_ratio(ratio: float) -> None:
    with pytest.raises(RopescopeInputError, match="ratio"):
        StreamingPress(ratio=ratio)


def test_streaming_refuses_to_keep_fewer_than_its_sinks(model) -> None:  # type: ignore[no-untyped-def]
    ids = torch.randint(0, 64, (1, 10))
    with (
        pytest.raises(RopescopeInputError, match="fewer than the 8 it always keeps"),
        press(model, StreamingPress(0.5, sinks=8)),
    ):
        _prefill(model, ids)


def _call(model, ids, layer_idx: int):  # type: ignore[no-untyped-def]
    """The layer's Call (hidden states, cos, sin) and its full cache keys for a prefill of ``ids``."""
    from ropescope.presses.base import Call

    captured = {}
    attention = model.model.layers[layer_idx].self_attn

    def grab(module, args, kwargs, output):  # type: ignore[no-untyped-def]
        captured["call"] = Call(kwargs["hidden_states"], *kwargs["position_embeddings"])

    handle = attention.register_forward_hook(grab, with_kwargs=True)
    try:
        cache = _prefill(model, ids).past_key_values
    finally:
        handle.remove()
    return attention, captured["call"], cache.layers[layer_idx]


def test_snapkv_scores_against_a_naive_loop(model) -> None:  # type: ignore[no-untyped-def]
    from ropescope.presses.scored import SnapKVPress

    ids = torch.randint(0, 64, (2, 24), generator=torch.Generator().manual_seed(3))
    attention, call, layer = _call(model, ids, 1)
    press_ = SnapKVPress(ratio=0.5, window=6, kernel=1)
    got = press_.score(attention, layer.keys, layer.values, call)
    rotary = transformers.models.llama.modeling_llama.apply_rotary_pos_emb
    q = attention.q_proj(call.hidden).view(2, 24, 4, 8).transpose(1, 2)
    q, _ = rotary(q, q, call.cos, call.sin)
    expected = torch.zeros(2, 2, 24)
    for b in range(2):
        for h in range(4):
            for i in range(18, 24):  # the window's queries, each over the keys up to its own position
                logits = torch.stack([q[b, h, i] @ layer.keys[b, h // 2, j] / 8**0.5 for j in range(i + 1)])
                expected[b, h // 2, : i + 1] += logits.softmax(0) / 2
    expected[..., 18:] = torch.inf
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_expected_attention_averages_the_rotation_exactly(model) -> None:  # type: ignore[no-untyped-def]
    from ropescope.presses.scored import ExpectedAttentionPress

    ids = torch.randint(0, 64, (1, 30), generator=torch.Generator().manual_seed(4))
    attention, call, layer = _call(model, ids, 0)
    got = ExpectedAttentionPress(ratio=0.5, window=8, horizon=100).score(attention, layer.keys, layer.values, call)
    raw = attention.q_proj(call.hidden[:, -8:]).view(1, 8, 4, 8).transpose(1, 2).mean(dim=2, keepdim=True)
    cos, sin = model.model.rotary_emb(raw, torch.arange(30, 130)[None])  # transformers' own rotary, YaRN factor
    rotated = transformers.models.llama.modeling_llama.apply_rotary_pos_emb(
        raw.expand(-1, -1, 100, -1), raw.expand(-1, -1, 100, -1), cos, sin
    )[0].mean(dim=2)
    logits = torch.einsum("bhd,bhtd->bht", rotated, layer.keys.repeat_interleave(2, dim=1)) / 8**0.5
    expected = logits.view(1, 2, 2, 30).mean(dim=2)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["snapkv", "expected"])
def test_scored_presses_keep_the_best_and_decode(model, name: str) -> None:  # type: ignore[no-untyped-def]
    from ropescope.presses.scored import ExpectedAttentionPress, SnapKVPress

    chosen = {"snapkv": SnapKVPress(ratio=0.75, window=4), "expected": ExpectedAttentionPress(ratio=0.75, protect=4)}
    ids = torch.randint(0, 64, (2, 40), generator=torch.Generator().manual_seed(5))
    with press(model, chosen[name]):
        cache = _prefill(model, ids).past_key_values
    assert cache.get_seq_length() == 10 and cache_bytes(cache) * 4 == cache_bytes(_prefill(model, ids).past_key_values)
    with torch.no_grad():  # kept tokens keep their positions: the next one is at 40
        step = model(ids[:, -1:], past_key_values=cache, position_ids=torch.tensor([[40], [40]]), use_cache=True)
    assert torch.isfinite(step.logits).all()


def test_triattention_series_against_transformers_rotary(model) -> None:  # type: ignore[no-untyped-def]
    """The folded series equals the mean over future offsets of the centre query's logit, rotated by
    transformers' own rotary (YaRN, attention factor included) at T + d, plus the magnitude term by hand."""
    from ropescope.presses.triattention import TriAttentionPress

    ids = torch.randint(0, 64, (2, 30), generator=torch.Generator().manual_seed(6))
    attention, call, layer = _call(model, ids, 1)
    got = TriAttentionPress(ratio=0.5, max_offset=256, recent=0).score(attention, layer.keys, layer.values, call)
    raw = attention.q_proj(call.hidden).view(2, 30, 4, 8).transpose(1, 2)  # [B, H, T, D] before RoPE
    centre = raw.mean(dim=2, keepdim=True)
    offsets = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128, 256])
    cos, sin = model.model.rotary_emb(centre, (30 + offsets)[None])
    rotated = transformers.models.llama.modeling_llama.apply_rotary_pos_emb(
        centre.expand(-1, -1, 9, -1), centre.expand(-1, -1, 9, -1), cos, sin
    )[0]
    keys = layer.keys.repeat_interleave(2, dim=1)
    series = torch.einsum("bhod,bhtd->bht", rotated, keys) / 9 / 8**0.5
    factor = model.model.rotary_emb.attention_scaling
    expected = torch.zeros(2, 4, 30)
    for b in range(2):
        for h in range(4):
            for f in range(4):  # pairs (f, f + 4)
                q_abs = torch.stack([raw[b, h, :, f], raw[b, h, :, f + 4]]).norm(dim=0)
                k_abs = torch.stack([keys[b, h, :, f], keys[b, h, :, f + 4]]).norm(dim=0)
                c_abs = torch.stack([centre[b, h, 0, f], centre[b, h, 0, f + 4]]).norm()
                expected[b, h] += factor * (q_abs.mean() - c_abs) * k_abs / 8**0.5
    expected = (expected + series).view(2, 2, 2, 30).mean(dim=2)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_dapq_scores_with_queries_rotated_at_future_positions(model) -> None:  # type: ignore[no-untyped-def]
    from ropescope.presses.dapq import DapQPress

    ids = torch.randint(0, 64, (2, 24), generator=torch.Generator().manual_seed(7))
    attention, call, layer = _call(model, ids, 0)
    got = DapQPress(ratio=0.5, window=6, kernel=1).score(attention, layer.keys, layer.values, call)
    raw = attention.q_proj(call.hidden[:, -6:]).view(2, 6, 4, 8).transpose(1, 2)
    cos, sin = model.model.rotary_emb(raw, torch.arange(24, 30)[None])  # the next six positions
    q = transformers.models.llama.modeling_llama.apply_rotary_pos_emb(raw, raw, cos, sin)[0]
    expected = torch.zeros(2, 2, 24)
    for b in range(2):
        for h in range(4):
            for w in range(6):  # every future query sees every cached key
                logits = torch.stack([q[b, h, w] @ layer.keys[b, h // 2, j] / 8**0.5 for j in range(24)])
                expected[b, h // 2] += logits.softmax(0) / 2
    expected[..., 18:] = torch.inf
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


ALL_PRESSES = ["none", "streaming", "snapkv", "expected", "triattention", "dapq"]


@pytest.mark.parametrize("name", ALL_PRESSES)
def test_every_press_at_ratio_zero_changes_nothing_and_the_hook_equals_the_captured_path(model, name: str) -> None:  # type: ignore[no-untyped-def]
    from ropescope.presses import make_press
    from ropescope.presses.base import captured_calls, compressed_cache

    ids = torch.randint(0, 64, (2, 320), generator=torch.Generator().manual_seed(8))
    plain = _prefill(model, ids)
    with press(model, make_press(name, 0.0)):
        pressed = _prefill(model, ids)
    assert torch.equal(plain.logits, pressed.logits)
    for kept, whole in zip(pressed.past_key_values.layers, plain.past_key_values.layers, strict=True):
        assert torch.equal(kept.keys, whole.keys) and torch.equal(kept.values, whole.values)
    if name == "none":
        return
    chosen = make_press(name, 0.5)
    with press(model, chosen):
        hooked = _prefill(model, ids).past_key_values
    with captured_calls(model) as calls:
        full = _prefill(model, ids).past_key_values
    rebuilt = compressed_cache(model, full, calls, chosen)
    for a, b in zip(hooked.layers, rebuilt.layers, strict=True):
        assert a.keys.shape[2] == 160
        torch.testing.assert_close(a.keys, b.keys, atol=0, rtol=0)
        torch.testing.assert_close(a.values, b.values, atol=0, rtol=0)


def test_a_question_fed_after_the_prefill_is_not_compressed(model) -> None:  # type: ignore[no-untyped-def]
    from ropescope.presses.scored import SnapKVPress

    ids = torch.randint(0, 64, (1, 48), generator=torch.Generator().manual_seed(9))
    with press(model, SnapKVPress(ratio=0.5, window=4)), torch.no_grad():
        cache = model(ids[:, :40], use_cache=True).past_key_values  # compressed to 20
        question = model(ids[:, 40:], past_key_values=cache, position_ids=torch.arange(40, 48)[None], use_cache=True)
    assert question.past_key_values.get_seq_length() == 28  # 20 kept + the 8 question tokens, untouched


def test_triattention_always_keeps_its_recent_window(model) -> None:  # type: ignore[no-untyped-def]
    from ropescope.presses.triattention import TriAttentionPress

    ids = torch.randint(0, 64, (1, 64), generator=torch.Generator().manual_seed(11))
    attention, call, layer = _call(model, ids, 0)
    scores = TriAttentionPress(ratio=0.75, recent=16).score(attention, layer.keys, layer.values, call)
    assert torch.isinf(scores[..., 48:]).all() and torch.isfinite(scores[..., :48]).all()
    with pytest.raises(RopescopeInputError, match="fewer than the 16 it always keeps"):
        TriAttentionPress(ratio=0.9, recent=16).check_budget(64)


def test_unknown_press_is_an_input_error() -> None:
    from ropescope.presses import make_press

    with pytest.raises(RopescopeInputError, match="unknown press 'h2o'"):
        make_press("h2o", 0.5)


@pytest.mark.parametrize("name", ["snapkv", "expected", "triattention", "dapq"])
def test_protected_tokens_are_always_kept(model, name: str) -> None:  # type: ignore[no-untyped-def]
    from ropescope.presses import make_press

    ids = torch.randint(0, 64, (2, 320), generator=torch.Generator().manual_seed(10))
    full = _prefill(model, ids).past_key_values
    with press(model, make_press(name, 0.5, protect=36)):
        cache = _prefill(model, ids).past_key_values
    for kept, whole in zip(cache.layers, full.layers, strict=True):
        assert kept.keys.shape[2] == 160
        torch.testing.assert_close(kept.keys[:, :, -36:], whole.keys[:, :, -36:], atol=0, rtol=0)


def test_the_press_context_manager_is_ropescope_press() -> None:
    import ropescope

    assert ropescope.press is press


def test_streaming_unrotated_keeps_sinks_and_recent_keys_where_they_were(model) -> None:  # type: ignore[no-untyped-def]
    from ropescope.presses import make_press

    ids = torch.randint(0, 64, (2, 40), generator=torch.Generator().manual_seed(12))
    full = _prefill(model, ids).past_key_values
    chosen = make_press("streaming-unrotated", 0.5)
    with press(model, chosen):
        cache = _prefill(model, ids).past_key_values
    for kept, whole in zip(cache.layers, full.layers, strict=True):
        assert torch.equal(kept.keys, torch.cat((whole.keys[:, :, :4], whole.keys[:, :, 24:]), dim=2))
        assert torch.equal(kept.values, torch.cat((whole.values[:, :, :4], whole.values[:, :, 24:]), dim=2))
    assert chosen.next_position(40) == 40 and make_press("streaming", 0.5).next_position(40) == 20


def test_the_command_knows_every_registered_press() -> None:
    from ropescope.cli.compress import PRESS_NAMES
    from ropescope.presses import PRESSES

    assert PRESS_NAMES.split(",") == list(PRESSES)
