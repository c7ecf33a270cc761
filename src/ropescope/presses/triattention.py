"""TriAttention (Mao, Lin, Huang, …, Han, Chen 2026; repository WeianMao/triattention, its README and
``pruning_utils.py`` read, the paper's full text not): score each cached key by the trigonometric series that
RoPE's frequencies make of the distance to the future queries.

Write pair f of a pre-RoPE vector as a complex number (half-split pairs, transformers' ``rotate_half``
convention): z_f = x_f + i·x_{f + D/2}. A query at position t and a key at j then meet with the logit
a²·Re Σ_f q_f·conj(k_f)·e^{i(t−j)ω_f} / √D (Su et al. 2021), ω the spectrum and a its attention factor. With the
query replaced by its centre E[q_f] (the complex mean over the prefill's own pre-RoPE queries of the head, exact
through the affine query projection of the mean hidden state — the paper calibrates these on separate text; here
every prompt calibrates itself, no file needed; E|q_f| from every ⌈T/512⌉-th query) and averaged over
future offsets d ∈ {1, 2, 4, …, 2^16} past the prefill end T::

    score_j = Σ_f a²·|E q_f|·|k_f|·Re(W_f·e^{i((T−j)ω_f + φ_f)}) + a²·(E|q_f| − |E q_f|)·|k_f|,
    φ_f = arg(E q_f · conj k_f),   W_f = mean_d e^{i·d·ω_f}

divided by √D, k the key un-rotated from its cached position. Since the cached key is a·e^{ijω_f}·k_f, the
series is one dot product of the cached keys with a single query, the centre rotated to T and averaged over the
offsets (a·E q_f·e^{iTω_f}·W_f): no key is un-rotated and the cost is that of one query row. The second term
is the part of the queries' mean magnitude that the centre does not carry (norm-weighted, position-free). ω and
a come from :func:`ropescope.spectrum.spectrum` at the prefill length — every scaling, YaRN's attention factor
included.
Scores are averaged over the query heads of each KV head (GQA); the paper takes a top-k per head. As in the
paper, the ``recent`` last tokens (128) are always kept. The paper compresses the tokens a model generates
(reasoning traces) and protects the prompt; here it compresses the prompt, the setting of ``ropescope compress``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ropescope.presses.base import Call, ScorePress, per_kv_head, raw_queries
from ropescope.presses.streaming import model_spec
from ropescope.spectrum import spectrum


@dataclass(frozen=True)
class TriAttentionPress(ScorePress):
    max_offset: int = 65536
    magnitude_sample: int = 512
    recent: int = 128

    def always_kept(self) -> int:
        return max(self.recent, self.protect)

    def score(self, module: nn.Module, keys: torch.Tensor, values: torch.Tensor, call: Call) -> torch.Tensor:
        length, half = keys.shape[2], keys.shape[3] // 2
        used = spectrum(model_spec(module), seq_len=length)
        mean = raw_queries(module, call.hidden.mean(dim=1, keepdim=True)).double()[:, :, 0]  # the projection is affine
        centre = torch.complex(mean[..., :half], mean[..., half:])  # E q_f  [B, H, F]
        stride = -(-length // self.magnitude_sample)
        sample = raw_queries(module, call.hidden[:, ::stride]).double()
        magnitude = torch.hypot(sample[..., :half], sample[..., half:]).mean(dim=2)  # E|q_f|
        omega = torch.as_tensor(used.inv_freq, dtype=torch.float64, device=keys.device)
        offsets = torch.as_tensor(2.0 ** np.arange(int(np.log2(self.max_offset)) + 1), device=keys.device)
        future = torch.polar(torch.ones_like(omega), offsets[:, None] * omega).mean(dim=0)  # W_f
        # the cached key is a·e^{ijω}·k, so e^{i(T−j)ω}·conj(k) = e^{iTω}·conj(cached)/a: one rotated query
        query = centre * future * torch.polar(torch.ones_like(omega), length * omega)
        shared = keys.repeat_interleave(centre.shape[1] // keys.shape[1], dim=1)  # [B, H, T, D]
        series = torch.cat((query.real, query.imag), dim=-1).to(keys.dtype).unsqueeze(2) @ shared.transpose(-1, -2)
        spread = (magnitude - centre.abs()).to(keys.dtype).unsqueeze(2) @ torch.hypot(
            shared[..., :half], shared[..., half:]
        ).transpose(-1, -2)
        score = per_kv_head((series + spread).squeeze(2) * used.attention_factor / (2 * half) ** 0.5, keys.shape[1])
        score[..., max(0, length - self.recent) :] = torch.inf  # the paper's protected recent window
        return score
