"""What the benchmarks measure the same way: the fastest of several calls and the peak growth of the resident set.

Each measurement runs in its own process (the callers start one per case), so ``ru_maxrss`` is that case's peak.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def fastest_and_peak(run: Callable[[], None], warm_up: Callable[[], None], repeats: int) -> dict[str, float]:
    """``warm_up()`` once (allocator pools, lazy imports), then ``run()`` ``repeats`` times: the fastest wall time in
    seconds and the peak resident memory above what the process held after the warm-up, in bytes."""
    warm_up()
    baseline = resident_bytes()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seconds": min(seconds), "peak_bytes": max(0, peak - baseline)}


def alternating_fastest(runs: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Each of ``runs`` once to warm up, then ``repeats`` rounds calling each in turn (so that a slow spell of the
    machine hits every one): the fastest wall time in seconds of each."""
    for run in runs.values():
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return {name: min(times) for name, times in seconds.items()}
