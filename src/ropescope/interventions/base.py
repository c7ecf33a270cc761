"""What the interventions share: the checks on a call, and SDPA that also returns the row's log-sum-exp.

They are installed as registered transformers attention functions by
:func:`ropescope.attention_functions.installed` (the mechanism the probes use too). The functions see the whole
prompt at once (prefill, no KV cache — PINE also decodes new tokens after the documents — no padding, no custom
mask); anything else is refused as an input error.

:func:`attend` is ``softmax(q kᵀ · scale) v`` block-wise (PyTorch's fused kernel, no L×L matrix kept) together
with ``lse_i = log Σ_j exp(q_i·k_j · scale)``.
"""

from __future__ import annotations

from typing import Any

import torch

from ropescope.errors import RopescopeInputError

_UNSUPPORTED_KWARGS = {
    "softcap": "attention logit soft-capping",
    "s_aux": "learned attention-sink logits",
    "position_bias": "an additive position bias",
    "sliding_window": "a sliding attention window",
}


def attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    scale: float,
    causal: bool = False,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(out (B, H, Q, D), lse (B, H, Q))`` of attention over keys (B, H, K, D) with an additive ``mask``
    broadcast to (B, H, Q, K) (``causal``: top-left aligned, as SDPA's ``is_causal``)."""
    if query.is_cuda:
        out, lse, *_ = torch.ops.aten._scaled_dot_product_efficient_attention(
            query, key, value, mask, True, 0.0, causal, scale=scale
        )
        return out, lse[..., : query.shape[2]]
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        query, key, value, 0.0, causal, attn_mask=mask, scale=scale
    )


def check_call(
    name: str,
    query: torch.Tensor,
    key: torch.Tensor,
    attention_mask: torch.Tensor | None,
    kwargs: dict[str, Any],
    cache: bool = False,
) -> None:
    """Refuse what the interventions do not model: a KV cache (unless ``cache``: the caller checks where the new
    queries are), padding or custom masks, and extra biases."""
    for option, what in _UNSUPPORTED_KWARGS.items():
        if kwargs.get(option) is not None:
            raise RopescopeInputError("model", f"uses {what}, which {name} does not model", "use a Llama-like model")
    if key.shape[2] != query.shape[2] and not cache:
        raise RopescopeInputError(
            name,
            f"saw {query.shape[2]} queries against {key.shape[2]} keys",
            "run the whole prompt with use_cache=False",
        )
    if attention_mask is not None:
        raise RopescopeInputError(name, "got an attention mask (padding?)", "run unpadded prompts of equal length")


def sdpa(module: torch.nn.Module, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' own SDPA attention, for calls an intervention leaves alone."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, *args, **kwargs)
