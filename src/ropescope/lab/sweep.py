"""Run every run of a lab spec on an engine, keep each finished run, and write the sweep's result files.

Engines: ``local`` runs in this process, one run after another; ``ray`` hands each run to a Ray task (one CPU
each) on a local Ray instance or, with ``address``, on an existing cluster — the scheduling is Ray's. A run
sets its own seed and uses one thread, so both engines give the same numbers.

Files in the output folder, each rewritten atomically after every finished run (an interrupted sweep keeps what
it finished; a rerun of the same spec skips it):

* ``runs/<run id>.json``: one record per finished run (:func:`ropescope.lab.runs.run`);
* ``results.jsonl``: one row per (run, test length, fix, metric) with every setting as a column;
* ``summary.json``: ``schema_version``, the spec, and ``runs``: each run's settings, final train loss,
  accuracy by length (or loss by length, measured ``break_context`` and ``predicted_break`` for lm).
"""

from __future__ import annotations

import importlib.util
import json
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ropescope.errors import RopescopeInputError
from ropescope.lab.runs import BREAK_RATIO, run
from ropescope.lab.spec import LabSpec, RunSettings
from ropescope.report.files import write_json_atomically, write_text_atomically

ENGINES = ("local", "ray")
ADDRESS_TIMEOUT_S = 3.0
SCHEMA_VERSION = 1
SETTING_COLUMNS = (
    "run_id",
    "task",
    "encoding",
    "rope_base",
    "head_dim",
    "seed",
    "steps",
    "train_length",
    "d_model",
    "n_layers",
    "n_heads",
)
Done = Callable[[dict[str, Any]], None]
StepProgress = Callable[[int, int], None]


def check_output(out_dir: Path) -> None:
    """The output folder may exist (a resumed sweep) but must not be a file; its parent must exist."""
    if out_dir.exists() and not out_dir.is_dir():
        raise RopescopeInputError("--out", f"{out_dir} is a file", "give a folder for the sweep's results")
    if not out_dir.exists() and not out_dir.parent.is_dir():
        raise RopescopeInputError("--out", f"folder {out_dir.parent} does not exist", "create it first")


def check_engine(engine: str, address: str | None) -> None:
    if engine not in ENGINES:
        raise RopescopeInputError("--engine", f"unknown {engine!r}", f"use one of: {', '.join(ENGINES)}")
    if address is not None and engine != "ray":
        raise RopescopeInputError("--address", "applies to the Ray engine", "add --engine ray")
    if engine == "ray" and importlib.util.find_spec("ray") is None:
        raise RopescopeInputError("--engine ray", "needs Ray", "pip install 'ropescope[ray]'")
    if address is not None:
        _check_answers(address)


def finished_runs(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The records already in ``out_dir/runs`` (unreadable ones are ignored and run again)."""
    records = {}
    for path in sorted((out_dir / "runs").glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        records[record["run_id"]] = record
    return records


def result_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (test length, fix, metric) of a run record, with the run's settings as columns."""
    settings = {key: record[key] for key in SETTING_COLUMNS}
    if record["task"] == "lm":
        measured = {"none": record["loss_by_length"], **record["fix_loss_by_length"]}
        metric = "loss"
    else:
        measured = {"none": record["accuracy"], **record["fix_accuracy"]}
        metric = "accuracy"
    return [
        {**settings, "test_length": int(length), "fix": fix, "metric": metric, "value": value}
        for fix, values in measured.items()
        for length, value in values.items()
    ]


def summary_document(spec: LabSpec, records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "spec": spec.to_dict(),
        "break_rule": f"first bin of train_length/4 positions whose mean loss exceeds {BREAK_RATIO} × the mean over "
        "the second half of the training window (lm runs)",
        "runs": list(records),
    }


def _write(out_dir: Path, spec: LabSpec, records: dict[str, dict[str, Any]]) -> None:
    ordered = [records[s.run_id] for s in spec.runs() if s.run_id in records]
    lines = "".join(json.dumps(row, allow_nan=False) + "\n" for r in ordered for row in result_rows(r))
    write_text_atomically(out_dir / "results.jsonl", lines)
    write_json_atomically(out_dir / "summary.json", summary_document(spec, ordered), indent=1)


def _local(
    pending: list[RunSettings], done: Done, step: StepProgress | None, started: Callable[[RunSettings], None]
) -> None:
    for settings in pending:
        started(settings)
        done(run(settings, step))


def _ray(pending: list[RunSettings], done: Done, address: str | None) -> None:
    import ray

    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RopescopeInputError(
            "--address", f"{address!r} does not answer ({first})", "give a running cluster"
        ) from None
    try:
        remote = ray.remote(num_cpus=1)(run)
        waiting = [remote.remote(settings) for settings in pending]
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            done(ray.get(ready[0]))
    finally:
        ray.shutdown()


def _check_answers(address: str) -> None:
    """Fail at once, in one line, when nothing listens at a ``host:port`` (or ``ray://host:port``) address; Ray
    itself would retry for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=ADDRESS_TIMEOUT_S).close()
    except OSError as error:
        raise RopescopeInputError(
            "--address",
            f"{address} does not answer ({error.strerror or error})",
            "give a running Ray cluster's address",
        ) from None


def run_sweep(
    spec: LabSpec,
    out_dir: Path,
    engine: str = "local",
    address: str | None = None,
    *,
    on_run: Callable[[dict[str, Any], int, int], None] | None = None,
    on_step: StepProgress | None = None,
    on_start: Callable[[RunSettings], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run what is not finished yet; every record of the spec by run id. Callbacks report progress."""
    check_engine(engine, address)
    check_output(out_dir)
    runs = spec.runs()
    records = {k: v for k, v in finished_runs(out_dir).items() if k in {s.run_id for s in runs}}
    pending = [s for s in runs if s.run_id not in records]

    def done(record: dict[str, Any]) -> None:
        (out_dir / "runs").mkdir(parents=True, exist_ok=True)
        write_json_atomically(out_dir / "runs" / f"{record['run_id']}.json", record, indent=1)
        records[record["run_id"]] = record
        _write(out_dir, spec, records)
        if on_run is not None:
            on_run(record, len(records), len(runs))

    if pending:
        if engine == "ray":
            _ray(pending, done, address)
        else:
            _local(pending, done, on_step, on_start or (lambda settings: None))
    elif records:
        _write(out_dir, spec, records)
    return records
