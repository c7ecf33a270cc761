"""A lab sweep: the TOML spec that names the grid, its validation, and the runs it expands to.

Keys (``tasks`` and ``encodings`` are required)::

    tasks = ["copy", "addition"]          # ropescope.lab.tasks.TASK_NAMES
    encodings = ["nope", "rope", "alibi"]  # ropescope.encodings.names()
    train_length = 20                      # inputs of 1 … train_length symbols (lm: windows of that many bytes)
    test_lengths = [10, 20, 40, 80]        # default 1 … 4·train_length
    seeds = [0, 1, 2]                      # or a count: seeds = 3
    steps = 1000
    model = {d_model = 64, n_layers = 2, n_heads = 4}
    rope_bases = [100, 10000]              # RoPE runs, one per base (default [10000])
    head_dims = [16, 32]                   # RoPE runs, one per head dimension (n_heads = d_model / head_dim)
    fixes = ["pi", "ntk", "yarn", "dynamic"]   # training-free RoPE fixes evaluated at test time
    batch_size = 32, learning_rate = 1e-3, eval_examples = 64, learned_table = 256

A run is one (task, encoding, base, head dimension, seed); its id hashes every setting, so a rerun of the same
spec skips what is finished and a changed setting is a new run.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ropescope.encodings import names as encoding_names
from ropescope.errors import RopescopeInputError
from ropescope.lab.tasks import TASK_NAMES, sequence_length

FIXES = ("pi", "ntk", "yarn", "dynamic")
PRESETS = ("smoke", "kazemnejad", "bases")
MODEL_KEYS = ("d_model", "n_layers", "n_heads")
ROPE_ENCODINGS = frozenset({"rope"})
DEFAULTS: dict[str, Any] = {
    "train_length": 20,
    "test_lengths": None,
    "seeds": [0],
    "steps": 500,
    "model": {"d_model": 64, "n_layers": 2, "n_heads": 4},
    "rope_bases": [10000.0],
    "head_dims": None,
    "fixes": [],
    "batch_size": 32,
    "learning_rate": 1e-3,
    "eval_examples": 64,
    "learned_table": None,
}
KEYS = ("tasks", "encodings", *DEFAULTS)


@dataclass(frozen=True)
class RunSettings:
    """Everything that determines one run's numbers."""

    task: str
    encoding: str
    rope_base: float | None
    head_dim: int
    seed: int
    steps: int
    train_length: int
    test_lengths: tuple[int, ...]
    d_model: int
    n_layers: int
    n_heads: int
    batch_size: int
    learning_rate: float
    eval_examples: int
    fixes: tuple[str, ...]
    learned_table: int

    @property
    def run_id(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            **asdict(self),
            "test_lengths": list(self.test_lengths),
            "fixes": list(self.fixes),
        }


