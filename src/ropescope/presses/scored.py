"""Presses that score each cached key and keep the best: SnapKV and expected attention.

* ``SnapKVPress`` (Li et al. 2024, "SnapKV: LLM Knows What You are Looking for Before Generation",
  arXiv 2404.14469): the softmax attention of the last ``window`` prefill queries (rotated, causal within the
  window) to every key, summed over those queries, averaged over the query heads of each KV head and smoothed by
  a 1-D average pool of ``kernel`` tokens; the window's own keys are always kept.
* ``ExpectedAttentionPress`` (after kvpress's ExpectedAttention, NVIDIA 2025): the logit a key will receive from
  the queries of the next ``horizon`` decoding positions, to first order: the mean un-rotated query μ of the
  last ``window`` prefill tokens, rotated by the *average* RoPE rotation over positions T … T + horizon − 1 of
  the model's own spectrum (:func:`ropescope.spectrum.spectrum` at length T + horizon, every scaling and its
  attention factor a included)::

      score_j = ⟨ a·R̄·μ , k_j ⟩ / √D,   R̄ = mean over p of R(p·ω)  (pair i: mean cos(p·ω_i), mean sin(p·ω_i))

  kvpress also adds a covariance term and averages the rotation approximately; this is the exact mean rotation
  and the mean term only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ropescope.encodings.rope import apply_rotary
from ropescope.presses.base import Call, ScorePress, logits, per_kv_head, queries, raw_queries
from ropescope.presses.streaming import model_spec
from ropescope.spectrum import spectrum


@dataclass(frozen=True)
class SnapKVPress(ScorePress):
    window: int = 32
    kernel: int = 5

    def always_kept(self) -> int:
        return max(self.window, self.protect)

    def window_logits(self, module: nn.Module, keys: torch.Tensor, call: Call, window: int) -> torch.Tensor:
        """``[B, H, window, T]``: the window's queries, rotated at their own positions, against every key they
        may see (causal within the window)."""
        length = keys.shape[2]
        scores = logits(queries(module, call, window), keys)
        query_positions = torch.arange(length - window, length, device=keys.device)[:, None]
        return scores.masked_fill(torch.arange(length, device=keys.device)[None, :] > query_positions, -torch.inf)

    def score(self, module: nn.Module, keys: torch.Tensor, values: torch.Tensor, call: Call) -> torch.Tensor:
        length = keys.shape[2]
        window = min(self.window, length)
        scores = self.window_logits(module, keys, call, window)
        attention = per_kv_head(scores.softmax(dim=-1).sum(dim=2), keys.shape[1])
        pooled = F.avg_pool1d(attention, self.kernel, stride=1, padding=self.kernel // 2, count_include_pad=False)
        pooled[..., length - window :] = torch.inf
        return pooled


@dataclass(frozen=True)
class ExpectedAttentionPress(ScorePress):
    window: int = 32
    horizon: int = 512

    def score(self, module: nn.Module, keys: torch.Tensor, values: torch.Tensor, call: Call) -> torch.Tensor:
        length = keys.shape[2]
        raw = raw_queries(module, call.hidden[:, -min(self.window, length) :])
        mean = raw.mean(dim=2, keepdim=True)  # [B, H, 1, D], before RoPE
        used = spectrum(model_spec(module), seq_len=length + self.horizon)
        positions = np.arange(length, length + self.horizon, dtype=np.float64)[:, None]
        angles = positions * used.inv_freq[None, :]
        cos = torch.as_tensor(np.cos(angles).mean(axis=0) * used.attention_factor, dtype=keys.dtype)
        sin = torch.as_tensor(np.sin(angles).mean(axis=0) * used.attention_factor, dtype=keys.dtype)
        expected = apply_rotary(mean, cos.to(keys.device), sin.to(keys.device))
        return per_kv_head(logits(expected, keys).squeeze(2), keys.shape[1])
