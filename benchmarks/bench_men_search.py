"""Men et al. 2024 minimum-base search: ropescope's screened search against a plain vectorised reference.

The reference walks the same log grid from b = 1 (step 2e-4 in ln b) and checks every grid base
on every m < L with one vectorised cosine sum, stopping at the first admissible base. At a small context both
searches run to the end (measured ratio, and the two answers are compared). At L = 1M the reference would take
hours, so its cost is projected: the mean time of one full check, timed on a sample of grid bases in this run,
times the number of grid bases it must check before the answer ropescope found.

    python benchmarks/bench_men_search.py [--small 1024] [--large 1048576] [--sample 10]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from ropescope.bounds import men_min_base

ROTARY_DIM = 128


def reference_check(log_base: float, context: int, exponents: np.ndarray, chunk: int = 16384) -> bool:
    """B(m) ≥ 0 for every m < L, by the definition: cos(m·ω_i) summed over pairs, in chunks of m."""
    inv_freq = np.exp(-log_base * exponents)
    for start in range(0, context, chunk):
        m = np.arange(start, min(start + chunk, context), dtype=np.float64)
        if np.cos(m[:, None] * inv_freq[None, :]).sum(axis=1).min() < 0:
            return False
    return True


def reference_search(context: int, resolution: float) -> float:
    exponents = np.arange(0, ROTARY_DIM, 2) / ROTARY_DIM
    log_base = 0.0
    while not reference_check(log_base, context, exponents):
        log_base += resolution
    return math.exp(log_base)


def timed_search(context: int) -> tuple[float, float, int]:
    men_min_base.cache_clear()
    start = time.perf_counter()
    found = men_min_base(ROTARY_DIM, context)
    return time.perf_counter() - start, found.grid_base, found.full_checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1024, help="context at which both searches run in full")
    parser.add_argument("--large", type=int, default=1 << 20, help="context at which the reference is projected")
    parser.add_argument("--sample", type=int, default=10, help="grid bases timed to project the reference")
    args = parser.parse_args()

    ours, base, checks = timed_search(args.small)
    resolution = men_min_base(ROTARY_DIM, args.small).resolution
    start = time.perf_counter()
    reference_base = reference_search(args.small, resolution)
    reference = time.perf_counter() - start
    print(
        f"L = {args.small:,}: ropescope {ours:.2f} s ({checks} full checks) -> first admissible grid base {base:,.3f}"
    )
    print(f"  reference grid scan {reference:.2f} s -> first admissible grid base {reference_base:,.3f}")
    print(f"  measured speed-up (reference / ropescope): {reference / ours:.1f}x")

    ours, base, checks = timed_search(args.large)
    exponents = np.arange(0, ROTARY_DIM, 2) / ROTARY_DIM
    steps = int(math.log(base) / resolution) + 1
    sample = resolution * np.linspace(0, steps - 1, args.sample).round()
    start = time.perf_counter()
    for log_base in sample:
        reference_check(float(log_base), args.large, exponents)
    per_check = (time.perf_counter() - start) / args.sample
    print(
        f"L = {args.large:,}: ropescope {ours:.2f} s ({checks} full checks) -> first admissible grid base {base:,.4g}"
    )
    print(
        f"  reference: {per_check:.3f} s per full check (mean of {args.sample}; failing bases may stop early) "
        f"x {steps:,} grid bases = {per_check * steps:,.0f} s projected"
    )
    print(f"  projected speed-up (reference / ropescope): {per_check * steps / ours:,.0f}x")


if __name__ == "__main__":
    main()
