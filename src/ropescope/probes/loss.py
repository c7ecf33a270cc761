"""Next-token loss at every position of one long window, and its mean by position bin.

``loss[t] = −ln softmax(logits_t)[x_{t+1}]`` for ``t = 0 … N−2`` (nats), from one forward pass over the first
``N`` tokens. The LM head runs on blocks of positions so the N × vocab logits never sit in memory at once.
Bins are equal-width in position, so a rise past the training length shows as a step in the curve; reporting
loss per position rather than one average over the window follows Press et al. 2022 (ALiBi, arXiv 2108.12409),
who show window averages hide where a model breaks.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from ropescope.model import Decoder

LOSS_BLOCK = 512


def final_hidden_states(model: Any, input_ids: torch.Tensor) -> torch.Tensor:
    """The last hidden states of a transformers causal LM (its decoder without the LM head) or of a reference
    decoder (:class:`ropescope.model.Decoder`), no KV cache."""
    with torch.no_grad():
        if isinstance(model, Decoder):
            return model.final_hidden_states(input_ids)
        return model.get_decoder()(input_ids=input_ids, use_cache=False).last_hidden_state


def token_losses(model: Any, hidden: torch.Tensor, input_ids: torch.Tensor, block: int = LOSS_BLOCK) -> np.ndarray:
    """Per-position next-token loss (B, N−1) from final hidden states, the LM head applied block by block."""
    if isinstance(model, Decoder):
        head, softcap = model.lm_head, None
    else:
        head = model.get_output_embeddings()
        softcap = getattr(model.config, "final_logit_softcapping", None)
    targets = input_ids[:, 1:]
    out = np.empty(targets.shape, dtype=np.float64)
    with torch.no_grad():
        for start in range(0, targets.shape[1], block):
            stop = min(start + block, targets.shape[1])
            logits = head(hidden[:, start:stop]).float()
            if softcap:
                logits = torch.tanh(logits / softcap) * softcap
            loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets[:, start:stop], reduction="none")
            out[:, start:stop] = loss.double().numpy()
    return out


def binned_loss(losses: np.ndarray, bins: int) -> dict[str, list[float]]:
    """Mean loss over ``bins`` equal ranges of predicted-token position ``t + 1`` (1 … N−1), batch pooled."""
    losses = np.atleast_2d(losses)
    positions = np.arange(1, losses.shape[1] + 1)
    edges = np.unique(np.linspace(1, losses.shape[1] + 1, bins + 1).round().astype(np.int64))
    means = [float(losses[:, (positions >= lo) & (positions < hi)].mean()) for lo, hi in itertools.pairwise(edges)]
    return {"start": edges[:-1].tolist(), "stop": edges[1:].tolist(), "mean_loss": means}
