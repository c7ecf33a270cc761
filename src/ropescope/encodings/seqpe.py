"""SeqPE, sequential position encoding (Li et al. 2025, "SeqPE: Transformer with Sequential Position Encoding",
arXiv 2506.13277).

A position is written as a sequence of symbols and a small sequential encoder turns that sequence into the
position's vector, so there is no table to run out of. With ``k = max_digits`` and ``n = dims`` coordinates,
position ``(p_1, …, p_n)`` becomes the ``n·k`` base-10 digits of each coordinate, each left-padded with zeros to
``k`` digits (the paper's example: ``(2, 3)`` with ``k = 2`` is ``"0", "2", "0", "3"``). Token ``t`` of that
sequence is embedded as ``D[digit_t] + P[t] (+ A[axis_t] when n > 1)`` (digit, digit-place and axis
embeddings), a learned summary token ``s`` is appended last, and an ``L``-layer pre-norm Transformer with causal
self-attention reads the ``n·k + 1`` vectors. Each layer is ``x + Attn(LN(x))`` then ``x + W₂ gelu(W₁ LN(x))``
(width ``4·d_enc``, tanh GELU, biases everywhere); then::

    e(p) = W_out · LN(h_last) + b_out        (h_last: the summary token's output)

is added to the token embedding at position ``p``. Positions above ``10^k − 1`` have no digit sequence of
length ``k`` and raise an error naming the ``max_digits`` that would fit them.

Regularisers (the paper's two extra objectives; the caller adds them to its loss with its own weights, 0.1
each in the released language-model configuration): :meth:`SeqPositionEncoding.contrastive_loss`, a
cross-entropy over ``e(pivot)·e(candidate)`` whose target is the candidate nearest to the pivot in squared
Euclidean position distance, and :meth:`SeqPositionEncoding.distillation_loss`, which makes the similarity
distribution ``softmax(E Eᵀ)`` of out-of-distribution positions match that of in-distribution teacher positions
(symmetric KL, teacher side detached). Choosing pivots, candidates and teacher/student positions is the
caller's (the released samplers mix random, digit-edit "hard" and nearby candidates, and pair a training window
``j`` with a shifted one ``s + j``).

Sources: the paper's abstract and overview figure, and its released code (github.com/ghrua/seqpe:
``sequential_pe.py``, ``pe_utils.py``, ``pe_criterion.py``, ``pe_sampler.py`` and the text model's
``pe_config.json``: 5 digits, 2 layers, causal attention, padding zeros attended, final LayerNorm, output
projection). The method section of the paper itself could not be read here, so these details come from the code.
The released text configuration applies the vectors inside attention (``PE_APPLY_METHOD: attn_scalar``, not
examined here); this module adds them to the token embeddings. Left out: dropout (the reference decoder has none),
the output temperature (1 in that configuration), the per-head split of the distillation similarities, and the
code's averaging of the KL over all ``K·K`` entries (here each row's KL is summed, so the value is ``K`` times the
code's). Initialisation as in that code: ``N(0, 0.02²)`` for linear and embedding weights and the summary token,
zero biases, LayerNorm ``(1, 0)``. Computed in the parameters' dtype with autocast off. Absolute: not shift
invariant.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ropescope.encodings.base import PositionalEncoding, grid_positions, integer_positions
from ropescope.errors import RopescopeInputError


def position_digits(positions: torch.Tensor, max_digits: int) -> torch.Tensor:
    """Base-10 digits of non-negative integer ``positions`` ``[..., n]``, each coordinate left-padded to
    ``max_digits``: shape ``[..., n·max_digits]``, most significant digit first."""
    powers = 10 ** torch.arange(max_digits - 1, -1, -1, device=positions.device)
    return (positions.unsqueeze(-1) // powers % 10).flatten(-2)


class _EncoderBlock(nn.Module):
    """One pre-norm Transformer layer of the position encoder (GPT-2 style, causal)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attention_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.mlp_norm = nn.LayerNorm(width)
        self.up = nn.Linear(width, 4 * width)
        self.down = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q, k, v = self.qkv(self.attention_norm(x)).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(attended.transpose(1, 2).reshape(batch, length, -1))
        return x + self.down(F.gelu(self.up(self.mlp_norm(x)), approximate="tanh"))


