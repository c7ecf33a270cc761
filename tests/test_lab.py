"""ropescope.lab: tasks worked by hand, spec validation, runs, resume, and the two engines giving the same numbers.

The smoke preset runs on the local engine and on a local Ray instance; their summaries must be equal except for
wall times.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from cli_helpers import assert_input_error, run_cli
from ropescope.errors import RopescopeInputError
from ropescope.lab import tasks
from ropescope.lab.runs import loss_by_length, measured_break
from ropescope.lab.spec import load_lab_spec
from ropescope.lab.sweep import finished_runs, result_rows, run_sweep

pytestmark = pytest.mark.torch

D = tasks.DIGIT0


def _digits(tokens: np.ndarray) -> str:
    return "".join(str(t - D) if t >= D else {tasks.PLUS: "+", tasks.BLANK: "_"}[int(t)] for t in tokens)


class _Fixed:
    """A generator whose draws are scripted, to work examples by hand."""

    def __init__(self, *draws: list[int]) -> None:
        self.draws = list(draws)

    def integers(self, low: int, high: int, size: int | None = None):  # type: ignore[no-untyped-def]
        value = self.draws.pop(0)
        return np.array(value) if size is not None else value[0]


def test_tasks_by_hand() -> None:
    assert [_digits(x) for x in tasks._reverse(_Fixed([3, 1, 4]), 3)] == ["314", "413"]
    assert [_digits(x) for x in tasks._sort(_Fixed([3, 1, 4]), 3)] == ["314", "134"]
    assert [_digits(x) for x in tasks._sum_mod10(_Fixed([9, 8, 7]), 3)] == ["987", "4"]
    assert [_digits(x) for x in tasks._parity(_Fixed([1, 1, 1]), 3)] == ["111", "1"]
    # 95 + 17 = 112, plain and least-significant-digit first
    scripted = ([9], [5], [1], [7])
    assert [_digits(x) for x in tasks._addition(_Fixed(*scripted), 2)] == ["95+17", "112"]
    assert [_digits(x) for x in tasks._addition_reversed(_Fixed(*scripted), 2)] == ["59+71", "211"]
    spaced = tasks._addition_spaced(_Fixed(*scripted, [2], [0], [1], [0]), 2)
    assert [_digits(x) for x in spaced] == ["9__5+1_7", "112"]


@pytest.mark.parametrize("task", tasks.TASK_NAMES)
def test_batches_and_their_longest_length(task: str) -> None:
    rng = np.random.default_rng(0)
    for n in (2, 3, 8) if task == "lm" else (1, 3, 8):
        drawn = tasks.batch(task, rng, n, 16)
        assert drawn.tokens.shape[1] <= tasks.sequence_length(task, n)
        assert drawn.scored.shape == (16, drawn.tokens.shape[1] - 1) and drawn.scored.any(axis=1).all()
        if task != "lm":  # the scored positions predict the target and EOS
            assert (drawn.tokens[:, -1] == tasks.EOS).all()


def test_measured_break_rule_by_hand() -> None:
    losses = np.array([2.0] * 15 + [2.0] * 8 + [3.1] * 8)  # training window 16: reference 2.0, threshold 3.0
    assert measured_break(losses, 16) == 24  # the bin of positions 24..27 (losses[23:27]) is the first above
    assert measured_break(np.full(40, 2.0), 16) is None
    assert loss_by_length(np.arange(7.0), (4, 8)) == {"4": 1.0, "8": 4.5}  # positions 1-3, then 4-7


def test_spec_runs_and_ids() -> None:
    spec = load_lab_spec("smoke")
    runs = spec.runs()
    assert len(runs) == 2 * (2 + 2)  # (copy, lm) × (nope, alibi, rope at two bases)
    assert len({r.run_id for r in runs}) == len(runs)
    assert all(r.fixes == () for r in runs if r.encoding != "rope")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('tasks = ["copy"]\nencodings = ["rope"]\nsteps = 5\ntest_length = [3]', "did you mean 'test_lengths'"),
        ('tasks = ["cpy"]\nencodings = ["rope"]', "did you mean 'copy'"),
        ('tasks = ["copy"]\nencodings = ["rotary"]', "unknown 'rotary'"),
        ('tasks = ["copy"]\nencodings = ["rope"]\nfixes = ["longrope"]', "unknown 'longrope'"),
        ('tasks = ["copy"]\nencodings = ["rope"]\ntest_lengths = [0, 4]', "positive integer"),
        ('encodings = ["rope"]', "missing"),
        ('tasks = ["copy"]\nencodings = ["rope"]\nmodel = {d_model = 30, n_heads = 4}', "multiple of n_heads"),
        ("tasks = [", "not valid TOML"),
        ('tasks = ["copy"]\nencodings = ["axial_rope"]', "2-D grid positions"),
    ],
)
def test_bad_specs(tmp_path, text: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "spec.toml"
    path.write_text(text)
    with pytest.raises(RopescopeInputError) as error:
        load_lab_spec(str(path))
    assert fragment in str(error.value)


def _quick(tmp_path, extra: str = ""):  # type: ignore[no-untyped-def]
    path = tmp_path / "quick.toml"
    path.write_text(
        'tasks = ["copy"]\nencodings = ["nope", "learned"]\ntrain_length = 4\ntest_lengths = [2, 4, 8]\n'
        "steps = 5\nbatch_size = 4\neval_examples = 4\nmodel = {d_model = 16, n_layers = 1, n_heads = 2}\n" + extra
    )
    return load_lab_spec(str(path))


def test_short_learned_table_is_not_applicable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    records = run_sweep(_quick(tmp_path, "learned_table = 12\n"), tmp_path / "out")
    learned = next(r for r in records.values() if r["encoding"] == "learned")
    assert learned["accuracy"]["8"] is None  # copy of 8 symbols is 18 tokens > 12
    assert learned["accuracy"]["4"] is not None


def test_resume_skips_finished_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec, out = _quick(tmp_path), tmp_path / "out"
    seen: list[str] = []
    first = run_sweep(spec, out, on_run=lambda record, done, total: seen.append(record["run_id"]))
    assert len(seen) == 2 and set(finished_runs(out)) == set(first)
    (out / "runs" / f"{seen[1]}.json").unlink()  # as if interrupted after the first run
    again: list[str] = []
    second = run_sweep(spec, out, on_run=lambda record, done, total: again.append(record["run_id"]))
    assert again == [seen[1]] and set(second) == set(first)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == sum(len(result_rows(r)) for r in second.values()) == 2 * 3
    assert {"run_id", "task", "encoding", "seed", "test_length", "fix", "metric", "value"} <= set(rows[0])


@pytest.mark.slow
def test_smoke_preset_same_numbers_on_local_and_ray(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("ray")
    local = run_cli("lab", "run", "smoke", "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    ray = run_cli("lab", "run", "smoke", "--out", str(tmp_path / "ray"), "--engine", "ray")
    assert ray.returncode == 0, ray.stderr
    summaries = [json.loads((tmp_path / name / "summary.json").read_text()) for name in ("local", "ray")]
    strip = [[{k: v for k, v in r.items() if k != "wall_s"} for r in s["runs"]] for s in summaries]
    assert strip[0] == strip[1] and len(strip[0]) == 8
    for name in ("accuracy.png", "bases.png"):
        assert (tmp_path / "local" / name).read_bytes()[:4] == b"\x89PNG"
    lm = [r for r in summaries[0]["runs"] if r["task"] == "lm" and r["encoding"] == "rope"]
    assert all(r["predicted_break"]["low"] == 8 for r in lm)  # one unscaled stage: its training context
    table = run_cli("lab", "table", str(tmp_path / "local"))
    assert table.returncode == 0 and "copy" in table.stdout and "rope b=100+yarn" in table.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("lab", "run", "nosuch", "--out", "{tmp}/o"), ("nosuch", "preset")),
        (("lab", "run", "smoke", "--out", "{tmp}/o", "--engine", "spark"), ("--engine", "local, ray")),
        (("lab", "run", "smoke", "--out", "{tmp}/o", "--address", "127.0.0.1:1"), ("--address", "Ray engine")),
        (("lab", "run", "smoke", "--out", "{tmp}/o", "--engine", "ray", "--address", "127.0.0.1:1"), ("answer",)),
        (("lab", "run", "smoke", "--out", "{tmp}/missing/o"), ("--out", "does not exist")),
        (("lab", "table", "{tmp}"), ("summary.json",)),
    ],
)
def test_cli_bad_input(tmp_path, args: tuple[str, ...], fragments: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    if "ray" in args:
        pytest.importorskip("ray")
    assert_input_error(run_cli(*[a.format(tmp=tmp_path) for a in args]), *fragments)
    assert list(tmp_path.iterdir()) == []
