"""PINE: documents attend to each other bidirectionally and are re-positioned by importance, so the output does not
depend on their order.

Wang et al., ICLR 2025, "Eliminating Position Bias of Language Models: A Mechanistic Approach" (arXiv 2407.01100).
Built from the method as summarised in ``/work/shared/reference/anchors_lab_kv_bias.md`` §C1 and from reading the
authors' code (github.com/wzq016/PINE, ``pine/models/llama/modeling_llama.py``; written anew here, not copied);
the paper's full text was not read. For a prompt ``prefix · D_1 … D_K · suffix`` whose documents tile ``[s, e)``:

1. Attention between documents is bidirectional; within a document it stays causal; the prefix and the suffix
   keep causal attention (the suffix sees every document).
2. Importance is computed without positional encoding, ``A⁰_ij = softmax_j(q_i·k_j/√d)`` on the un-rotated query
   and key (un-rotated up to the spectrum's attention factor a, which scales every such logit by a²), the softmax
   over document tokens only: for a query in document d over the other documents, for a suffix query over all.
3. Every query of document d shares one layout, from ``I_d(k) = Σ_{i∈d} (1/|k|) Σ_{j∈k} A⁰_ij``; a suffix query
   i has its own, from ``I_i(k) = (1/|k|) Σ_{j∈k} A⁰_ij`` (the authors' ``attn_weights_doc2doc`` and
   ``attn_weights_per_doc``).
4. Documents are sorted by importance, most important first (a stable sort; the querying document first of
   all), and laid out backwards from ``e``, so the more important a document, the closer it sits to the query.
   Suffix queries keep their positions (the documents fill the same range).

Computed exactly in two passes over blocks of C query rows (and as many heads as fit), about 2²² logits live, so
memory is O(L) per layer. Pass one: the no-PE logits of the block against every document key (``q`` rotated back
by its own index), the querying document's keys masked, a softmax, sums per document, added up per querying
document; then one stable sort per (group, head) gives each document's shift ``δ_g(k)``. Pass two: a key of
document k seen by query i is at ``j + δ_g(k)``, which is the query rotated by ``δ_g(own) − δ_g(k)`` against the
key as cached: each query is rotated once per document (C × K copies, ``R(Δω)`` tabulated once per length from the
model's spectrum, the formula of :mod:`ropescope.presses.rerotation`), one complex product
``(q_f + i·q_{F+f})·e^{iΔω_f}`` each, against document keys stored with their rotary dims reordered as the same
pairs (a dot product does not depend on the order of the dims). A row's logits against prefix, documents (padded
to the longest) and suffix are written side by side, hidden keys set to −∞, then one softmax and one product with
the values. Rows of a batch may hold the documents in different orders (same range ``[s, e)``).
``generate`` works under :func:`pine`: after a prefill that holds the documents, each new token is a suffix query
against the cached keys (rotated at their own indices, which is all the computation above needs).
:class:`PineOptions` switches either part off for ablations: causal masks between documents with the
re-positioning kept (importance as above), or bidirectional attention with every token at its own index.
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
    tables: dict[torch.device, tuple[int, Table]] = field(default_factory=dict)

    def table(self, length: int, device: torch.device) -> Table:
        """``[cos | sin] (2W + 1, rotary_dim)`` of ``Δ·ω`` for ``Δ = −W … W``, the same values as pairs
        ``(cos, sin)`` (2W + 1, rotary_dim), a complex ``e^{iΔω}`` once viewed so, and W: the rotation by an
        offset (one row per offset, so a rotation is one gather; gathered as reals, faster than as complex).
        The spectrum is the one at ``length`` (dynamic scalings change with it); only the latest length's table is
        kept, so decoding token by token holds one table, not one per step."""
        if device not in self.tables or self.tables[device][0] != length:
            width = 2 * length
            inv_freq = torch.from_numpy(spectrum(self.spec, seq_len=length).inv_freq.copy())
            angles = rotary_angles(torch.arange(-width, width + 1), inv_freq, torch.float64)
            cos, sin = angles.cos().float().to(device), angles.sin().float().to(device)
            self.tables[device] = (length, (torch.cat((cos, sin), -1), torch.stack((cos, sin), -1).flatten(-2), width))
        return self.tables[device][1]


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
    """The keys of one call laid out as prefix ``[0, s)``, documents padded to ``(K, M)`` and suffix ``[e, L)``,
    and the values in that order; ``index`` (B, K, M) the documents' token indices (padding repeats a document's
    last token), ``valid`` (B, K, M) which are real, ``padding`` per batch row the padded slots of ``K·M``,
    ``spans`` (B, K, 2) the documents' (start, stop) as a tensor."""

    prefix: torch.Tensor  # (B, H, P, D)
    documents: torch.Tensor  # (B, H, K, M, D) in the _paired layout
    raw: torch.Tensor  # (B, H, K·M, D) document keys without rotary
    suffix: torch.Tensor  # (B, H, S, D)
    values: torch.Tensor  # (B, H, P + K·M + S, D)
    index: torch.Tensor
    valid: torch.Tensor
    padding: tuple[torch.Tensor, ...] | None  # None without padding
    spans: torch.Tensor

    def hide_padding(self, logits: torch.Tensor) -> None:
        """Set the logits (B, h, C, K·M) of padded document slots to −∞."""
        for row, slots in enumerate(self.padding or ()):
            logits[row].index_fill_(-1, slots, -torch.inf)


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
    padding = None if bool(valid.all()) else tuple((~row).flatten().nonzero().flatten() for row in valid)
    return _Keys(
        key[:, :, :start],
        _paired(keys, table).view(batch, heads, count, width, dim),
        _shifted(keys, -index.reshape(batch, 1, -1), table),
        key[:, :, stop:],
        torch.cat((value[:, :, :start], values, value[:, :, stop:]), 2),
        index,
        valid,
        padding,
        spans,
    )