class SeqPositionEncoding(PositionalEncoding):
    """Position vectors from a small causal Transformer over each position's digits.

    ``dims`` coordinates per position (1 for sequences, 2 for grids), each of at most ``max_digits`` digits; the
    encoder has ``encoder_layers`` layers of width ``encoder_dim`` (``d_model`` by default) and ``encoder_heads``
    heads; its output is projected to ``d_model``.
    """

    kind = "absolute"

    def __init__(
        self,
        d_model: int,
        max_digits: int = 5,
        dims: int = 1,
        encoder_dim: int | None = None,
        encoder_heads: int = 4,
        encoder_layers: int = 2,
    ) -> None:
        super().__init__()
        width = d_model if encoder_dim is None else encoder_dim
        for name, value in (("max_digits", max_digits), ("dims", dims), ("encoder_layers", encoder_layers)):
            if value <= 0:
                raise RopescopeInputError(f"seqpe {name}", f"is {value}", "use a positive number")
        if encoder_heads <= 0 or width % encoder_heads:
            raise RopescopeInputError(
                "seqpe encoder_heads",
                f"{encoder_heads} does not divide the encoder width {width}",
                "use a number of heads that divides encoder_dim (d_model by default)",
            )
        self.shift_invariant = False
        self.position_axes = dims
        self.max_digits = max_digits
        self.digit_embed = nn.Embedding(10, width)
        self.place_embed = nn.Embedding(dims * max_digits, width)
        if dims > 1:
            self.axis_embed = nn.Parameter(torch.empty(dims, width))
        self.summary = nn.Parameter(torch.empty(width))
        self.blocks = nn.ModuleList(_EncoderBlock(width, encoder_heads) for _ in range(encoder_layers))
        self.norm = nn.LayerNorm(width)
        self.project = nn.Linear(width, d_model)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.summary, std=0.02)
        if dims > 1:
            nn.init.normal_(self.axis_embed, std=0.02)

    def embed(self, positions: torch.Tensor) -> torch.Tensor:
        coordinates = grid_positions(positions, self.position_axes, "seqpe")
        flat = integer_positions(coordinates.reshape(-1, self.position_axes), "seqpe")
        low, high = int(flat.min()), int(flat.max())
        largest = 10**self.max_digits - 1
        if low < 0 or high > largest:
            raise RopescopeInputError(
                "seqpe positions",
                f"span {low}..{high}, outside 0..{largest} ({self.max_digits} digits)",
                f"keep positions in 0..{largest} or build with max_digits={max(len(str(high)), self.max_digits)}",
            )
        unique, inverse = torch.unique(flat, dim=0, return_inverse=True)
        with torch.autocast(device_type=flat.device.type, enabled=False):
            vectors = self.encode_digits(position_digits(unique, self.max_digits))
        return vectors[inverse].reshape(*coordinates.shape[:-1], -1)

    def encode_digits(self, digits: torch.Tensor) -> torch.Tensor:
        """``e(p)`` for digit sequences ``[N, dims·max_digits]`` (from :func:`position_digits`): ``[N, d_model]``."""
        places = torch.arange(digits.shape[-1], device=digits.device)
        x = self.digit_embed(digits) + self.place_embed(places)
        if self.position_axes > 1:
            x = x + self.axis_embed.repeat_interleave(self.max_digits, dim=0)
        x = torch.cat((x, self.summary.expand(x.shape[0], 1, -1)), dim=1)
        for block in self.blocks:
            x = block(x)
        return self.project(self.norm(x[:, -1]))

    def contrastive_loss(self, pivots: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of ``softmax_c(e(pivot)·e(c))`` against the candidate nearest to each pivot.

        ``pivots`` ``[N]`` (``[N, dims]`` for grids), ``candidates`` ``[N, K]`` (``[N, K, dims]``), pivots not among
        their own candidates; ties in distance go to the first nearest candidate.
        """
        logits = (self.embed(candidates) @ self.embed(pivots).unsqueeze(-1)).squeeze(-1)
        count = candidates.shape[0]
        offsets = candidates.reshape(count, candidates.shape[1], -1) - pivots.reshape(count, 1, -1)
        target = offsets.double().square().sum(-1).argmin(-1)
        return F.cross_entropy(logits, target)

    def distillation_loss(self, teacher_positions: torch.Tensor, student_positions: torch.Tensor) -> torch.Tensor:
        """Mean over rows of ``KL(P_t ‖ P_s) + KL(P_s ‖ P_t)``, ``P = softmax(E Eᵀ)`` over each group's ``K``
        positions; the teacher side (in-distribution positions) is detached.

        Both ``[N, K]`` (``[N, K, dims]``): group ``n`` pairs teacher positions ``j`` with student positions, in the
        paper a window shifted out of the training range (``s + j``).
        """
        teacher, student = self.embed(teacher_positions), self.embed(student_positions)
        log_teacher = F.log_softmax(teacher @ teacher.mT, dim=-1).detach()
        log_student = F.log_softmax(student @ student.mT, dim=-1)
        forward = (log_teacher.exp() * (log_teacher - log_student)).sum(-1)
        backward = (log_student.exp() * (log_student - log_teacher)).sum(-1)
        return (forward + backward).mean()
