"""StreamingLLM (Xiao et al. 2023, "Efficient Streaming Language Models with Attention Sinks", arXiv 2309.17453):
keep the first ``sinks`` tokens and the most recent ones, and re-rotate the recent keys to the contiguous
positions that follow the sinks (:func:`ropescope.presses.rerotation.rerotate`, exact for every scaling of the
model's own spectrum), so that decoding continues at position ``kept`` as if the dropped middle never existed.
With ``rerotate=False`` the kept keys stay at their positions and decoding continues at the prefill's length
(kvpress's ``StreamingLLMPress`` without its ``KeyRerotationPress`` wrapper): every kept distance is the true one,
which suits contexts within the training length; re-rotation is what keeps an endless stream inside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ropescope.config import RopeSpec, load_spec
from ropescope.presses.base import Call, Press
from ropescope.presses.rerotation import rerotate


def model_spec(module: nn.Module) -> RopeSpec:
    """The RoPE spec of the model an attention module belongs to, read from its config."""
    return load_spec(module.config.to_dict())


@dataclass(frozen=True)
class StreamingPress(Press):
    """Sinks plus the most recent tokens; ``ratio`` of the prefill removed from the middle."""

    sinks: int = 4
    rerotate: bool = True

    def next_position(self, length: int) -> int:
        return self.kept(length) if self.rerotate and self.kept(length) < length else length

    def always_kept(self) -> int:
        return self.sinks + self.protect

    def keep(
        self, module: nn.Module, keys: torch.Tensor, values: torch.Tensor, call: Call
    ) -> tuple[torch.Tensor, torch.Tensor]:
        length = keys.shape[2]
        kept = self.kept(length)
        recent = kept - self.sinks
        if not self.rerotate:
            return (
                torch.cat((keys[:, :, : self.sinks], keys[:, :, length - recent :]), dim=2),
                torch.cat((values[:, :, : self.sinks], values[:, :, length - recent :]), dim=2),
            )
        old = torch.arange(length - recent, length, device=keys.device)
        new = torch.arange(self.sinks, kept, device=keys.device)
        moved = rerotate(
            keys[:, :, length - recent :], old, new, model_spec(module), from_length=length, to_length=kept
        )
        return (
            torch.cat((keys[:, :, : self.sinks], moved), dim=2),
            torch.cat((values[:, :, : self.sinks], values[:, :, length - recent :]), dim=2),
        )
