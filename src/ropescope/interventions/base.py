"""Installing an intervention as a registered transformers attention function, and SDPA that also returns the
row's log-sum-exp.

``with installed(model, name, function, variable, state):`` registers ``function`` under ``name`` in transformers'
``AttentionInterface`` (with transformers' own ``sdpa_mask`` in ``AttentionMaskInterface``, so the model builds the
masks it builds for SDPA), switches the model to it, sets the context variable ``variable`` to ``state`` and
restores everything on exit, even after an exception: nothing is patched at import and no environment variable is
read. The functions see the whole prompt at once (prefill, no KV cache, no padding, no custom mask); anything
else is refused as an input error.

:func:`attend` is ``softmax(q kᵀ · scale) v`` block-wise (PyTorch's fused kernel, no L×L matrix kept) together
with ``lse_i = log Σ_j exp(q_i·k_j · scale)``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
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
    name: str, query: torch.Tensor, key: torch.Tensor, attention_mask: torch.Tensor | None, kwargs: dict[str, Any]
) -> None:
    """Refuse what the interventions do not model: a KV cache, padding or custom masks, and extra biases."""
    for option, what in _UNSUPPORTED_KWARGS.items():
        if kwargs.get(option) is not None:
            raise RopescopeInputError("model", f"uses {what}, which {name} does not model", "use a Llama-like model")
    if key.shape[2] != query.shape[2]:
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


@contextlib.contextmanager
def installed(
    model: Any, name: str, function: Callable[..., Any], variable: contextvars.ContextVar[Any], state: Any
) -> Iterator[Any]:
    """Route every attention layer of the transformers ``model`` through ``function`` while the block runs."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "set_attn_implementation"):
        raise RopescopeInputError(
            "model", f"{type(model).__name__} has no replaceable attention", "load a transformers model"
        )
    AttentionInterface.register(name, function)
    AttentionMaskInterface.register(name, sdpa_mask)
    previous = config._attn_implementation
    try:
        model.set_attn_implementation(name)
    except (ValueError, NotImplementedError) as error:
        raise RopescopeInputError(
            "model", f"{type(model).__name__} cannot switch its attention ({error})", "use a Llama-like model"
        ) from None
    if config._attn_implementation != name:
        model.set_attn_implementation(previous)
        raise RopescopeInputError(
            "model", f"{type(model).__name__} cannot switch its attention implementation", "use a Llama-like model"
        )
    token = variable.set(state)
    try:
        yield state
    finally:
        variable.reset(token)
        model.set_attn_implementation(previous)
