"""PINE on a tiny random Llama: against a naive per-query reference (explicit positions, transformers' own rotary)
for PINE and its two ablations, any query block size, the plain model when both parts are off, a hand-built case
whose importance order is the prompt order (PINE then equals plain attention for the suffix), invariance of the
text after the documents to any permutation of them, and causal attention outside them."""

from __future__ import annotations

import itertools

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ropescope.config import load_spec  # noqa: E402
from ropescope.errors import RopescopeInputError  # noqa: E402
from ropescope.interventions.base import attend  # noqa: E402
from ropescope.interventions.pine import DocumentLayout, PineOptions, _PineState, pine, pine_attention  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.hf]
PREFIX, LENGTHS, SUFFIX = 3, (3, 5, 2, 4), 5


@pytest.fixture(scope="module", params=["default", "yarn"])
def model(request):  # type: ignore[no-untyped-def]
    rope = {"rope_type": "default", "rope_theta": 10000.0}
    if request.param == "yarn":
        rope = {"rope_type": "yarn", "factor": 2.0, "rope_theta": 10000.0, "original_max_position_embeddings": 16}
    config = transformers.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256 if request.param == "default" else 32,
        rope_parameters=rope,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval()


def _spans(lengths: tuple[int, ...], start: int = PREFIX) -> list[tuple[int, int]]:
    bounds = list(itertools.accumulate(lengths, initial=start))
    return list(itertools.pairwise(bounds))


def _importance(q, k, spans, scale, rows, own):  # type: ignore[no-untyped-def]
    """Each document's importance for the query rows ``rows`` (one suffix row, or every row of document ``own``):
    the sum over the rows of the mean no-PE attention on its tokens, each row's softmax taken over every document
    token outside ``own`` (PINE's code: ``attn_weights_doc2doc`` / ``attn_weights_per_doc``)."""
    region = [j for d, (a, b) in enumerate(spans) if d != own for j in range(a, b)]
    total = dict.fromkeys(range(len(spans)), 0.0)
    for i in rows:
        weights = torch.softmax(torch.stack([q[i] @ k[j] * scale for j in region]), 0)
        a0 = dict(zip(region, weights.tolist(), strict=True))
        for d, (a, b) in enumerate(spans):
            if d != own:
                total[d] += sum(a0[j] for j in range(a, b)) / (b - a)
    return total


def _naive(q, k, v, spans, scale, rotate, factor, options=None):  # type: ignore[no-untyped-def]
    """PINE for one head, query by query: no-PE importance (of q and k times the spectrum's attention factor),
    explicit key positions, softmax, values; ``options`` switch off the bidirectional part (causal masks) or the
    re-positioning (every token at its own index)."""
    options = options or PineOptions()
    length = q.shape[0]
    start, stop = spans[0][0], spans[-1][1]
    doc_of = {j: d for d, (a, b) in enumerate(spans) for j in range(a, b)}
    out = torch.zeros_like(v)
    for i in range(length):
        own = doc_of.get(i)
        between = options.bidirectional and start <= i < stop
        visible = [j for j in range(length) if j <= i or (between and start <= j < stop and doc_of[j] != own)]
        if i < start or not options.reposition:
            positions, query_at = {j: j for j in visible}, i
        else:
            importance = _importance(q, k, spans, scale * factor**2, [i] if own is None else range(*spans[own]), own)
            others = sorted((d for d in range(len(spans)) if d != own), key=lambda d: -importance[d])  # stable
            end, positions = stop, {j: j for j in visible if not start <= j < stop}
            for d in ([own] if own is not None else []) + others:  # most important last, ending at e
                end -= spans[d][1] - spans[d][0]
                positions.update({j: end + offset for offset, j in enumerate(range(*spans[d]))})
            query_at = i if own is None else positions[spans[own][0]] + i - spans[own][0]
        logits = torch.stack([rotate(q[i], query_at) @ rotate(k[j], positions[j]) * scale for j in visible])
        out[i] = torch.softmax(logits, 0) @ v[visible]
    return out


OPTIONS = [PineOptions(), PineOptions(bidirectional=False), PineOptions(reposition=False)]


