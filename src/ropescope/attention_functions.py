"""One way to run ropescope's own attention inside a transformers model: a registered attention function.

``with installed(model, name, function, variable, state):`` registers ``function`` under ``name`` in transformers'
``AttentionInterface`` (with transformers' own ``sdpa_mask`` in ``AttentionMaskInterface``, so the model builds the
masks it builds for SDPA), switches the model to it, sets the context variable ``variable`` to ``state`` (what the
function reads to know it is active) and restores everything on exit, even after an exception: nothing is patched
at import and no environment variable is read. The probes (:mod:`ropescope.probes.attention`) and the
interventions (PINE, ACT) are installed this way.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

from ropescope.errors import RopescopeInputError


@contextlib.contextmanager
def installed(
    model: Any,
    name: str,
    function: Callable[..., Any],
    variable: contextvars.ContextVar[Any],
    state: Any,
    fix: str = "use a Llama-like model",
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
            "model", f"{type(model).__name__} cannot switch its attention ({error})", fix
        ) from None
    if config._attn_implementation != name:
        model.set_attn_implementation(previous)
        raise RopescopeInputError("model", f"{type(model).__name__} cannot switch its attention implementation", fix)
    token = variable.set(state)
    try:
        yield state
    finally:
        variable.reset(token)
        model.set_attn_implementation(previous)
