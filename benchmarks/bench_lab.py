"""Wall time of the lab's smoke preset on the local and the Ray engine, and each engine's overhead per run.

Both engines run the same spec into fresh folders in this run; the summaries are checked to be equal (wall
times aside). Overhead per run = (sweep wall time − compute a run's own timer saw, divided by the workers that
run at once) / runs: the local engine runs one at a time, Ray one per CPU. The ratio printed is Ray's wall time
over the local engine's (the baseline, measured in the same run; < 1: Ray faster).
Run: ``python benchmarks/bench_lab.py``.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from ropescope.lab.spec import load_lab_spec
from ropescope.lab.sweep import run_sweep


def timed(engine: str, out: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    records = run_sweep(load_lab_spec("smoke"), out, engine)
    return time.perf_counter() - start, records


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        local_s, local = timed("local", Path(folder) / "local")
        ray_s, ray = timed("ray", Path(folder) / "ray")
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in local.values()]
    assert strip == [{k: v for k, v in ray[k2].items() if k != "wall_s"} for k2 in local], "engines disagree"
    runs = len(local)
    workers = min(runs, os.cpu_count() or 1)
    for name, wall, records, parallel in (("local", local_s, local, 1), ("ray", ray_s, ray, workers)):
        compute = sum(r["wall_s"] for r in records.values())
        overhead = (wall - compute / parallel) / runs
        print(
            f"{name:5s}: {runs} runs in {wall:6.1f} s (runs' own time {compute:5.1f} s), overhead {overhead:5.2f} s/run"
        )
    print(f"ray / local wall time: {ray_s / local_s:.2f}")


if __name__ == "__main__":
    main()
