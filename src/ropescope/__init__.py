"""ropescope: will this model's positional encoding hold at the context length you want?

The flow: :func:`load_spec` normalises any config into a :class:`RopeSpec`; :func:`spectrum` gives its exact
frequencies; ``ropescope.bounds``/``ropescope.audit`` judge them; ``ropescope.encodings``, ``ropescope.model``
and ``ropescope.patch`` implement them in PyTorch; ``ropescope.probes`` measures real models.
"""

from ropescope.config import Finding, RopeSpec, load_spec
from ropescope.errors import RopescopeInputError
from ropescope.spectrum import Spectrum, spectrum

__version__ = "0.1.0"

__all__ = ["Finding", "RopeSpec", "RopescopeInputError", "Spectrum", "load_spec", "spectrum"]
