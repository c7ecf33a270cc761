"""TriAttention (Mao, Lin, Huang, …, Han, Chen 2026; repository WeianMao/triattention, its README and
``pruning_utils.py`` read, the paper's full text not): score each cached key by the trigonometric series that
RoPE's frequencies make of the distance to the future queries.

Write pair f of a pre-RoPE vector as a complex number (half-split pairs, transformers' ``rotate_half``
convention): z_f = x_f + i·x_{f + D/2}. A query at position t and a key at j then meet with the logit
a²·Re Σ_f q_f·conj(k_f)·e^{i(t−j)ω_f} / √D (Su et al. 2021), ω the spectrum and a its attention factor. With the
query replaced by its centre E[q_f] (the complex mean over the prefill's own pre-RoPE queries of the head — the
paper calibrates these on separate text; here every prompt calibrates itself, no file needed) and averaged over
future offsets d ∈ {1, 2, 4, …, 2^16} past the prefill end T::

    score_j = Σ_f a²·|E q_f|·|k_f|·Re(W_f·e^{i((T−j)ω_f + φ_f)}) + a²·(E|q_f| − |E q_f|)·|k_f|,
    φ_f = arg(E q_f · conj k_f),   W_f = mean_d e^{i·d·ω_f}

divided by √D, k the key un-rotated from its cached position. The second term is the part of the queries' mean
magnitude that the centre does not carry (norm-weighted, position-free). ω and a come from
:func:`ropescope.spectrum.spectrum` at the prefill length — every scaling, YaRN's attention factor included.
Scores are averaged over the query heads of each KV head (GQA); the paper takes a top-k per head.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ropescope.presses.base import Call, ScorePress, per_kv_head, raw_queries
from ropescope.presses.streaming import model_spec
from ropescope.spectrum import spectrum


def complex_pairs(x: torch.Tensor) -> torch.Tensor:
    """``[..., D]`` real → ``[..., D/2]`` complex, pair f = (x_f, x_{f+D/2}), in float64."""
    half = x.shape[-1] // 2
    return torch.complex(x[..., :half].double(), x[..., half:].double())


@dataclass(frozen=True)
class TriAttentionPress(ScorePress):
    max_offset: int = 65536

    def score(self, module: nn.Module, keys: torch.Tensor, values: torch.Tensor, call: Call) -> torch.Tensor:
        length, head_dim = keys.shape[2], keys.shape[3]
        used = spectrum(model_spec(module), seq_len=length)
        omega = torch.as_tensor(used.inv_freq, dtype=torch.float64, device=keys.device)
        query = complex_pairs(raw_queries(module, call.hidden))  # [B, H, T, F]
        centre, magnitude = query.mean(dim=2), query.abs().mean(dim=2)  # [B, H, F]
        positions = torch.arange(length, dtype=torch.float64, device=keys.device)
        key = complex_pairs(keys) * torch.polar(torch.ones_like(omega), -positions[:, None] * omega)  # un-rotated
        key = key.repeat_interleave(centre.shape[1] // keys.shape[1], dim=1)  # [B, H, T, F]
        offsets = torch.as_tensor(2.0 ** np.arange(int(np.log2(self.max_offset)) + 1), device=keys.device)
        future = torch.polar(torch.ones_like(omega), offsets[:, None] * omega).mean(dim=0)  # W_f
        distance = (length - positions)[:, None] * omega  # [T, F]
        series = (centre[:, :, None] * key.conj() * torch.polar(torch.ones_like(distance), distance) * future).real
        spread = (magnitude - centre.abs())[:, :, None] * key.abs()
        # the cached key already carries one attention factor a; the query side brings the other
        score = (series + spread).sum(dim=-1) * used.attention_factor / head_dim**0.5
        return per_kv_head(score.to(keys.dtype), keys.shape[1])
