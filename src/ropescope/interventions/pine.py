"""PINE: documents attend to each other bidirectionally and are re-positioned by importance, so the output does not
depend on their order.

Wang et al., ICLR 2025, "Eliminating Position Bias of Language Models: A Mechanistic Approach" (arXiv 2407.01100,
repo wzq016/PINE). Built from the method as summarised in ``/work/shared/reference/anchors_lab_kv_bias.md`` §C1
(the paper's full text and code were not read here; the code below is written from that description). For a
prompt ``prefix · D_1 … D_K · suffix`` whose documents tile the token range ``[s, e)``:

1. Attention between documents is bidirectional; within a document it stays causal; the prefix and the suffix
   keep causal attention (the suffix sees every document).
2. Token importance is computed without positional encoding, ``A⁰_ij = softmax_j(q_i·k_j/√d)`` on the un-rotated
   query and key (un-rotated up to the spectrum's attention factor a, which scales every such logit by a²).
3. The importance of document D for query i is the mean ``(1/|D|) Σ_{j∈D} A⁰_ij``; only its rank matters, so it is
   computed as ``lse_{j∈D}(q_i·k_j/√d) − ln |D|`` (the row's softmax normaliser is shared by every document).
4. Per query and head, documents are sorted by importance and laid out in ``[s, e)`` from the least to the most
   important, so more important documents sit closer to the query; a query inside a document treats its own
   document as the last one (its own position is ``e − |D| + offset``), so key positions depend on the querier.
   Suffix queries keep their positions (the documents fill the same range).

Computed exactly, a block of C query rows (and as many heads as fit) at a time, about 2²² logits live, so
memory is O(L) per layer: the no-PE logits of the block against every document key (one matrix product on
un-rotated vectors, ``q`` rotated back by its own index), their per-document log-sum-exp minus ``ln |D|`` as the
importance, a stable sort per (query, head), and each document's shift ``δ_i(k)``. A key of document k seen by
query i at position ``p_i`` is at ``j + δ_i(k)``, which is the query rotated by ``p_i − i − δ_i(k)`` against the
key as cached: each query is rotated once per document (C × K rotated copies, ``R(Δω)`` tabulated once per
length from the model's spectrum; the formula of :mod:`ropescope.presses.rerotation` with one spectrum). Those
copies are one complex product ``(q_f + i·q_{F+f})·e^{iΔω_f}`` each, against document keys stored with their
rotary dims reordered as the same pairs (a dot product does not depend on the order of the dims). The logits
are laid out keys by queries (one batched product against the documents padded to the longest one, plus the
prefix and the suffix), then one softmax over all of them and one product per piece with the values
(unchanged). Rows of a batch may hold the documents in different orders (same range ``[s, e)``).
:class:`PineOptions` switches either part off for ablations: causal masks between documents with the
re-positioning kept (importance still over every document), or bidirectional attention with every token at its
own index.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from ropescope.attention_functions import installed
from ropescope.config import RopeSpec, load_spec
from ropescope.encodings.rope import apply_rotary, rotary_angles
from ropescope.errors import RopescopeInputError
from ropescope.interventions.base import attend, check_call, sdpa
from ropescope.interventions.documents import DocumentLayout
from ropescope.spectrum import spectrum

PINE_ATTENTION = "ropescope_pine"
LIVE_LOGITS = 1 << 22  # logits computed at once: query rows × heads × keys per block
_ACTIVE: contextvars.ContextVar[_PineState | None] = contextvars.ContextVar("ropescope_pine", default=None)

Table = tuple[torch.Tensor, torch.Tensor, int]  # [cos | sin] and (cos, sin) pairs of Δ·ω for Δ = −W … W, and W


@dataclass(frozen=True)
class PineOptions:
    """PINE's two parts, each switchable for ablations: ``bidirectional`` attention between documents and
    ``reposition`` (documents re-positioned by importance, a querying document last). Both off is the plain
    causal model."""

    bidirectional: bool = True
    reposition: bool = True


@dataclass(frozen=True)
class _PineState:
    layout: DocumentLayout
    spec: RopeSpec
    options: PineOptions
    tables: dict[tuple[int, torch.device], Table] = field(default_factory=dict)

    def table(self, length: int, device: torch.device) -> Table:
        """``[cos | sin] (2W + 1, rotary_dim)`` of ``Δ·ω`` for ``Δ = −W … W``, the same values as pairs
        ``(cos, sin)`` (2W + 1, rotary_dim), a complex ``e^{iΔω}`` once viewed so, and W: the rotation by an
        offset (one row per offset, so a rotation is one gather; gathered as reals, faster than as complex)."""
        if (length, device) not in self.tables:
            width = 2 * length
            inv_freq = torch.from_numpy(spectrum(self.spec, seq_len=length).inv_freq.copy())
            angles = rotary_angles(torch.arange(-width, width + 1), inv_freq, torch.float64)
            cos, sin = angles.cos().float().to(device), angles.sin().float().to(device)
            self.tables[(length, device)] = (torch.cat((cos, sin), -1), torch.stack((cos, sin), -1).flatten(-2), width)
        return self.tables[(length, device)]


def _shifted(x: torch.Tensor, offset: torch.Tensor, table: Table) -> torch.Tensor:
    """``x`` (..., D), rotated at its own positions, as if rotated ``offset`` positions later (``x[..., 0]`` and
    ``offset`` broadcast together)."""
    cos_sin, _, width = table
    shape = torch.broadcast_shapes(offset.shape, x.shape[:-1])
    x, index = x.expand(*shape, x.shape[-1]), (offset + width).expand(shape)
    rows = cos_sin.index_select(0, index.reshape(-1)).view(*shape, -1).to(x.dtype)  # far faster than [index]
    half = cos_sin.shape[-1] // 2
    return apply_rotary(x, rows[..., :half], rows[..., half:])


def _paired(x: torch.Tensor, table: Table) -> torch.Tensor:
    """``x`` (..., D) with its rotary dims reordered as pairs ``(x_f, x_{F+f})`` (F = rotary_dim / 2, the rest
    kept last): the layout in which a rotation is one complex product. Dot products between two vectors in this
    layout are the dot products of the originals."""
    half = table[1].shape[-1] // 2
    pairs = torch.stack((x[..., :half], x[..., half : 2 * half]), -1).flatten(-2)
    return torch.cat((pairs, x[..., 2 * half :]), -1) if x.shape[-1] > 2 * half else pairs


def _turned(x: torch.Tensor, offset: torch.Tensor, table: Table) -> torch.Tensor:
    """:func:`_shifted` for ``x`` (..., D) in the :func:`_paired` layout, as ``(x_f + i·x_{F+f}) · e^{iΔω_f}``
    (the same formula, one complex product)."""
    _, turns, width = table
    half = turns.shape[-1] // 2
    shape = torch.broadcast_shapes(offset.shape, x.shape[:-1])
    index = (offset + width).expand(shape).reshape(-1)
    if x.dtype not in (torch.float32, torch.float64):  # no complex type: the same formula on real pairs
        rows = table[0].index_select(0, index).view(*shape, -1).to(x.dtype)
        return apply_rotary(x.expand(*shape, -1), rows[..., :half], rows[..., half:], interleaved=True)
    pairs = torch.view_as_complex(x[..., : 2 * half].unflatten(-1, (half, 2)).contiguous())
    rows = torch.view_as_complex(turns.index_select(0, index).view(*shape, half, 2)).to(pairs.dtype)
    turned = torch.view_as_real(rows.mul_(pairs)).flatten(-2)
    if x.shape[-1] == 2 * half:
        return turned
    return torch.cat((turned, x[..., 2 * half :].expand(*shape, -1)), -1)


@dataclass(frozen=True)
class _Keys:
    """The keys and values of one call laid out as prefix ``[0, s)``, documents padded to ``(K, M)`` and suffix
    ``[e, L)``; ``index`` (B, K, M) the documents' token indices (padding repeats a document's last token),
    ``valid`` (B, K, M) which are real."""

    prefix: tuple[torch.Tensor, torch.Tensor]
    documents: tuple[torch.Tensor, torch.Tensor]  # (B, H, K, M, D) keys (in the _paired layout) and values
    raw: torch.Tensor  # (B, H, K·M, D) document keys without rotary
    suffix: tuple[torch.Tensor, torch.Tensor]
    index: torch.Tensor
    valid: torch.Tensor
    log_length: torch.Tensor  # (B, 1, K, 1) ln |D_k|
    padding: torch.Tensor | None  # (B, K·M) 0 on real keys, −∞ on padding; None without padding


def _layout_keys(key: torch.Tensor, value: torch.Tensor, layout: DocumentLayout, table: Table) -> _Keys:
    batch, heads, _, dim = key.shape
    start, stop = layout.region
    spans = torch.tensor(layout.spans, device=key.device)  # (B, K, 2)
    doc_length = spans[..., 1] - spans[..., 0]
    width = int(doc_length.max())
    steps = torch.arange(width, device=key.device)
    valid = steps < doc_length[..., None]
    index = spans[..., :1] + torch.minimum(steps, doc_length[..., None] - 1)  # (B, K, M)
    count = index.shape[1]
    flat = index.reshape(batch, 1, -1, 1).expand(-1, heads, -1, dim)
    keys, values = key.gather(2, flat), value.gather(2, flat)
    raw = _shifted(keys, -index.reshape(batch, 1, -1), table)
    return _Keys(
        (key[:, :, :start], value[:, :, :start]),
        (_paired(keys, table).view(batch, heads, count, width, dim), values.view(batch, heads, count, width, dim)),
        raw,
        (key[:, :, stop:], value[:, :, stop:]),
        index,
        valid,
        doc_length.float().log()[:, None, :, None],
        None if bool(valid.all()) else torch.zeros(valid.shape).masked_fill_(~valid, -torch.inf).to(key).flatten(1),
    )


def _positions(
    raw_q: torch.Tensor, keys: _Keys, layout: DocumentLayout, own: torch.Tensor, heads: slice
) -> tuple[torch.Tensor, torch.Tensor]:
    """PINE's re-positioning for the queries of a block: each document's shift ``δ_i(k)`` (B, h, K, C) and the
    query's own shift (B, h, C), from the no-PE importance of the un-rotated, pre-scaled queries ``raw_q``
    (B, h, C, D). The log-sum-exp is taken against the row's largest no-PE logit over all documents (one
    reduction, then one exponential per logit), so the importance is the mean of ``A⁰`` as float32 holds it."""
    batch, group, rows, _ = raw_q.shape
    count, width = keys.index.shape[1:]
    logits = raw_q @ keys.raw[:, heads].transpose(-1, -2)  # (B, h, C, K·M): the faster product on CPU
    if keys.padding is not None:
        logits.add_(keys.padding.view(batch, 1, 1, -1))
    peak = logits.amax(-1, keepdim=True)
    sums = logits.sub_(peak).exp_().view(batch, group, rows, count, width).sum(-1)
    importance = sums.log_().add_(peak).transpose(-1, -2).sub(keys.log_length)  # (B, h, K, C): ln mean A⁰ + const
    is_own = own[:, None, :] == torch.arange(count, device=own.device)[:, None]  # (B, K, C); the suffix has none
    importance.masked_fill_(is_own[:, None], torch.inf)  # a querying document is the last one
    order = importance.argsort(dim=2, stable=True)  # least important first
    spans = torch.tensor(layout.spans, device=raw_q.device)
    doc_start, doc_length = spans[..., 0], spans[..., 1] - spans[..., 0]
    lengths = doc_length[:, None, :, None].expand_as(order).gather(2, order)
    placed = layout.region[0] + lengths.cumsum(2) - lengths
    shift = torch.empty_like(placed).scatter_(2, order, placed) - doc_start[:, None, :, None]
    return shift, (shift * is_own[:, None]).sum(2)


def _document_hidden(
    keys: _Keys, rows: torch.Tensor, own: torch.Tensor, stop: int, options: PineOptions
) -> torch.Tensor | None:
    """Which document keys (B, 1, K, M, C) the query rows do not see (causal within a document, padding never),
    their logits set to −∞; None when every key is visible."""
    count = keys.index.shape[1]
    visible = keys.index[..., None] <= rows  # (B, K, M, C) causal
    if options.bidirectional:
        other = own[:, None, :] != torch.arange(count, device=rows.device)[:, None]  # (B, K, C)
        visible |= other[:, :, None] & (rows < stop)
    visible &= keys.valid[..., None]
    if bool(visible.all()):
        return None
    return visible.logical_not_()[:, None]


def pine_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    layout: DocumentLayout,
    scale: float,
    table: Table,
    options: PineOptions = PineOptions(),
    block: int | None = None,
) -> torch.Tensor:
    """PINE attention (B, H, L, D) of rotated queries and keys (B, H, L, D) at positions 0 … L−1, every key head
    already repeated for its query heads; queries are taken ``block`` rows and as many heads at a time as keep
    about 2²² logits live (``block`` default: as many rows as that allows for one head)."""
    batch, heads, length, _ = query.shape
    start, stop = layout.region
    if stop > length:
        raise RopescopeInputError("documents", f"end at token {stop} of a {length}-token prompt", "check the spans")
    keys = _layout_keys(key, value, layout, table)
    count, width = keys.index.shape[1:]
    out = torch.empty_like(query)
    if start:  # the prefix: plain causal attention
        out[:, :, :start] = attend(query[:, :, :start], key[:, :, :start], value[:, :, :start], scale, True)[0]
    spans = torch.tensor(layout.spans, device=query.device)
    per_row = batch * (length + count * width)
    block = block or max(1, min(length - start, LIVE_LOGITS // per_row))
    group = max(1, min(heads, LIVE_LOGITS // (per_row * block)))
    for first in range(start, length, block):
        rows = torch.arange(first, min(first + block, length), device=query.device)
        inside = (rows[None, :, None] >= spans[:, None, :, 0]) & (rows[None, :, None] < spans[:, None, :, 1])
        own = torch.where(inside.any(-1), inside.to(torch.uint8).argmax(-1), count)  # (B, C); K: the suffix
        hidden = _document_hidden(keys, rows, own, stop, options)
        for head in range(0, heads, group):
            part = slice(head, head + group)
            q = query[:, part, rows] * scale
            out[:, part, rows] = _block(q, keys, layout, rows, own, hidden, part, table, options)
    return out


def _block(
    q: torch.Tensor,
    keys: _Keys,
    layout: DocumentLayout,
    rows: torch.Tensor,
    own: torch.Tensor,
    hidden: torch.Tensor | None,
    heads: slice,
    table: Table,
    options: PineOptions,
) -> torch.Tensor:
    """PINE's output (B, h, C, D) for the pre-scaled, rotated queries ``q`` (B, h, C, D) of ``rows``. Logits are
    laid out keys by queries, so every reduction runs along the queries and the values are one product per
    piece (prefix, documents, suffix)."""
    batch, group, block, _ = q.shape
    stop = layout.region[1]
    if options.reposition:
        shift, own_shift = _positions(_shifted(q, -rows, table), keys, layout, own, heads)
        q_own = _shifted(q, own_shift, table)  # the query at its new position, against unmoved keys
        q_docs = _turned(_paired(q, table)[:, :, None], own_shift[:, :, None] - shift, table)  # (B, h, K, C, D)
    else:
        q_own, q_docs = q, _paired(q, table)[:, :, None]
    docs = keys.documents[0][:, heads] @ q_docs.transpose(-1, -2)  # (B, h, K, M, C): document k for query c
    if hidden is not None:
        docs.masked_fill_(hidden, -torch.inf)
    docs = docs.view(batch, group, -1, block)
    prefix = keys.prefix[0][:, heads] @ q_own.transpose(-1, -2)  # (B, h, P, C)
    suffix = keys.suffix[0][:, heads] @ q.transpose(-1, -2)  # (B, h, S, C), causal from e
    suffix.masked_fill_(torch.arange(stop, stop + suffix.shape[2], device=q.device)[:, None] > rows, -torch.inf)
    peak = docs.amax(2)  # finite: a document query sees itself, a suffix query every document
    for piece in (prefix, suffix):
        if piece.shape[2]:
            peak = torch.maximum(peak, piece.amax(2))
    total = torch.zeros_like(peak)
    mixed = q.new_zeros(batch, group, block, q.shape[-1])
    values = (keys.prefix[1], keys.documents[1].flatten(2, 3), keys.suffix[1])
    for piece, value in zip((prefix, docs, suffix), values, strict=True):
        if piece.shape[2]:
            piece.sub_(peak[:, :, None]).exp_()
            total += piece.sum(2)
            mixed += piece.transpose(-1, -2) @ value[:, heads]
    return mixed.div_(total[..., None])


def pine_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The ``ropescope_pine`` attention: PINE while :func:`pine` is active, transformers' SDPA otherwise."""
    state = _ACTIVE.get()
    if state is None:
        return sdpa(module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs)
    from transformers.integrations.sdpa_attention import repeat_kv

    check_call("PINE", query, key, attention_mask, kwargs)
    groups = query.shape[1] // key.shape[1]
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    out = pine_attention(
        query,
        repeat_kv(key, groups),
        repeat_kv(value, groups),
        state.layout,
        scale,
        state.table(query.shape[2], query.device),
        state.options,
    )
    return out.transpose(1, 2).contiguous(), None


@contextlib.contextmanager
def pine(model: Any, layout: DocumentLayout, options: PineOptions = PineOptions()) -> Iterator[None]:
    """Run ``model`` (a transformers RoPE model) with PINE attention over the documents of ``layout``."""
    config = getattr(model, "config", None)
    spec = load_spec(config.to_dict()) if config is not None else None
    if spec is None:
        raise RopescopeInputError("model", f"{type(model).__name__} has no RoPE config", "load a transformers model")
    with installed(model, PINE_ATTENTION, pine_attention_forward, _ACTIVE, _PineState(layout, spec, options)):
        yield
