"""Where the documents of a batch of prompts are: one (start, stop) token span per document, per row, checked to
tile one token range ``[s, e)`` that every row shares (rows may hold the documents in different orders), as PINE
(:mod:`ropescope.interventions.pine`) needs them."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from ropescope.errors import RopescopeInputError

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
