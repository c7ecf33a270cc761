"""DapQ, "Where Matters More Than What: Decoding-aligned KV Cache Compression via Position-aware Pseudo Queries"
(Tian, Su, Li, Zhang 2026, arXiv 2603.11564): score the cache with pseudo-queries placed at the positions the
answer will be decoded at, not at the prompt's own last positions.

Only the abstract and a third-party summary were readable (no code found). They say the pseudo-queries' position
matters more than their content. Built from that: the pseudo-queries are the pre-RoPE queries of the last
``window`` prefill tokens (their content), rotated to the future positions T, T+1, …, T+window−1 with the model's
own spectrum (:func:`ropescope.spectrum.spectrum` at length T + window, attention factor a included). Each
cached key j then scores as SnapKV's (Li et al. 2024) would with these queries::

    score_j = pool_kernel( mean over the query heads of a KV head of Σ_w softmax_j(a·R(T+w)·q_w · k_j / √D) )

with no causal mask (every cached key precedes the future positions); the window's own tokens are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ropescope.encodings.rope import apply_rotary
from ropescope.presses.base import Call, ScorePress, logits, per_kv_head, raw_queries
from ropescope.presses.streaming import model_spec
from ropescope.spectrum import spectrum


@dataclass(frozen=True)
class DapQPress(ScorePress):
    window: int = 32
    kernel: int = 5

    def always_kept(self) -> int:
        return max(self.window, self.protect)

    def score(self, module: nn.Module, keys: torch.Tensor, values: torch.Tensor, call: Call) -> torch.Tensor:
        length = keys.shape[2]
        window = min(self.window, length)
        raw = raw_queries(module, call.hidden[:, -window:])  # [B, H, w, D], before RoPE
        used = spectrum(model_spec(module), seq_len=length + window)
        angles = np.arange(length, length + window, dtype=np.float64)[:, None] * used.inv_freq[None, :]
        cos = torch.as_tensor(np.cos(angles) * used.attention_factor, dtype=keys.dtype, device=keys.device)
        sin = torch.as_tensor(np.sin(angles) * used.attention_factor, dtype=keys.dtype, device=keys.device)
        attention = logits(apply_rotary(raw, cos, sin), keys).softmax(dim=-1).sum(dim=2)
        pooled = F.avg_pool1d(
            per_kv_head(attention, keys.shape[1]), self.kernel, stride=1, padding=self.kernel // 2,
            count_include_pad=False,
        )  # fmt: skip
        pooled[..., length - window :] = torch.inf
        return pooled
