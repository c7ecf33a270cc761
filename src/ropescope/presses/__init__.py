"""KV-cache compression that knows RoPE's geometry: the press API (``base``: a frozen dataclass per press,
``with press(model, p):`` hooks installed and removed), the exact re-rotation of cached keys (``rerotation``),
and the presses by name (:data:`PRESSES`): ``none``, StreamingLLM (``streaming``, re-rotated, and
``streaming-unrotated``, kvpress's form), SnapKV and expected attention
(``scored``), TriAttention (``triattention``) and DapQ (``dapq``). ``ropescope compress`` measures them
(``evaluate``)."""

from __future__ import annotations

from ropescope.errors import RopescopeInputError
from ropescope.presses.base import NoPress, Press
from ropescope.presses.dapq import DapQPress
from ropescope.presses.scored import ExpectedAttentionPress, SnapKVPress
from ropescope.presses.streaming import StreamingPress
from ropescope.presses.triattention import TriAttentionPress

PRESSES: dict[str, type[Press]] = {
    "none": NoPress,
    "streaming": StreamingPress,
    "streaming-unrotated": StreamingPress,
    "snapkv": SnapKVPress,
    "expected": ExpectedAttentionPress,
    "triattention": TriAttentionPress,
    "dapq": DapQPress,
}


def make_press(name: str, ratio: float, protect: int = 0) -> Press:
    """The press called ``name`` removing ``ratio`` of the cache (never the last ``protect`` tokens), with its
    default settings."""
    if name not in PRESSES:
        raise RopescopeInputError("--presses", f"unknown press {name!r}", f"choose from {', '.join(PRESSES)}")
    if name == "none":
        return NoPress()
    if name == "streaming-unrotated":
        return StreamingPress(ratio=ratio, protect=protect, rerotate=False)
    return PRESSES[name](ratio=ratio, protect=protect)
