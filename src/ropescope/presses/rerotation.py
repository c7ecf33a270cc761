"""Move a cached, already rotated key from position p to position q without recomputing it.

A RoPE key cached at position p is k_p = a_p·R_p(p)·k (Su et al. 2021, arXiv 2104.09864): pair i of k rotated by
the angle p·ω_i(ℓ_p), with ω(ℓ) the spectrum in use at sequence length ℓ (:func:`ropescope.spectrum.spectrum`;
only dynamic NTK and LongRoPE depend on ℓ) and a the spectrum's attention factor. Recomputing the key at q under
the spectrum of length ℓ_q gives k_q = a_q·R_q(q)·k, so, pair by pair,

    k_q = (a_q / a_p) · R(q·ω_i(ℓ_q) − p·ω_i(ℓ_p)) · k_p

one rotation by the angle difference and one scale: exact for every scaling (StreamingLLM re-rotates its window
to contiguous positions this way, Xiao et al. 2023, arXiv 2309.17453; kvpress issue #84 is what goes wrong when
the rotation uses the unscaled spectrum under YaRN). Angles are formed in float64 and cast to the keys' dtype.
"""

from __future__ import annotations

import numpy as np
import torch

from ropescope.config import RopeSpec
from ropescope.encodings.rope import apply_rotary
from ropescope.spectrum import spectrum


def rerotate(
    keys: torch.Tensor,
    from_positions: torch.Tensor,
    to_positions: torch.Tensor,
    spec: RopeSpec,
    *,
    from_length: int | None = None,
    to_length: int | None = None,
    interleaved: bool = False,
) -> torch.Tensor:
    """``keys`` (``[..., T, head_dim]``, rotated at ``from_positions`` ``[T]``) as if rotated at ``to_positions``.

    ``from_length`` / ``to_length`` are the sequence lengths whose spectra were / will be in use (default: one
    past the largest position of each), which matters only for length-dependent spectra.
    """
    before = spectrum(spec, seq_len=from_length or int(from_positions.max()) + 1)
    after = spectrum(spec, seq_len=to_length or int(to_positions.max()) + 1)
    source = from_positions.detach().cpu().numpy().astype(np.float64)[:, None]
    target = to_positions.detach().cpu().numpy().astype(np.float64)[:, None]
    angles = torch.from_numpy(target * after.inv_freq[None, :] - source * before.inv_freq[None, :])
    scale = after.attention_factor / before.attention_factor
    cos = (angles.cos() * scale).to(device=keys.device, dtype=keys.dtype)
    sin = (angles.sin() * scale).to(device=keys.device, dtype=keys.dtype)
    return apply_rotary(keys, cos, sin, interleaved)
