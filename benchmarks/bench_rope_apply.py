"""Applying RoPE to q and k on CPU: ropescope against transformers' ``apply_rotary_pos_emb``.

Two measurements per shape, each a ratio of best-of-8 times (median of 5 alternating rounds) taken in
this run (ratio < 1: ropescope faster):

* ``apply``: rotating q and k from precomputed tables — ``ropescope.encodings.rope.apply_rotary`` (half-width
  cos/sin) against ``transformers.models.llama.modeling_llama.apply_rotary_pos_emb`` (full-width cos/sin);
* ``end-to-end``: positions → rotated q and k — ``build("rope").rotate`` against ``LlamaRotaryEmbedding`` +
  ``apply_rotary_pos_emb``.

Both sides are checked to give the same tensors first. Run: ``python benchmarks/bench_rope_apply.py``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

from ropescope.encodings import build
from ropescope.encodings.rope import apply_rotary

SHAPES = [(1, 32, 1024, 128), (4, 8, 512, 64), (8, 16, 256, 128), (1, 8, 4096, 64)]  # batch, heads, T, head_dim


def fastest_seconds(function: Callable[[], object], repeats: int) -> float:
    function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return min(samples)


def paired(ours: Callable[[], object], baseline: Callable[[], object], rounds: int = 5, repeats: int = 8) -> tuple:
    """Best-of-``repeats`` times (the least disturbed by other load), alternating the two sides for ``rounds``
    and taking the median round."""
    mine, theirs = [], []
    for _ in range(rounds):
        mine.append(fastest_seconds(ours, repeats))
        theirs.append(fastest_seconds(baseline, repeats))
    return statistics.median(mine), statistics.median(theirs)


def measure(batch: int, heads: int, length: int, head_dim: int) -> dict[str, tuple[float, float]]:
    """``{step: (ropescope seconds, transformers seconds)}`` for one shape, after checking equal outputs."""
    q, k = torch.randn(2, batch, heads, length, head_dim)
    positions = torch.arange(length)
    config = LlamaConfig(hidden_size=heads * head_dim, num_attention_heads=heads, head_dim=head_dim)
    hf_rotary = LlamaRotaryEmbedding(config)
    ours = build("rope", base=config.rope_parameters["rope_theta"], rotary_dim=head_dim)
    cos_full, sin_full = hf_rotary(q, positions[None])
    cos_half, sin_half = (t[None, :, :, : head_dim // 2] for t in (cos_full, sin_full))

    expected = apply_rotary_pos_emb(q, k, cos_full, sin_full)
    # ropescope rounds θ from float64 once, transformers computes θ in float32: angles differ by ~T·1e-7
    torch.testing.assert_close(ours.rotate(q, k, positions)[:2], expected, atol=1e-6 * length, rtol=0)
    torch.testing.assert_close(apply_rotary(q, cos_half, sin_half), expected[0])

    cases = {
        "apply": (
            lambda: (apply_rotary(q, cos_half, sin_half), apply_rotary(k, cos_half, sin_half)),
            lambda: apply_rotary_pos_emb(q, k, cos_full, sin_full),
        ),
        "end-to-end": (
            lambda: ours.rotate(q, k, positions),
            lambda: apply_rotary_pos_emb(q, k, *hf_rotary(q, positions[None])),
        ),
    }
    with torch.inference_mode():
        return {step: paired(mine, theirs) for step, (mine, theirs) in cases.items()}


def main() -> None:
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU")
    print(f"{'shape (B, H, T, D)':<22} {'step':<11} {'ropescope ms':>13} {'transformers ms':>16} {'ratio':>7}")
    worst = 0.0
    for shape in SHAPES:
        for step, (t_mine, t_theirs) in measure(*shape).items():
            ratio = t_mine / t_theirs
            worst = max(worst, ratio)
            label = "(" + ", ".join(map(str, shape)) + ")"
            print(f"{label:<22} {step:<11} {1e3 * t_mine:>13.3f} {1e3 * t_theirs:>16.3f} {ratio:>7.2f}")
    verdict = "within" if worst <= 1.10 else "OVER"
    print(f"worst ratio ropescope/transformers: {worst:.2f} ({verdict} the 1.10 budget)")


if __name__ == "__main__":
    main()
