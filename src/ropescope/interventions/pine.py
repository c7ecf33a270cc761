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

Every piece is SDPA over one key block with its log-sum-exp (:func:`ropescope.interventions.base.attend`),
merged exactly (:func:`~ropescope.interventions.base.merge`): the prefix, each document (padded to the longest
of the batch, its own rows recomputed causally) and the suffix; the no-PE importance is the log-sum-exp of the
same blocks on un-rotated vectors (one matrix product per document). A key of document k seen by query i at
position ``p_i`` is at ``j + δ_i(k)`` (``δ`` its shift), which is the query rotated by ``p_i − i − δ_i(k)``
against the key as cached: one rotation of the (already rotated) query by an integer offset, the formula of
:mod:`ropescope.presses.rerotation` with one spectrum, ``R(Δω)`` tabulated once per length from the model's
spectrum and applied with :func:`ropescope.encodings.rope.apply_rotary`. Memory is O(L · longest document) per
layer, never L×L; rows of a batch may hold the documents in different orders (same range ``[s, e)``).
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ropescope.config import RopeSpec, load_spec
from ropescope.encodings.rope import apply_rotary, rotary_angles
from ropescope.errors import RopescopeInputError
from ropescope.interventions.base import attend, check_call, installed, merge, sdpa
from ropescope.spectrum import spectrum

PINE_ATTENTION = "ropescope_pine"
_ACTIVE: contextvars.ContextVar[_PineState | None] = contextvars.ContextVar("ropescope_pine", default=None)

Span = tuple[int, int]


@dataclass(frozen=True)
class DocumentLayout:
    """Where the documents are, per batch row: ``spans[b][k] = (start, stop)`` token indices, in prompt order."""

    spans: tuple[tuple[Span, ...], ...]

    @classmethod
    def of(cls, spans: Sequence[Sequence[Sequence[int]]]) -> DocumentLayout:
        """Checked spans: at least two documents per row, non-empty, in order, not overlapping, tiling one range
        ``[s, e)`` that every row shares."""
        rows = tuple(tuple((int(a), int(b)) for a, b in row) for row in spans)
        if not rows or any(not row for row in rows):
            raise RopescopeInputError(
                "documents", "no documents found in the prompt", "give each document's (start, stop)"
            )
        counts = {len(row) for row in rows}
        if len(counts) > 1 or min(counts) < 2:
            raise RopescopeInputError(
                "documents", f"K = {sorted(counts)} documents per row", "give K ≥ 2, the same in every row"
            )
        for row in rows:
            for (a, b), (c, _) in itertools.pairwise(row):
                if c < b:
                    raise RopescopeInputError(
                        "documents", f"spans {(a, b)} and {(c, _)} overlap", "give disjoint spans in prompt order"
                    )
                if c > b:
                    raise RopescopeInputError(
                        "documents", f"tokens {b}..{c - 1} lie between two documents", "put separators inside them"
                    )
            if any(b <= a or a < 0 for a, b in row):
                raise RopescopeInputError("documents", f"a span in {row} is empty or negative", "give start < stop")
        if len({(row[0][0], row[-1][1]) for row in rows}) > 1:
            raise RopescopeInputError(
                "documents", "rows hold their documents in different token ranges", "batch prompts of one layout"
            )
        return cls(rows)

    @property
    def region(self) -> Span:
        return self.spans[0][0][0], self.spans[0][-1][1]


@dataclass
class _PineState:
    layout: DocumentLayout
    spec: RopeSpec
    tables: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor, int]] = field(default_factory=dict)

    def table(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
        """``cos, sin (2W + 1, rotary_dim/2)`` of ``Δ·ω`` for ``Δ = −W … W`` and W: the rotation by an offset."""
        if (length, device) not in self.tables:
            width = 2 * length
            inv_freq = torch.from_numpy(spectrum(self.spec, seq_len=length).inv_freq.copy())
            angles = rotary_angles(torch.arange(-width, width + 1), inv_freq, torch.float64)
            self.tables[(length, device)] = (angles.cos().float().to(device), angles.sin().float().to(device), width)
        return self.tables[(length, device)]


def _shifted(x: torch.Tensor, offset: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor, int]) -> torch.Tensor:
    """``x`` (B, H, Q, D), rotated at its own positions, as if rotated ``offset`` (B|1, H|1, Q) positions later."""
    cos, sin, width = table
    index = (offset + width).expand(*x.shape[:3])
    return apply_rotary(x, cos[index].to(x.dtype), sin[index].to(x.dtype))