def _document_shifts(
    query: torch.Tensor,
    keys: _Keys,
    layout: DocumentLayout,
    scale: float,
    table: Table,
    block: int,
    group: int,
    length: int,
) -> torch.Tensor:
    """PINE's re-positioning: the shift ``δ_g(k)`` of every document k (B, H, K + S, K) for every query group g,
    the K documents (every query of a document shares one layout) and then the S suffix queries one by one.

    Importance ``I_g(k)``: a document's queries sum, over their rows, the mean no-PE attention on k's tokens,
    ``A⁰`` normalised over the other documents' tokens (the querying document masked); a suffix query's row is
    normalised over every document token. Documents are sorted by importance, most important first (a stable
    sort, the querying document first of all), and laid out backwards from ``e``: a document starts at ``e``
    minus its length minus the lengths of the documents before it in that order. ``query`` holds the rows
    ``length − Q … length − 1`` (all of them, or new suffix tokens after a cache); other groups' shifts are those
    of no importance (unused)."""
    batch, heads, queries, _ = query.shape
    start, stop = layout.region
    offset = length - queries
    count, width = keys.index.shape[1:]
    spans = keys.spans
    doc_start, doc_length = spans[..., 0], spans[..., 1] - spans[..., 0]
    sums = query.new_zeros(batch, heads, count + length - stop, count)
    steps = torch.arange(width, device=query.device)
    for first in range(max(start, offset), length, block):
        last = min(first + block, length)
        rows = torch.arange(first, last, device=query.device)
        own = _owner(rows, spans, count)
        documents = max(0, min(stop, last) - first)  # rows are ascending: the documents' rows come first
        columns = (own[:, None, :documents, None] * width + steps).expand(-1, group, -1, -1)
        for head in range(0, heads, group):
            part = slice(head, head + group)
            raw = _shifted(query[:, part, rows - offset] * scale, -rows, table)
            logits = raw @ keys.raw[:, part].transpose(-1, -2)
            keys.hide_padding(logits)
            if documents:
                logits[:, :, :documents].scatter_(-1, columns[:, : logits.shape[1]], -torch.inf)
            weights = logits.softmax(-1).view(batch, -1, rows.shape[0], count, width).sum(-1)  # Σ_{j∈k} A⁰_ij
            index = own[:, None, :documents, None].expand(-1, weights.shape[1], -1, count)
            sums[:, part, :count].scatter_add_(2, index, weights[:, :, :documents])
            if documents < last - first:
                sums[:, part, count + first + documents - stop : count + last - stop] = weights[:, :, documents:]
    importance = sums.div_(doc_length[:, None, None, :])
    importance[:, :, :count].diagonal(dim1=2, dim2=3).fill_(torch.inf)  # a querying document is the first
    order = importance.argsort(dim=-1, descending=True, stable=True)
    lengths = doc_length[:, None, None, :].expand_as(order).gather(-1, order)
    placed = stop - lengths.cumsum(-1)  # in order of importance: each document's new start
    return torch.empty_like(placed).scatter_(-1, order, placed) - doc_start[:, None, None, :]


