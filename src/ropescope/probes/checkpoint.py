"""Per-layer checkpoints of the probed forward pass over the window, so that an interrupt keeps finished layers.

The window's forward pass (attention statistics of every layer, then the final hidden states for the loss) is
one unit of :class:`ropescope.probes.run.ProbeRun`, and on a long window it takes minutes. While it runs, a
forward hook on each decoder layer writes a checkpoint after the layer (``torch.save`` through a temporary file
and a rename): the layer's output, which is the hidden states the next layer reads, and the accumulated
attention statistics of the finished layers. A rerun under the same key runs the model's own forward pass with
the finished layers' ``forward`` answering the saved hidden states, so the model rebuilds its embeddings, masks
and rotary embeddings itself, every later layer reads bit-identical inputs, and the resumed numbers equal an
uninterrupted run's. Running the model's own forward, rather than calling its layers one by one from here,
keeps what differs between architectures (per-layer sliding-window masks, scaled embeddings, patched rotary
modules) in transformers' hands.

The layers are the ``ModuleList`` of ``num_hidden_layers`` modules in a transformers model's decoder (a
transformers 5 layer returns its hidden states tensor) or the blocks of the reference decoder (which return
``(x, cache)``; no cache is kept). A model whose layers are not found there runs the pass as one unit: no
checkpoints, no resume.
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ropescope.model import Decoder
from ropescope.probes.stats import LayerStatistics
from ropescope.report.files import write_atomically

CHECKPOINT_FILE = "forward-checkpoint.pt"

LayerHook = Callable[[int, torch.Tensor], None]


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """The forward pass after ``layers_done`` layers: their statistics and the hidden states entering the next."""

    key: str
    layers_done: int
    hidden: torch.Tensor
    statistics: dict[int, LayerStatistics]


def write_checkpoint(path: Path, checkpoint: Checkpoint) -> Path:
    """``checkpoint`` at ``path`` atomically, as tensors, strings and integers only (loadable with
    ``weights_only=True``)."""
    document = {
        "key": checkpoint.key,
        "layers_done": checkpoint.layers_done,
        "hidden": checkpoint.hidden,
        "statistics": {layer: vars(stats) for layer, stats in checkpoint.statistics.items()},
    }

    def save(temporary: Path) -> None:
        with temporary.open("wb") as stream:
            torch.save(document, stream)

    return write_atomically(path, save)


def read_checkpoint(path: Path, key: str) -> Checkpoint | None:
    """The checkpoint at ``path`` when it was written under ``key``; ``None`` when there is none, it is another
    run's, or it cannot be read (the pass then starts from the first layer and overwrites it)."""
    try:
        document = torch.load(path, weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):
        return None
    if not isinstance(document, dict) or document.get("key") != key:
        return None
    statistics = {int(layer): LayerStatistics(**fields) for layer, fields in document["statistics"].items()}
    return Checkpoint(key, int(document["layers_done"]), document["hidden"], statistics)


@dataclass(frozen=True)
class _Layers:
    """A model's decoder layers and the shape of what each returns."""

    modules: torch.nn.ModuleList
    returns_cache: bool  # the reference decoder's blocks return (x, cache)

    def hidden(self, output: Any) -> torch.Tensor | None:
        if self.returns_cache:
            return output[0]
        return output if isinstance(output, torch.Tensor) else None

    def output(self, hidden: torch.Tensor) -> Any:
        return (hidden, None) if self.returns_cache else hidden


def _layers(model: Any) -> _Layers | None:
    if isinstance(model, Decoder):
        return _Layers(model.blocks, returns_cache=True)
    count = model.config.num_hidden_layers
    found = [
        child
        for child in model.get_decoder().children()
        if isinstance(child, torch.nn.ModuleList) and len(child) == count
    ]
    return _Layers(found[0], returns_cache=False) if len(found) == 1 else None


@contextlib.contextmanager
def checkpointed_layers(model: Any, resumed: Checkpoint | None, after_layer: LayerHook) -> Iterator[None]:
    """Inside the block, ``model``'s forward pass skips the ``resumed.layers_done`` layers ``resumed`` holds
    (each answers ``resumed.hidden``) and calls ``after_layer(layers_done, hidden_out)`` after every layer it
    runs that returns its hidden states. When the layers are not found the pass runs unchanged and nothing is
    called."""
    layers = _layers(model)
    if layers is None:
        yield
        return
    done, saved = (0, None) if resumed is None else (resumed.layers_done, layers.output(resumed.hidden))
    skipped = list(layers.modules)[:done]
    handles = []
    try:
        for module in skipped:
            module.forward = lambda *args, **kwargs: saved
        for index, module in enumerate(list(layers.modules)[done:], start=done):

            def hook(_module: Any, _args: Any, output: Any, index: int = index) -> None:
                hidden = layers.hidden(output)
                if hidden is not None:
                    after_layer(index + 1, hidden)

            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
        for module in skipped:
            del module.forward
