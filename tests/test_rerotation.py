"""Re-rotation against recomputation, for default, linear, dynamic NTK, YaRN, llama3 and LongRoPE (lengths on
both sides of the dynamic and LongRoPE switch points).

A key rotated at p and moved to q by ``rerotate`` must equal the key rotated at q: to 1e-5 against a float64
recomputation by ``RotaryEncoding`` (angles in float64), and to float32 rounding against transformers' own
rotary code, which forms its angles in float32 (at position 300 that alone is ~2e-5).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ropescope.config import load_spec  # noqa: E402
from ropescope.presses.rerotation import rerotate  # noqa: E402
from test_encodings_rope import HEAD_DIM, HF_TYPES, config_dict  # noqa: E402
from test_encodings_rope import SCALINGS as ENCODING_SCALINGS  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.hf]

SCALINGS = {name: ENCODING_SCALINGS[name] or {"rope_type": "default"} for name in HF_TYPES}


def _config(scaling: dict) -> dict:
    return config_dict(scaling)


def _hf_rotated(config: dict, keys: torch.Tensor, positions: torch.Tensor, length: int) -> torch.Tensor:
    """transformers' key at ``positions`` when the sequence is ``length`` tokens long."""
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    rotary = LlamaRotaryEmbedding(LlamaConfig(**config, vocab_size=32))
    cos, sin = rotary(keys, torch.arange(length)[None])  # the spectrum of a sequence of this length
    cos, sin = cos[:, positions], sin[:, positions]
    return apply_rotary_pos_emb(keys, keys, cos, sin)[1]


def _float64_rotated(spec, keys: torch.Tensor, positions: torch.Tensor, length: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """The key at ``positions`` under the spectrum of a ``length``-token sequence, angles in float64."""
    from ropescope.encodings.rope import RotaryEncoding, apply_rotary, rotary_angles
    from ropescope.spectrum import spectrum

    used = spectrum(spec, seq_len=length)
    encoding = RotaryEncoding(spectrum=used, head_dim=HEAD_DIM, angle_dtype=torch.float64)
    angles = rotary_angles(positions, encoding.inv_freq, torch.float64)
    factor = used.attention_factor
    return apply_rotary(keys, angles.cos() * factor, angles.sin() * factor)


@pytest.mark.parametrize("name", list(SCALINGS))
@pytest.mark.parametrize(("from_length", "to_length"), [(48, 48), (48, 300), (300, 120)])
def test_rerotated_key_equals_the_key_recomputed_at_its_new_position(
    name: str, from_length: int, to_length: int
) -> None:
    config = _config(SCALINGS[name])
    generator = torch.Generator().manual_seed(1)
    raw = torch.randn(1, 2, 8, HEAD_DIM, dtype=torch.float64, generator=generator)
    old = torch.tensor([3, 5, 9, 17, 30, 31, 40, 47])[: raw.shape[2]]
    new = torch.arange(8) + (to_length - 8)  # contiguous at the end of the new sequence
    spec = load_spec(config)
    cached = _float64_rotated(spec, raw, old, from_length)
    moved = rerotate(cached, old, new, spec, from_length=from_length, to_length=to_length)
    torch.testing.assert_close(moved, _float64_rotated(spec, raw, new, to_length), atol=1e-5, rtol=1e-5)
    from_hf = rerotate(
        _hf_rotated(config, raw, old, from_length), old, new, spec, from_length=from_length, to_length=to_length
    )
    torch.testing.assert_close(from_hf, _hf_rotated(config, raw, new, to_length), atol=5e-5, rtol=1e-4)


def test_rerotating_to_the_same_position_is_the_identity() -> None:
    keys = torch.randn(1, 1, 4, HEAD_DIM, dtype=torch.float64)
    positions = torch.tensor([0, 7, 8, 100])
    spec = load_spec(_config(SCALINGS["yarn"]))
    torch.testing.assert_close(rerotate(keys, positions, positions, spec), keys, atol=1e-12, rtol=0)
