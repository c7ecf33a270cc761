"""Every embedded catalog entry loads into a spec and gives a spectrum (the data file's own checks are in
test_catalog_data.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ropescope import load_spec, spectrum
from ropescope.catalog import entries


@pytest.mark.parametrize("entry", entries(), ids=lambda e: e.id)
def test_every_catalog_entry_loads(entry) -> None:
    spec = load_spec(entry.id)
    assert spec.source == entry.id and spec.rotary_dim % 2 == 0
    for layer in [spec, *spec.layer_specs.values()]:
        computed = spectrum(layer, seq_len=entry.advertised_context)
        assert computed.inv_freq.shape == (layer.rotary_dim // 2,)
        assert np.all(np.isfinite(computed.inv_freq)) and computed.attention_factor > 0