def _owner(rows: torch.Tensor, spans: torch.Tensor, count: int) -> torch.Tensor:
    """The document (B, C) each of ``rows`` lies in; K for a row after the documents."""
    inside = (rows[None, :, None] >= spans[:, None, :, 0]) & (rows[None, :, None] < spans[:, None, :, 1])
    return torch.where(inside.any(-1), inside.to(torch.uint8).argmax(-1), count)


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
    """PINE attention (B, H, Q, D) of rotated queries (B, H, Q, D) at positions L−Q … L−1 and keys (B, H, L, D) at
    positions 0 … L−1, every key head already repeated for its query heads: the whole prompt (Q = L) or, decoding
    with a cache, new tokens after the documents. Queries are taken ``block`` rows and as many heads at a time as
    keep about 2²² logits live (``block`` default: as many rows as that allows for one head)."""
    batch, heads, queries, _ = query.shape
    length = key.shape[2]
    start, stop = layout.region
    offset = length - queries
    if stop > length:
        raise RopescopeInputError("documents", f"end at token {stop} of a {length}-token prompt", "check the spans")
    if 0 < offset < stop:
        raise RopescopeInputError(
            "PINE", f"saw {queries} queries after {offset} cached tokens, inside the documents",
            "prefill the prompt at least up to the end of the documents in one call",
        )  # fmt: skip
    keys = _layout_keys(key, value, layout, table)
    count, width = keys.index.shape[1:]
    out = torch.empty_like(query)
    if start and not offset:  # the prefix: plain causal attention
        out[:, :, :start] = attend(query[:, :, :start], key[:, :, :start], value[:, :, :start], scale, True)[0]
    per_row = batch * (length + count * width)
    block = block or max(1, min(length - max(start, offset), LIVE_LOGITS // per_row))
    group = max(1, min(heads, LIVE_LOGITS // (per_row * block)))
    shifts = None
    if options.reposition:
        shifts = _document_shifts(query, keys, layout, scale, table, block, group, length)
    for first in range(max(start, offset), length, block):
        rows = torch.arange(first, min(first + block, length), device=query.device)
        own = _owner(rows, keys.spans, count)  # (B, C); K: the suffix
        for head in range(0, heads, group):
            part = slice(head, head + group)
            q = query[:, part, rows - offset] * scale
            shift = None if shifts is None else _row_shifts(shifts[:, part], rows, own, stop)
            out[:, part, rows - offset] = _block(q, keys, stop, rows, own, part, table, shift, options.bidirectional)
    return out


def _row_shifts(shifts: torch.Tensor, rows: torch.Tensor, own: torch.Tensor, stop: int) -> torch.Tensor:
    """The document shifts (B, h, K, C) that the queries of ``rows`` (in document ``own``, K for the suffix) see,
    from the groups' shifts (B, h, K + S, K) of :func:`_document_shifts`."""
    count = shifts.shape[-1]
    groups = torch.where(own < count, own, count + rows - stop)  # (B, C)
    index = groups[:, None, :, None].expand(-1, shifts.shape[1], -1, count)
    return shifts.gather(2, index).transpose(-1, -2)


def _block(
    q: torch.Tensor,
    keys: _Keys,
    stop: int,
    rows: torch.Tensor,
    own: torch.Tensor,
    heads: slice,
    table: Table,
    shift: torch.Tensor | None,
    bidirectional: bool,
) -> torch.Tensor:
    """PINE's output (B, h, C, D) for the pre-scaled, rotated queries ``q`` (B, h, C, D) of ``rows`` (ascending,
    in documents ``own``, K after them). The logits of a row against prefix, documents and suffix are written
    side by side (each product into its slice), hidden keys set to −∞, then one softmax and one product with the
    values."""
    batch, group, block, _ = q.shape
    count, width = keys.index.shape[1:]
    first = keys.prefix.shape[2]
    if shift is not None:
        is_own = own[:, None, :] == torch.arange(count, device=own.device)[:, None]  # (B, K, C)
        own_shift = (shift * is_own[:, None]).sum(2)  # (B, h, C); 0 for the suffix
        q_own = _shifted(q, own_shift, table)  # the query at its new position, against unmoved keys
        q_docs = _turned(_paired(q, table)[:, :, None], own_shift[:, :, None] - shift, table)  # (B, h, K, C, D)
    else:
        q_own, q_docs = q, _paired(q, table)[:, :, None].expand(-1, -1, count, -1, -1)
    logits = q.new_empty(batch, group, block, keys.values.shape[2])
    docs, suffix = logits[..., first : first + count * width], logits[..., first + count * width :]
    torch.matmul(q_own, keys.prefix[:, heads].transpose(-1, -2), out=logits[..., :first])
    torch.matmul(
        q_docs, keys.documents[:, heads].transpose(-1, -2), out=docs.unflatten(-1, (count, width)).transpose(2, 3)
    )
    torch.matmul(q, keys.suffix[:, heads].transpose(-1, -2), out=suffix)
    suffix.masked_fill_(torch.arange(stop, stop + suffix.shape[-1], device=q.device) > rows[:, None], -torch.inf)
    keys.hide_padding(docs)
    if bidirectional:  # only a document's own later tokens are hidden
        inside = max(0, min(stop, int(rows[-1]) + 1) - int(rows[0]))  # the rows in documents come first
        slots = (own[:, None, :inside, None] * width + torch.arange(width, device=q.device)).expand(-1, group, -1, -1)
        later = keys.index.gather(1, own[:, :inside, None].expand(-1, -1, width)) > rows[:inside, None]
        own_logits = docs[:, :, :inside].gather(-1, slots).masked_fill_(later[:, None], -torch.inf)
        docs[:, :, :inside].scatter_(-1, slots, own_logits)
    else:
        docs.masked_fill_((keys.index.flatten(1)[:, None, :] > rows[:, None])[:, None], -torch.inf)
    return logits.softmax(-1) @ keys.values[:, heads]


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

    check_call("PINE", query, key, attention_mask, kwargs, cache=True)
    groups = query.shape[1] // key.shape[1]
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    out = pine_attention(
        query,
        repeat_kv(key, groups),
        repeat_kv(value, groups),
        state.layout,
        scale,
        state.table(key.shape[2], query.device),
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
