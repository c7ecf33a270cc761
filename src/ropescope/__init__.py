"""ropescope: will this model's positional encoding hold at the context length you want?

The flow: :func:`load_spec` normalises any config into a :class:`RopeSpec`; :func:`spectrum` gives its exact
frequencies; ``ropescope.bounds``/``ropescope.audit`` judge them; ``ropescope.encodings``, ``ropescope.model``
and ``ropescope.patch`` implement them in PyTorch; ``ropescope.probes`` measures real models.

``ropescope.presses`` compresses their KV cache.

``ropescope.patch(model, spec_or_spectrum)`` and ``ropescope.press(model, press)`` are imported on first use, so
``import ropescope`` needs numpy only.
"""

from typing import Any

from ropescope.config import Finding, RopeSpec, load_spec
from ropescope.errors import RopescopeInputError
from ropescope.spectrum import Spectrum, spectrum

__version__ = "0.1.0"

__all__ = ["Finding", "RopeSpec", "RopescopeInputError", "Spectrum", "load_spec", "patch", "press", "spectrum"]


def __getattr__(name: str) -> Any:
    if name == "patch":  # torch and transformers are optional: import them only when asked
        from ropescope.patching import patch

        return patch
    if name == "press":
        from ropescope.presses.base import press

        return press
    raise AttributeError(f"module 'ropescope' has no attribute {name!r}")