def _gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[b, :, index[b, t]]`` (B, H, T, D) for an index (B, T)."""
    return x.gather(2, index[:, None, :, None].expand(-1, x.shape[1], -1, x.shape[-1]))


def pine_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    layout: DocumentLayout,
    scale: float,
    table: tuple[torch.Tensor, torch.Tensor, int],
) -> torch.Tensor:
    """PINE attention (B, H, L, D) of rotated queries and keys (B, H, L, D) at positions 0 … L−1, every key head
    already repeated for its query heads."""
    batch, heads, length, _ = query.shape
    start, stop = layout.region
    if stop > length:
        raise RopescopeInputError("documents", f"end at token {stop} of a {length}-token prompt", "check the spans")
    device = query.device
    spans = torch.tensor(layout.spans, device=device)  # (B, K, 2)
    doc_start, doc_length = spans[..., 0], spans[..., 1] - spans[..., 0]
    count = spans.shape[1]
    rows = length - start  # the queries that see documents: documents and suffix, [s, L)
    positions = torch.arange(start, length, device=device)
    inside = (positions[None, :, None] >= spans[:, None, :, 0]) & (positions[None, :, None] < spans[:, None, :, 1])
    own = torch.where(inside.any(-1), inside.float().argmax(-1), count)  # (B, R) own document, K for the suffix

    out = torch.empty_like(query)
    if start:  # the prefix: plain causal attention
        out[:, :, :start] = attend(query[:, :, :start], key[:, :, :start], value[:, :, :start], scale, True)[0]
    q_rows = query[:, :, start:]
    raw_q = _shifted(q_rows, -positions[None, None], table)
    raw_k = _shifted(key, -torch.arange(length, device=device)[None, None], table)

    blocks = []  # per document: key index (B, M), valid (B, M), additive padding mask (B, 1, 1, M)
    importance = q_rows.new_empty(batch, heads, rows, count)
    for k in range(count):
        width = int(doc_length[:, k].max())
        steps = torch.arange(width, device=device)
        valid = steps[None] < doc_length[:, k, None]
        index = doc_start[:, k, None] + torch.minimum(steps[None], doc_length[:, k, None] - 1)
        mask = None  # documents of one length in every row need no padding mask
        if not bool(valid.all()):
            mask = torch.zeros(batch, 1, 1, width, device=device, dtype=query.dtype)
            mask.masked_fill_(~valid[:, None, None], float("-inf"))
        blocks.append((index, valid, mask))
        logits = raw_q @ _gather_rows(raw_k, index).transpose(-1, -2) * scale  # (B, H, R, M): O(L · document)
        lse = (logits if mask is None else logits + mask).logsumexp(-1)
        importance[..., k] = lse - doc_length[:, k, None, None].float().log()
    is_own = torch.nn.functional.one_hot(own, count + 1)[..., :count].bool()  # (B, R, K)
    importance.masked_fill_(is_own[:, None], torch.inf)

    order = importance.argsort(-1)  # least important first; a querying document last
    lengths = doc_length[:, None, None, :].expand_as(order).gather(-1, order)
    placed = start + lengths.cumsum(-1) - lengths
    new_start = torch.empty_like(placed).scatter_(-1, order, placed)
    shift = new_start - doc_start[:, None, None, :]  # δ_i(k), (B, H, R, K)
    own_shift = (shift * is_own[:, None]).sum(-1)  # the query moves with its document; suffix queries stay

    state = None
    if start:
        state = merge(state, attend(_shifted(q_rows, own_shift, table), key[:, :, :start], value[:, :, :start], scale))
    for k, (index, valid, mask) in enumerate(blocks):
        keys, values = _gather_rows(key, index), _gather_rows(value, index)
        rotated = _shifted(q_rows, own_shift - shift[..., k], table)
        block_out, block_lse = attend(rotated, keys, values, scale, mask=mask)
        self_out, self_lse = attend(_gather_rows(query, index), keys, values, scale, True)  # its own rows, causal
        b, t = valid.nonzero(as_tuple=True)
        r = index[b, t] - start
        block_out[b, :, r], block_lse[b, :, r] = self_out[b, :, t], self_lse[b, :, t]
        state = merge(state, (block_out, block_lse))
    assert state is not None
    rows_out, rows_lse = state
    if stop < length:  # the suffix also sees itself, causally
        tail = stop - start
        suffix = attend(query[:, :, stop:], key[:, :, stop:], value[:, :, stop:], scale, True)
        rows_out[:, :, tail:] = merge((rows_out[:, :, tail:], rows_lse[:, :, tail:]), suffix)[0]
    out[:, :, start:] = rows_out
    return out


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
    )
    return out.transpose(1, 2).contiguous(), None


@contextlib.contextmanager
def pine(model: Any, layout: DocumentLayout) -> Iterator[None]:
    """Run ``model`` (a transformers RoPE model) with PINE attention over the documents of ``layout``."""
    config = getattr(model, "config", None)
    spec = load_spec(config.to_dict()) if config is not None else None
    if spec is None:
        raise RopescopeInputError("model", f"{type(model).__name__} has no RoPE config", "load a transformers model")
    with installed(model, PINE_ATTENTION, pine_attention_forward, _ACTIVE, _PineState(layout, spec)):
        yield