@dataclass(frozen=True)
class LabSpec:
    name: str
    values: Mapping[str, Any]

    def runs(self) -> list[RunSettings]:
        v = self.values
        model = v["model"]
        test_lengths = tuple(v["test_lengths"] or range(1, 4 * v["train_length"] + 1))
        longest = max(sequence_length(task, max(test_lengths)) for task in v["tasks"])
        out = []
        for task in v["tasks"]:
            for encoding in v["encodings"]:
                rope = encoding in ROPE_ENCODINGS
                bases = v["rope_bases"] if rope else [None]
                head_dims = (v["head_dims"] or [model["d_model"] // model["n_heads"]]) if rope else [None]
                for base in bases:
                    for head_dim in head_dims:
                        heads = model["n_heads"] if head_dim is None else model["d_model"] // head_dim
                        for seed in v["seeds"]:
                            out.append(
                                RunSettings(
                                    task=task,
                                    encoding=encoding,
                                    rope_base=None if base is None else float(base),
                                    head_dim=model["d_model"] // heads,
                                    seed=int(seed),
                                    steps=v["steps"],
                                    train_length=v["train_length"],
                                    test_lengths=test_lengths,
                                    d_model=model["d_model"],
                                    n_layers=model["n_layers"],
                                    n_heads=heads,
                                    batch_size=v["batch_size"],
                                    learning_rate=float(v["learning_rate"]),
                                    eval_examples=v["eval_examples"],
                                    fixes=tuple(v["fixes"]) if rope else (),
                                    learned_table=v["learned_table"] or longest,
                                )
                            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.values}


def load_lab_spec(source: str) -> LabSpec:
    """A spec from a TOML path or the name of a shipped preset (``smoke``, ``kazemnejad``, ``bases``)."""
    path = Path(source)
    if source in PRESETS and not path.exists():
        text, name = resources.files("ropescope.lab").joinpath(f"presets/{source}.toml").read_text("utf-8"), source
    elif path.is_file():
        try:
            text, name = path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as error:
            raise RopescopeInputError(source, f"cannot be read ({error})", "give a UTF-8 TOML file") from None
    else:
        raise RopescopeInputError(source, "is neither a spec file nor a preset", f"use a .toml path or {PRESETS}")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RopescopeInputError(name, f"is not valid TOML ({error})", "fix the file") from None
    return LabSpec(name, _validated(raw, name))


def _fail(name: str, key: str, problem: str, fix: str) -> RopescopeInputError:
    return RopescopeInputError(f"{name}: {key}", problem, fix)


def _choices(name: str, key: str, values: Any, allowed: tuple[str, ...]) -> list[str]:
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise _fail(
            name, key, f"must be a non-empty list of names, got {values!r}", f"e.g. {key} = {list(allowed[:2])}"
        )
    for value in values:
        if value not in allowed:
            close = difflib.get_close_matches(value, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"use one of: {', '.join(allowed)}"
            raise _fail(name, key, f"unknown {value!r}", hint)
    return values


def _positive_int(name: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _fail(name, key, f"must be a positive integer, got {value!r}", f"e.g. {key} = 20")
    return value


def _positive_ints(name: str, key: str, value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise _fail(
            name, key, f"must be a non-empty list of positive integers, got {value!r}", f"e.g. {key} = [10, 20]"
        )
    return [_positive_int(name, key, v) for v in value]


def _position_axes(encoding: str, model: Mapping[str, int]) -> int:
    """How many coordinates a position has for ``encoding`` built at the spec's model size."""
    from ropescope.model import DecoderConfig, build_encoding

    config = DecoderConfig(
        vocab_size=2, d_model=model["d_model"], n_layers=1, n_heads=model["n_heads"], encoding=encoding
    )
    return build_encoding(config).position_axes


def _validated(raw: dict[str, Any], name: str) -> dict[str, Any]:
    for key in raw:
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            raise _fail(name, key, "is not a spec key", f"did you mean {close[0]!r}?" if close else f"use {KEYS}")
    for key in ("tasks", "encodings"):
        if key not in raw:
            raise _fail(name, key, "is missing", f"add {key} = [...]")
    values = {**DEFAULTS, **raw}
    values["tasks"] = _choices(name, "tasks", values["tasks"], TASK_NAMES)
    values["encodings"] = _choices(name, "encodings", values["encodings"], encoding_names())
    values["fixes"] = _choices(name, "fixes", values["fixes"], FIXES) if values["fixes"] else []
    for key in ("train_length", "steps", "batch_size", "eval_examples"):
        values[key] = _positive_int(name, key, values[key])
    if "lm" in values["tasks"] and values["train_length"] < 4:
        raise _fail(name, "train_length", "must be at least 4 for the lm task", "e.g. train_length = 64")
    if values["test_lengths"] is not None:
        values["test_lengths"] = sorted(set(_positive_ints(name, "test_lengths", values["test_lengths"])))
    seeds = values["seeds"]
    values["seeds"] = list(range(_positive_int(name, "seeds", seeds))) if isinstance(seeds, int) else seeds
    listed = values["seeds"]
    if (
        not isinstance(listed, list)
        or not listed
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in listed)
    ):
        raise _fail(name, "seeds", f"must be a count or a list of non-negative integers, got {seeds!r}", "e.g. 3")
    model = values["model"]
    if not isinstance(model, dict) or set(model) - set(MODEL_KEYS):
        raise _fail(name, "model", f"must be a table of {MODEL_KEYS}, got {model!r}", "e.g. model = {d_model = 64}")
    model = {**DEFAULTS["model"], **model}
    values["model"] = {key: _positive_int(name, f"model.{key}", model[key]) for key in MODEL_KEYS}
    if values["model"]["d_model"] % values["model"]["n_heads"]:
        raise _fail(name, "model", "d_model is not a multiple of n_heads", "choose n_heads dividing d_model")
    for encoding in values["encodings"]:
        axes = _position_axes(encoding, values["model"])
        if axes != 1:
            raise _fail(
                name,
                "encodings",
                f"{encoding!r} encodes {axes}-D grid positions",
                "the lab's tasks are sequences: drop it",
            )
    bases = values["rope_bases"]
    if (
        not isinstance(bases, list)
        or not bases
        or not all(isinstance(b, int | float) and not isinstance(b, bool) and b > 1 for b in bases)
    ):
        raise _fail(name, "rope_bases", f"must be a list of bases above 1, got {bases!r}", "e.g. [10, 10000]")
    if values["head_dims"] is not None:
        for head_dim in _positive_ints(name, "head_dims", values["head_dims"]):
            if head_dim % 2 or values["model"]["d_model"] % head_dim:
                raise _fail(name, "head_dims", f"{head_dim} is odd or does not divide d_model", "e.g. [16, 32]")
    if not isinstance(values["learning_rate"], int | float) or not 0 < values["learning_rate"] < 1:
        raise _fail(name, "learning_rate", f"must be in (0, 1), got {values['learning_rate']!r}", "e.g. 1e-3")
    if values["learned_table"] is not None:
        _positive_int(name, "learned_table", values["learned_table"])
    return values