@pytest.mark.parametrize("options", OPTIONS, ids=["pine", "causal-masks", "no-repositioning"])
@pytest.mark.parametrize("block", [None, 1, 4])
def test_matches_the_naive_reference(model, options, block) -> None:  # type: ignore[no-untyped-def]
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    rotary = model.model.rotary_emb
    length, dim = PREFIX + sum(LENGTHS) + SUFFIX, 8
    generator = torch.Generator().manual_seed(3)
    raw_q, raw_k, v = (torch.randn(2, 1, length, dim, generator=generator) for _ in range(3))

    def rotate(x, at):  # type: ignore[no-untyped-def]
        cos, sin = rotary(x[None, None, None], torch.tensor([[at]]))
        return apply_rotary_pos_emb(x[None, None, None], x[None, None, None], cos, sin)[0].flatten()

    cos, sin = rotary(raw_q, torch.arange(length)[None])
    q, k = apply_rotary_pos_emb(raw_q, raw_k, cos, sin)
    rows = [_spans(LENGTHS), _spans((4, 2, 5, 3))]  # two rows, documents in different orders
    layout = DocumentLayout.of(rows)
    state = _PineState(layout, load_spec(model.config.to_dict()), options)
    fast = pine_attention(q, k, v, layout, dim**-0.5, state.table(length, q.device), options, block)
    factor = rotary.attention_scaling
    for b in range(2):
        expected = _naive(raw_q[b, 0], raw_k[b, 0], v[b, 0], rows[b], dim**-0.5, rotate, factor, options)
        torch.testing.assert_close(fast[b, 0], expected, atol=1e-5, rtol=1e-5)


