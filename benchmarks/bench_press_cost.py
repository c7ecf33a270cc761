"""What a press costs in time and memory on SmolLM2, each against a baseline measured in the same run.

For every press at ``--ratio`` of a ``--context``-token prefill:

* **decode**: median wall time of one greedy step on the compressed cache (kept = (1 − ratio) · context tokens)
  over the median of the same steps on an uncompressed cache of the same kept length (a plain prefill of that
  many tokens), the two caches' steps alternating. Goal ≤ 1.1.
* **prefill + compression**: median wall time of a prefill inside ``with press(model, p):`` over a plain prefill
  of the same tokens. Goal ≤ 1.3.
* **KV bytes**: the compressed cache's bytes over (1 − ratio) × the uncompressed bytes. Goal within 1 %.

Measurements alternate between press and baseline (``--repeats`` times each) so that a slow spell of this
noisy machine hits both. Run: ``python benchmarks/bench_press_cost.py [--context 2048] [--ratio 0.5]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench_presses import smollm2
from ropescope.presses import PRESSES, make_press
from ropescope.presses.base import cache_bytes, output_cache, press
from ropescope.probes.models import load_model

STEPS = 16


def prefill(model, ids: torch.Tensor):
    with torch.no_grad():
        return output_cache(model(input_ids=ids, use_cache=True))


def paired_decode_ms(model, first, first_start: int, second, second_start: int) -> tuple[list[float], list[float]]:
    """One-token steps alternating between two caches (each extended at its own next position), so that a slow
    spell of the machine hits both; the wall time of every step in ms, per cache."""
    times: tuple[list[float], list[float]] = ([], [])
    token = torch.tensor([[42]])
    with torch.no_grad():
        for step in range(STEPS):
            for out, cache, start in ((times[0], first, first_start), (times[1], second, second_start)):
                began = time.perf_counter()
                model(input_ids=token, past_key_values=cache, position_ids=torch.tensor([[start + step]]))
                out.append(1000 * (time.perf_counter() - began))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(str(smollm2())).model
    ids = torch.randint(100, 20000, (1, args.context), generator=torch.Generator().manual_seed(0))
    kept_length = args.context - round(args.ratio * args.context)
    full_bytes = cache_bytes(prefill(model, ids))
    print(f"SmolLM2-135M, {args.context} tokens, ratio {args.ratio}, {args.threads} thread(s), {args.repeats} repeats")
    print(f"{'press':21s}{'decode ms':>10s}{'baseline':>9s}{'ratio':>7s}{'prefill s':>11s}{'plain':>7s}{'ratio':>7s}"
          f"{'KV / (1−r)·full':>17s}")  # fmt: skip
    for name in PRESSES:
        if name == "none":
            continue
        chosen = make_press(name, args.ratio)
        decode, baseline_decode, pressed_prefill, plain_prefill = [], [], [], []
        for _ in range(args.repeats):
            began = time.perf_counter()
            with press(model, chosen):
                cache = prefill(model, ids)
            pressed_prefill.append(time.perf_counter() - began)
            kv = cache_bytes(cache)
            began = time.perf_counter()
            prefill(model, ids)
            plain_prefill.append(time.perf_counter() - began)
            short = prefill(model, ids[:, :kept_length])
            pressed_steps, plain_steps = paired_decode_ms(
                model, cache, chosen.next_position(args.context), short, kept_length
            )
            decode += pressed_steps
            baseline_decode += plain_steps
        d, b = statistics.median(decode), statistics.median(baseline_decode)
        p, q = statistics.median(pressed_prefill), statistics.median(plain_prefill)
        share = kv / ((1 - args.ratio) * full_bytes)
        print(f"{name:21s}{d:10.1f}{b:9.1f}{d / b:7.2f}{p:11.2f}{q:7.2f}{p / q:7.2f}{share:17.4f}")


if __name__ == "__main__":
    main()
