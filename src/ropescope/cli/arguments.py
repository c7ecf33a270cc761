"""Parsing of CLI arguments shared by every command: one place decides what a context, a list of fractions or a
list of known names may look like."""

from __future__ import annotations

import contextlib
import math
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from ropescope.bounds import MAX_CONTEXT
from ropescope.errors import RopescopeInputError

_SUFFIX = {"": 1, "k": 1024, "m": 1024 * 1024}


def parse_positive_int(option: str, text: str | None, maximum: int = MAX_CONTEXT) -> int | None:
    """A positive whole number up to ``maximum`` (by default the largest context ropescope audits): digits
    (``131072``, ``131_072``) or a binary suffix (``128K`` = 131072, ``1M``)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d[\d_]{0,40})\s*([kKmM]?)\s*", text)
    value = int(match.group(1).replace("_", "")) * _SUFFIX[match.group(2).lower()] if match else 0
    if value <= 0:
        raise RopescopeInputError(
            option, f"must be a positive whole number of tokens, got {text!r}", "write e.g. 8192, 128K or 1M"
        )
    if value > maximum:
        raise RopescopeInputError(
            option, f"is {value:,}, beyond the largest supported ({maximum:,})", f"use at most {maximum:,}"
        )
    return value


PLOT_FORMATS = (".png", ".svg", ".pdf")


def parse_output_path(option: str, path: Path | None, suffixes: tuple[str, ...]) -> Path | None:
    """An output file with one of ``suffixes`` whose folder exists and which is not a folder; checked before any
    work starts."""
    if path is None:
        return None
    if path.suffix.lower() not in suffixes:
        raise RopescopeInputError(option, f"{path} has no {'/'.join(suffixes)} extension", "choose such a name")
    if not path.parent.is_dir():
        raise RopescopeInputError(option, f"folder {path.parent} does not exist", "create it or choose another path")
    if path.is_dir():
        raise RopescopeInputError(option, f"{path} is a folder", "give a file name")
    try:  # the folder must take a file now, not after the work is done
        tempfile.TemporaryFile(dir=path.parent).close()
    except OSError as error:
        raise RopescopeInputError(
            option, f"folder {path.parent} cannot be written ({error.strerror})", "choose another"
        ) from None
    return path


def parse_plot_path(option: str, path: Path | None) -> Path | None:
    """A plot file whose folder exists and whose extension matplotlib writes; checked before any work starts."""
    return parse_output_path(option, path, PLOT_FORMATS)


def parse_pretrained(text: str | None) -> tuple[float, int] | None:
    """``--pretrained BASE@N`` (``10000@4096``, ``1e4@4K``) as (base, context), contexts written as for --context."""
    from ropescope.lineage import check_base

    if text is None:
        return None
    fix = "write --pretrained BASE@N, e.g. --pretrained 10000@4096"
    base_text, at, context_text = text.partition("@")
    try:
        base = float(base_text)
    except ValueError:
        base = math.nan
    if not at or not math.isfinite(base):
        raise RopescopeInputError("--pretrained", f"{text!r} is not BASE@N", fix)
    base = check_base("--pretrained", base, fix)
    try:
        context = parse_positive_int("--pretrained", context_text)
    except RopescopeInputError:
        raise RopescopeInputError("--pretrained", f"{text!r}: the context after @ is not a token count", fix) from None
    assert context is not None
    return base, context


def check_out_folder(out: Path) -> None:
    """``--out`` must be a folder that can be written: checked (and created) before the model is loaded."""
    if out.exists() and not out.is_dir():
        raise RopescopeInputError("--out", f"{out} is a file", "give a folder for results.json and the plots")
    try:
        out.mkdir(parents=True, exist_ok=True)
        marker = out / ".ropescope-write-test"
        marker.touch()
        marker.unlink()
    except OSError as error:
        raise RopescopeInputError(
            "--out", f"{out} cannot be written ({error.strerror})", "choose a writable folder"
        ) from None


def parse_names(option: str, text: str, known: Sequence[str], kind: str) -> tuple[str, ...]:
    """``a, b,a`` as the tuple ``('a', 'b')`` of names in ``known`` (duplicates dropped, order kept); an unknown
    name, or none, is an input error that lists the known ones."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        given = ", ".join(unknown) or "(none given)"
        raise RopescopeInputError(option, f"unknown {kind} {given}", f"choose from {','.join(known)}")
    return names


def parse_fractions(option: str, text: str, upper_open: bool = False, example: str = "0,0.5,1") -> tuple[float, ...]:
    """``0,0.25,1`` as a tuple of fractions in [0, 1] (``upper_open``: [0, 1)); anything else is an input error."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    inside = all(0 <= v < 1 if upper_open else 0 <= v <= 1 for v in values)
    if not values or not inside:
        interval = "[0, 1)" if upper_open else "[0, 1]"
        raise RopescopeInputError(option, f"{text!r} is not a list of fractions in {interval}", f"write e.g. {example}")
    return values


@contextlib.contextmanager
def previous_results_named(out: Path) -> Iterator[None]:
    """A resumable run's refusal of its ``previous results`` names the file they are in (``out/results.json``)."""
    try:
        yield
    except RopescopeInputError as error:
        if error.what != "previous results":
            raise
        raise RopescopeInputError(str(out / "results.json"), error.problem, error.fix) from None
