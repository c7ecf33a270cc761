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
from torch import nn

from ropescope.encodings.rope import apply_rotary
from ropescope.presses.base import Call, logits, raw_queries
from ropescope.presses.scored import SnapKVPress
from ropescope.presses.streaming import model_spec
from ropescope.spectrum import spectrum


@dataclass(frozen=True)
class DapQPress(SnapKVPress):
    def window_logits(self, module: nn.Module, keys: torch.Tensor, call: Call, window: int) -> torch.Tensor:
        """``[B, H, window, T]``: the window's pre-RoPE queries rotated at the next ``window`` positions, against
        every cached key (all of them precede those positions)."""
        length = keys.shape[2]
        raw = raw_queries(module, call.hidden[:, -window:])  # [B, H, w, D], before RoPE
        used = spectrum(model_spec(module), seq_len=length + window)
        angles = np.arange(length, length + window, dtype=np.float64)[:, None] * used.inv_freq[None, :]
        cos = torch.as_tensor(np.cos(angles) * used.attention_factor, dtype=keys.dtype, device=keys.device)
        sin = torch.as_tensor(np.sin(angles) * used.attention_factor, dtype=keys.dtype, device=keys.device)
        return logits(apply_rotary(raw, cos, sin), keys)