def test_blocks_of_rows_and_heads_give_one_result(model, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Three heads of documents of unequal lengths: one block for everything, or one row and one head at a time."""
    import ropescope.interventions.pine as module

    length, dim = PREFIX + sum(LENGTHS) + SUFFIX, 8
    generator = torch.Generator().manual_seed(8)
    q, k, v = (torch.randn(2, 3, length, dim, generator=generator) for _ in range(3))
    layout = DocumentLayout.of([_spans(LENGTHS), _spans((4, 2, 5, 3))])
    state = _PineState(layout, load_spec(model.config.to_dict()), PineOptions())
    whole = pine_attention(q, k, v, layout, dim**-0.5, state.table(length, q.device))
    monkeypatch.setattr(module, "LIVE_LOGITS", 1)
    pieces = pine_attention(q, k, v, layout, dim**-0.5, state.table(length, q.device))
    torch.testing.assert_close(pieces, whole, atol=1e-6, rtol=1e-6)
    assert (whole[:, 0] - whole[:, 1]).abs().max() > 1e-3  # the heads differ


def _rotated(raw: torch.Tensor, state: _PineState) -> torch.Tensor:
    from ropescope.interventions.pine import _shifted

    length = raw.shape[2]
    return _shifted(raw, torch.arange(length), state.table(length, raw.device))


def test_both_parts_off_is_plain_causal_attention(model) -> None:  # type: ignore[no-untyped-def]
    length, dim = PREFIX + sum(LENGTHS) + SUFFIX, 8
    generator = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(1, 2, length, dim, generator=generator) for _ in range(3))
    layout = DocumentLayout.of([_spans(LENGTHS)])
    options = PineOptions(bidirectional=False, reposition=False)
    state = _PineState(layout, load_spec(model.config.to_dict()), options)
    fast = pine_attention(q, k, v, layout, dim**-0.5, state.table(length, q.device), options, 3)
    scores = (q @ k.transpose(-1, -2)) * dim**-0.5
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    expected = scores.masked_fill(~causal, -torch.inf).softmax(-1) @ v  # eager, by hand
    torch.testing.assert_close(fast, expected, atol=1e-5, rtol=1e-5)


def test_importance_in_prompt_order_leaves_the_suffix_as_plain_attention(model) -> None:  # type: ignore[no-untyped-def]
    """Every key of document k is (k + 1)·u and every query is u (u·u > 0, no rotary on the importance), so the
    no-PE importance grows with k: PINE's order is the prompt order, every document keeps its positions, and the
    suffix rows (which see all documents, causally) are exactly plain causal attention; a query of document 0
    (placed last) is not."""
    length, dim = PREFIX + sum(LENGTHS) + SUFFIX, 8
    state = _PineState(DocumentLayout.of([_spans(LENGTHS)]), load_spec(model.config.to_dict()), PineOptions())
    u = torch.randn(dim, generator=torch.Generator().manual_seed(6)) * 0.3
    raw_k = torch.zeros(1, 1, length, dim)
    raw_k[..., :, :] = -u  # prefix and suffix keys: no bearing on the order
    for number, (a, b) in enumerate(_spans(LENGTHS)):
        raw_k[..., a:b, :] = (number + 1) * u
    raw_q = u.expand(1, 1, length, dim).clone()
    v = torch.randn(1, 1, length, dim, generator=torch.Generator().manual_seed(7))
    q, k = _rotated(raw_q, state), _rotated(raw_k, state)
    fast = pine_attention(q, k, v, state.layout, dim**-0.5, state.table(length, q.device))
    plain = attend(q, k, v, dim**-0.5, True)[0]
    stop = state.layout.region[1]
    torch.testing.assert_close(fast[..., stop:, :], plain[..., stop:, :], atol=1e-6, rtol=1e-6)
    first = state.layout.spans[0][0]
    assert (fast[..., first[0] : first[1], :] - plain[..., first[0] : first[1], :]).abs().max() > 1e-3


def _prompt(order: tuple[int, ...]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    generator = torch.Generator().manual_seed(5)
    documents = [torch.randint(0, 64, (n,), generator=generator) for n in LENGTHS]
    prefix, suffix = (
        torch.randint(0, 64, (PREFIX,), generator=generator),
        torch.randint(0, 64, (SUFFIX,), generator=generator),
    )
    ids = torch.cat([prefix, *(documents[d] for d in order), suffix])
    return ids, _spans(tuple(LENGTHS[d] for d in order))


def test_text_after_the_documents_is_invariant_to_their_order(model) -> None:  # type: ignore[no-untyped-def]
    orders = list(itertools.permutations(range(len(LENGTHS))))
    prompts = [_prompt(order) for order in orders]
    ids = torch.stack([p[0] for p in prompts])
    stop = prompts[0][1][-1][1]
    with torch.no_grad(), pine(model, DocumentLayout.of([p[1] for p in prompts])):
        logits = model(ids, use_cache=False).logits
    plain = model(ids, use_cache=False).logits.detach()
    assert (plain[:, stop:] - plain[:1, stop:]).abs().max() > 1e-3  # without PINE the order matters
    torch.testing.assert_close(logits[:, stop:], logits[:1, stop:].expand_as(logits[:, stop:]), atol=1e-5, rtol=0)
    assert model.config._attn_implementation == "sdpa"  # restored


def test_text_outside_the_documents_stays_causal(model) -> None:  # type: ignore[no-untyped-def]
    ids, spans = _prompt((0, 1, 2, 3))
    changed = ids.clone()
    changed[-1] = (changed[-1] + 1) % 64  # the last token can change nothing before it
    with torch.no_grad(), pine(model, DocumentLayout.of([spans, spans])):
        logits = model(torch.stack([ids, changed]), use_cache=False).logits
    with torch.no_grad():
        plain = model(ids[None], use_cache=False).logits
    torch.testing.assert_close(logits[0, :PREFIX], plain[0, :PREFIX], atol=1e-5, rtol=0)  # the prefix is untouched
    torch.testing.assert_close(logits[1, :-1], logits[0, :-1], atol=1e-6, rtol=0)
    assert (logits[1, -1] - logits[0, -1]).abs().max() > 1e-4


@pytest.mark.parametrize(
    ("spans", "message"),
    [
        ([[]], "no documents found"),
        ([[(3, 6)]], "K = \\[1\\]"),
        ([[(3, 6), (5, 8)]], "overlap"),
        ([[(3, 6), (7, 8)]], "lie between"),
        ([[(3, 6), (6, 8)], [(2, 6), (6, 8)]], "different token ranges"),
    ],
)
def test_bad_layouts(spans, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RopescopeInputError, match=message):
        DocumentLayout.of(spans)


def test_models_whose_attention_cannot_be_replaced() -> None:
    from ropescope.interventions.act import SinkCalibration, act
    from ropescope.model import Decoder, DecoderConfig

    layout = DocumentLayout.of([[(1, 3), (3, 5)]])
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=16))
    with pytest.raises(RopescopeInputError, match="not RoPE"), pine(gpt2, layout):
        pass
    decoder = Decoder(DecoderConfig(vocab_size=16, d_model=8, n_layers=1, n_heads=2))
    with pytest.raises(RopescopeInputError, match="no replaceable attention"), act(decoder, SinkCalibration(())):
        pass


def test_a_model_with_both_parts_off_is_the_plain_model(model) -> None:  # type: ignore[no-untyped-def]
    ids, spans = _prompt((2, 0, 3, 1))
    with torch.no_grad():
        plain = model(ids[None], use_cache=False).logits
        with pine(model, DocumentLayout.of([spans]), PineOptions(bidirectional=False, reposition=False)):
            ablated = model(ids[None], use_cache=False).logits
        with pine(model, DocumentLayout.of([spans])):
            full = model(ids[None], use_cache=False).logits
    torch.testing.assert_close(ablated, plain, atol=1e-5, rtol=1e-5)
    assert (full[0, -1] - plain[0, -1]).abs().max() > 1e-3  # PINE itself changes the answer's logits


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_follows_float32(model, dtype) -> None:  # type: ignore[no-untyped-def]
    """bf16/fp16 inputs take the real-pair rotation (no complex half type) and half-precision products; the
    result stays within half precision of float32 PINE on the same (rounded) inputs, in the same order."""
    length, dim = PREFIX + sum(LENGTHS) + SUFFIX, 8
    generator = torch.Generator().manual_seed(9)
    q, k, v = (torch.randn(2, 2, length, dim, generator=generator).to(dtype) for _ in range(3))
    layout = DocumentLayout.of([_spans(LENGTHS), _spans((4, 2, 5, 3))])
    state = _PineState(layout, load_spec(model.config.to_dict()), PineOptions())
    half = pine_attention(q, k, v, layout, dim**-0.5, state.table(length, q.device))
    full = pine_attention(q.float(), k.float(), v.float(), layout, dim**-0.5, state.table(length, q.device))
    assert half.dtype == dtype
    torch.testing.assert_close(half.float(), full, atol=0.05, rtol=0.05)


@pytest.mark.parametrize("options", OPTIONS, ids=["pine", "causal-masks", "no-repositioning"])
def test_decoding_with_a_cache_equals_whole_forwards(model, options) -> None:  # type: ignore[no-untyped-def]
    """``generate`` under PINE (a prefill, then one new token at a time against the cache) scores every step as a
    forward pass over the whole sequence so far does, two rows with their documents in different orders."""
    prompts = [_prompt((0, 1, 2, 3)), _prompt((3, 1, 0, 2))]
    ids = torch.stack([p[0] for p in prompts])
    new = 4
    with torch.no_grad(), pine(model, DocumentLayout.of([p[1] for p in prompts]), options):
        generated = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, do_sample=False, pad_token_id=0,
            output_scores=True, return_dict_in_generate=True,
        )  # fmt: skip
        for step, scores in enumerate(generated.scores):
            whole = model(generated.sequences[:, : ids.shape[1] + step], use_cache=False).logits[:, -1]
            torch.testing.assert_close(scores, whole, atol=1e-5, rtol=1e-5)
    assert generated.sequences.shape[1] == ids.shape[1] + new


def test_a_cache_ending_inside_the_documents_is_refused(model) -> None:  # type: ignore[no-untyped-def]
    length, dim = PREFIX + sum(LENGTHS) + SUFFIX, 8
    layout = DocumentLayout.of([_spans(LENGTHS)])
    state = _PineState(layout, load_spec(model.config.to_dict()), PineOptions())
    q, k, v = (torch.randn(1, 1, length, dim) for _ in range(3))
    stop = layout.region[1]
    with pytest.raises(RopescopeInputError, match="inside the documents"):
        pine_attention(q[:, :, stop - 2 :], k, v, layout, dim**-0.5, state.table(length, q.device))
    after = pine_attention(q[:, :, stop:], k, v, layout, dim**-0.5, state.table(length, q.device))  # new tokens only
    whole = pine_attention(q, k, v, layout, dim**-0.5, state.table(length, q.device))
    torch.testing.assert_close(after, whole[:, :, stop:], atol=1e-6, rtol=1e-6)
