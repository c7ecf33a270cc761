"""Run the five probes on one model and text, under its own spectrum and optionally a patched one.

Units of work are the forward pass over the window (attention statistics and per-position loss together) and
each (length, depth) cell of the passkey grid. After each unit the results document is rewritten atomically,
so an interrupted run keeps everything it finished, and a rerun into the same folder skips what is already there
when the model (SHA-256 of its files), the window (SHA-256 of its token ids), the spectra and the settings are
the same; otherwise it is refused rather than mixing two runs. Within the forward pass, given a ``checkpoint``
path, each finished layer is checkpointed (:mod:`ropescope.probes.checkpoint`) and a rerun under the same key
goes on from the next layer; the checkpoint is deleted once the pass's results are saved. ``results.json``
records the ropescope version, when the run began (``created``, UTC) and the axes of every array (``axes``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ropescope
from ropescope.config import RopeSpec, load_spec
from ropescope.errors import RopescopeInputError
from ropescope.probes.attention import AttentionProbe, probe_attention
from ropescope.probes.checkpoint import Checkpoint, checkpointed_layers, read_checkpoint, write_checkpoint
from ropescope.probes.loss import binned_loss, final_hidden_states, token_losses
from ropescope.probes.models import LoadedModel
from ropescope.probes.passkey import cell_keys, minimum_length, run_trial
from ropescope.probes.stats import FIRST_K_DEFAULT
from ropescope.probes.summary import (
    SINK_THRESHOLD,
    AttentionSummary,
    default_min_queries,
    secondary_sinks,
    summarise,
)
from ropescope.provenance import code_sha256, other_run
from ropescope.spectrum import spectrum

METRICS = ("entropy", "sinks", "distance", "loss", "passkey")
ATTENTION_METRICS = ("entropy", "sinks", "distance")
FIRST_TOKEN_SINK = 0.3  # Gu et al. 2025: a head has a first-token sink when its column mean at 0 exceeds 0.3
SCHEMA_VERSION = 1
DEFINITIONS = {
    "position_bins": "query rows grouped by position i into [0,1), [1,2), [2,4), [4,8), ... (log2 bins)",
    "entropy": "H_i = -sum_j A[i,j] ln A[i,j] in nats over the keys row i may see; mean over rows per bin",
    "normalised_entropy": "H_i / ln(n_i), n_i = keys row i may see; rows with n_i = 1 are excluded; 1 = uniform",
    "first_mass": "A[i,0] averaged over queries i >= 1 (StreamingLLM's attention on the first token)",
    "first_k_mass": "sum_{j<k} A[i,j] averaged over queries i >= k",
    "first_token_sink": "a head has one when the column mean of key 0 exceeds 0.3 (Gu et al. 2025, epsilon 0.3)",
    "column_mean": "a_j = sum_i A[i,j] / #{i that see j} (ACT, Yu et al. 2024)",
    "uniform_ratio": "sum_i A[i,j] / sum_{i that see j} 1/n_i: mass received over mass under uniform attention",
    "secondary_sink": "key j >= 1 seen by >= sink_min_queries queries (default max(16, context/16)) with "
    "column_mean > sink_threshold (ACT's calibration threshold 0.1 by default)",
    "distance_bins": "relative distance d = i - j in the same log2 bins; bin 0 is d = 0",
    "mean_mass": "mass a query puts in a distance bin, averaged over the queries that see the bin",
    "density": "mass in a distance bin per visible (query, key) pair: mean weight of one key at that distance",
    "slope": "least-squares slope of ln(density) against ln(centre), centre = sqrt(lo * min(hi - 1, L - 1)), "
    "over bins with d >= 1",
    "loss": "next-token cross-entropy (nats) at each predicted position 1..N-1, mean per equal-width bin",
    "passkey": "Landmark/PI template in exactly `length` tokens; depth = fraction of filler before the needle; "
    "greedy decoding; correct when the first integer in the continuation equals the 5-digit key",
}
AXES = {  # the axes of every array under metrics.<spectrum>.<metric>, outermost first
    "entropy": {
        "entropy": ["layer", "head", "position_bin"],
        "normalised_entropy": ["layer", "head", "position_bin"],
        "mean_entropy": ["layer", "head"],
        "mean_normalised_entropy": ["layer", "head"],
        "layer_normalised_entropy_by_bin": ["layer", "position_bin"],
        "layer_mean_normalised_entropy": ["layer"],
    },
    "sinks": {
        "first_mass": ["layer", "head"],
        "first_k_mass": ["layer", "head"],
        "first_mass_by_bin": ["layer", "head", "position_bin"],
        "first_token_column_mean": ["layer", "head"],
        "heads_with_first_token_sink": ["layer"],
        "secondary": ["layer", "head", "sink"],
    },
    "distance": {
        "mean_mass": ["layer", "head", "distance_bin"],
        "density": ["layer", "head", "distance_bin"],
        "slope": ["layer", "head"],
        "layer_mean_slope": ["layer"],
        "layer_density": ["layer", "distance_bin"],
    },
    "loss": {"bins.mean_loss": ["loss_bin"]},
    "passkey": {"accuracy": ["length", "depth"]},
}


@dataclass(frozen=True)
class ProbeSettings:
    """Everything that decides the numbers; a rerun resumes only when these are equal."""

    context: int
    metrics: tuple[str, ...] = METRICS
    passkey_lengths: tuple[int, ...] = ()
    passkey_depths: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    passkey_trials: int = 2
    seed: int = 0
    first_k: int = FIRST_K_DEFAULT
    sink_threshold: float = SINK_THRESHOLD
    sink_min_queries: int | None = None  # None: max(16, context / 16)
    loss_bins: int = 32
    block_rows: int | None = None
    patch: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


def default_passkey_lengths(context: int, shortest: int) -> tuple[int, ...]:
    """``context/8, context/4, context/2, context``, dropping lengths too short for the fixed prompt parts."""
    lengths = sorted({context // 8, context // 4, context // 2, context})
    return tuple(length for length in lengths if length >= shortest + 16) or (context,)


def patched_spec(own: RopeSpec, text: str) -> RopeSpec:
    """``--patch`` as a spec: ``TYPE:FACTOR`` (e.g. ``yarn:4``, scaling from the model's training context) or a
    config file (a model config.json or a catalog id, read by :func:`ropescope.config.load_spec`)."""
    rope_type, _, factor = text.partition(":")
    if not factor or Path(text).exists():
        return load_spec(text)
    try:
        value = float(factor)
    except ValueError:
        raise RopescopeInputError("--patch", f"factor {factor!r} is not a number", "write e.g. yarn:4") from None
    config = {
        "rope_theta": own.base,
        "head_dim": own.head_dim,
        "partial_rotary_factor": own.rotary_dim / own.head_dim,
        "num_hidden_layers": own.num_layers or 1,
        "max_position_embeddings": own.max_position_embeddings or own.training_context,
        "rope_scaling": {
            "rope_type": rope_type,
            "factor": value,
            "original_max_position_embeddings": own.training_context,
        },
    }
    return load_spec(config)


@contextlib.contextmanager
def _applied(model: Any, spec: RopeSpec | None) -> Iterator[None]:
    if spec is None:
        yield
        return
    from ropescope.patching import patch

    with patch(model, spec):
        yield


def _head_mean(values: np.ndarray) -> np.ndarray:
    """Mean over heads (axis 1) ignoring NaN; NaN where every head is NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=1)


def attention_metrics(summary: AttentionSummary, settings: ProbeSettings, tokens: list[str]) -> dict[str, Any]:
    """The JSON form of the entropy, sink and distance statistics."""
    edges = summary.position_edges
    bins = {"start": edges[:-1].tolist(), "stop": edges[1:].tolist()}
    out: dict[str, Any] = {}
    if "entropy" in settings.metrics:
        out["entropy"] = {
            "position_bins": bins,
            "entropy": summary.entropy,
            "normalised_entropy": summary.normalised_entropy,
            "mean_entropy": summary.mean_entropy,
            "mean_normalised_entropy": summary.mean_normalised_entropy,
            "layer_normalised_entropy_by_bin": _head_mean(summary.normalised_entropy),
            "layer_mean_normalised_entropy": summary.mean_normalised_entropy.mean(axis=1),
        }
    if "sinks" in settings.metrics:
        found = secondary_sinks(summary, settings.sink_threshold, settings.sink_min_queries)
        counts: dict[int, int] = {}
        for layer in found:
            for head in layer:
                for position, _, _ in head:
                    counts[position] = counts.get(position, 0) + 1
        out["sinks"] = {
            "threshold": settings.sink_threshold,
            "min_queries": settings.sink_min_queries or default_min_queries(summary.length),
            "first_k": summary.first_k,
            "position_bins": bins,
            "first_mass": summary.first_mass,
            "first_k_mass": summary.first_k_mass,
            "first_mass_by_bin": summary.first_mass_by_bin,
            "first_token_column_mean": summary.column_mean[:, :, 0],
            "heads_with_first_token_sink": (summary.column_mean[:, :, 0] > FIRST_TOKEN_SINK).mean(axis=1),
            "secondary": [
                [
                    [{"position": p, "column_mean": m, "uniform_ratio": r, "token": tokens[p]} for p, m, r in head]
                    for head in layer
                ]
                for layer in found
            ],
            "secondary_positions": [
                {"position": p, "token": tokens[p], "heads": n}
                for p, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            ],
        }
    if "distance" in settings.metrics:
        out["distance"] = {
            "distance_bins": {**{"start": bins["start"], "stop": bins["stop"]}, "centre": summary.distance_centres},
            "mean_mass": summary.distance_mass,
            "density": summary.distance_density,
            "slope": summary.distance_slope,
            "layer_mean_slope": _head_mean(summary.distance_slope),
            "layer_density": _head_mean(summary.distance_density),
        }
    return out


def loss_metrics(losses: np.ndarray, settings: ProbeSettings, training_context: int | None) -> dict[str, Any]:
    positions = np.arange(1, losses.shape[-1] + 1)
    out: dict[str, Any] = {
        "bins": binned_loss(losses, settings.loss_bins),
        "mean_loss": float(losses.mean()),
        "training_context": training_context,
    }
    if training_context is not None:
        inside = positions < training_context
        out["within_training_context"] = float(losses[..., inside].mean()) if inside.any() else None
        out["beyond_training_context"] = float(losses[..., ~inside].mean()) if (~inside).any() else None
    return out


def _resumable(previous: dict[str, Any], fresh: dict[str, Any]) -> dict[str, Any]:
    """``previous`` when it was made from the same model (file hash), window (token hash), ropescope code,
    spectra and settings; else an input error naming what differs, so a resumed run never mixes two runs' numbers."""
    from ropescope.report.probe_view import to_json

    expected = to_json(fresh)
    differs = [
        what
        for what, same in (
            ("model file", previous.get("resume_key", {}).get("model_sha256") == fresh["resume_key"]["model_sha256"]),
            ("text", previous.get("resume_key", {}).get("window_sha256") == fresh["resume_key"]["window_sha256"]),
            ("ropescope code", previous.get("resume_key", {}).get("code_sha256") == fresh["resume_key"]["code_sha256"]),
            ("spectrum", previous.get("spectrum") == expected["spectrum"]),
            ("settings", previous.get("settings") == expected["settings"]),
        )
        if not same
    ]
    if differs:
        raise other_run(", ".join(differs))
    return previous


ProgressHook = Callable[[str, int, int], None]


def quiet(description: str, done: int, total: int) -> None:
    """The progress hook that reports nothing."""
    del description, done, total


class ProbeRun:
    """Runs the requested probes, writing ``results`` through ``save`` after each finished unit and, given a
    ``checkpoint`` path, the forward pass's layer checkpoint there after each layer."""

    def __init__(
        self,
        loaded: LoadedModel,
        token_ids: list[int],
        settings: ProbeSettings,
        save: Callable[[dict[str, Any]], None],
        previous: dict[str, Any] | None = None,
        progress: ProgressHook = quiet,
        checkpoint: Path | None = None,
    ) -> None:
        self.loaded = loaded
        self.settings = settings
        self.save = save
        self.progress = progress
        self.checkpoint = checkpoint  # the layer checkpoint of the forward pass; None: the pass is one unit
        self.window = token_ids[: settings.context]
        needs_text = any(metric != "passkey" for metric in settings.metrics)
        if needs_text and len(token_ids) < settings.context:
            raise RopescopeInputError(
                "--context",
                f"{settings.context} tokens asked but the text has only {len(token_ids)}",
                "give a smaller --context or a longer --text",
            )
        if loaded.spec is None and settings.patch and loaded.kind == "decoder":
            raise RopescopeInputError(
                "--patch",
                "needs a transformers RoPE model; the reference decoder has no rotary spec to swap",
                "build a second Decoder with the other encoding options and probe it",
            )
        if loaded.spec is None and settings.patch:
            raise RopescopeInputError(
                "--patch", f"{loaded.source} has no rotary module to swap: it does not use RoPE", "probe a RoPE model"
            )
        if loaded.tokenizer is None and "passkey" in settings.metrics:
            raise RopescopeInputError(
                "passkey",
                "needs a tokenizer to write its prompt, and this decoder was given none",
                "pass a tokenizer to wrap_decoder, or leave passkey out of the metrics",
            )
        self.patched = patched_spec(loaded.spec, settings.patch) if settings.patch else None
        if self.patched is not None:
            self._check_patchable()
        fresh = self._fresh()
        self.results = fresh if previous is None else _resumable(previous, fresh)

    def _check_patchable(self) -> None:
        """Fail before any work when the model has no rotary module the patch can reach."""
        with _applied(self.loaded.model, self.patched):
            pass

    def _fresh(self) -> dict[str, Any]:
        runs = {"own": self.loaded.spec} | ({"patched": self.patched} if self.patched is not None else {})
        return {
            "schema_version": SCHEMA_VERSION,
            "ropescope_version": ropescope.__version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "resume_key": {
                "model_sha256": self.loaded.fingerprint(),
                "window_sha256": hashlib.sha256(np.asarray(self.window, dtype=np.int64).tobytes()).hexdigest(),
                "code_sha256": code_sha256(),
            },
            "model": self.loaded.describe(),
            "context": self.settings.context,
            "settings": self.settings.to_dict(),
            "spectrum": {
                name: spectrum(spec, self.settings.context).to_dict(self.settings.context)
                if spec is not None
                else {"encoding": self.loaded.describe()["encoding"], "training_context": None}
                for name, spec in runs.items()
            },
            "metrics": {name: {} for name in runs},
            "definitions": DEFINITIONS,
            "axes": AXES,
            "complete": False,
        }

    def run(self) -> dict[str, Any]:
        for name in self.results["metrics"]:
            spec = self.patched if name == "patched" else None
            with _applied(self.loaded.model, spec):
                self._window_pass(name)
                if "passkey" in self.settings.metrics:
                    self._passkey(name)
        if "patched" in self.results["metrics"]:
            self.results["comparison"] = compare(self.results["metrics"]["own"], self.results["metrics"]["patched"])
        self.results["complete"] = True
        self.save(self.results)
        return self.results

    def _window_pass(self, name: str) -> None:
        wanted = [m for m in self.settings.metrics if m != "passkey"]
        metrics = self.results["metrics"][name]
        if not wanted or all(m in metrics for m in wanted):
            return
        model = self.loaded.model
        ids = torch.tensor([self.window])
        probe = AttentionProbe(self.settings.first_k, self.settings.block_rows)
        key = self._checkpoint_key(name)
        resumed = read_checkpoint(self.checkpoint, key) if self.checkpoint is not None else None
        if resumed is not None:
            probe.layers, probe.length = dict(resumed.statistics), len(self.window)
        progress = f"{name}: forward over {len(self.window)} tokens, layers"
        layers = self.loaded.num_layers

        def after_layer(done: int, hidden: torch.Tensor) -> None:
            if self.checkpoint is not None:
                write_checkpoint(self.checkpoint, Checkpoint(key, done, hidden, probe.layers))
            self.progress(progress, done, layers)

        probing = any(m in ATTENTION_METRICS for m in wanted)
        self.progress(progress, resumed.layers_done if resumed is not None else 0, layers)
        attending = probe_attention(model, probe) if probing else contextlib.nullcontext()
        with attending, checkpointed_layers(model, resumed, after_layer):
            hidden = final_hidden_states(model, ids)
        if probing:
            tokenizer = self.loaded.tokenizer
            tokens = tokenizer.convert_ids_to_tokens(self.window) if tokenizer else [str(i) for i in self.window]
            metrics.update(attention_metrics(summarise(probe), self.settings, tokens))
        if "loss" in wanted:
            losses = token_losses(model, hidden, ids)[0]
            metrics["loss"] = loss_metrics(losses, self.settings, self.loaded.training_context)
        self.save(self.results)
        self.progress(progress, layers, layers)
        if self.checkpoint is not None:
            self.checkpoint.unlink(missing_ok=True)

    def _checkpoint_key(self, name: str) -> str:
        """What a layer checkpoint of the ``name`` pass must have been written under: the run's model and window
        hashes, its spectra and settings (what :func:`_resumable` compares) and the spectrum being run."""
        from ropescope.report.probe_view import to_json

        identity = {key: self.results[key] for key in ("resume_key", "spectrum", "settings")} | {"pass": name}
        return hashlib.sha256(json.dumps(to_json(identity), sort_keys=True).encode()).hexdigest()

    def _passkey(self, name: str) -> None:
        settings = self.settings
        tokenizer = self.loaded.tokenizer
        lengths = settings.passkey_lengths or default_passkey_lengths(settings.context, minimum_length(tokenizer))
        record = self.results["metrics"][name].setdefault(
            "passkey",
            {
                "lengths": list(lengths),
                "depths": list(settings.passkey_depths),
                "trials": settings.passkey_trials,
                "cells": [],
            },
        )
        done = {(cell["length"], cell["depth"]) for cell in record["cells"]}
        total = len(lengths) * len(settings.passkey_depths)
        for length in lengths:
            for depth_index, depth in enumerate(settings.passkey_depths):
                self.progress(f"{name}: passkey cells", len(record["cells"]), total)
                if (length, depth) in done:
                    continue
                keys = cell_keys(settings.seed, length, depth_index, settings.passkey_trials)
                trials = [run_trial(self.loaded.model, tokenizer, length, depth, key) for key in keys]
                record["cells"].append(
                    {
                        "length": length,
                        "depth": depth,
                        "keys": keys,
                        "answers": [t.answer for t in trials],
                        "correct": [t.correct for t in trials],
                        "accuracy": float(np.mean([t.correct for t in trials])),
                    }
                )
                record["accuracy"] = _accuracy_grid(record)
                self.save(self.results)
        self.progress(f"{name}: passkey cells", total, total)


COMPARED = {
    "entropy": ("layer_mean_normalised_entropy",),
    "sinks": ("first_mass", "heads_with_first_token_sink"),
    "distance": ("layer_mean_slope",),
    "loss": ("mean_loss", "within_training_context", "beyond_training_context"),
    "passkey": ("accuracy",),
}


def compare(own: dict[str, Any], patched: dict[str, Any]) -> dict[str, Any]:
    """Side by side: each compared quantity under both spectra and ``patched − own`` (NaN/None where missing)."""
    out: dict[str, Any] = {}
    for metric, keys in COMPARED.items():
        if metric not in own or metric not in patched:
            continue
        out[metric] = {}
        for key in keys:
            a, b = own[metric].get(key), patched[metric].get(key)
            difference = np.array(b, dtype=np.float64) - np.array(a, dtype=np.float64)
            out[metric][key] = {"own": a, "patched": b, "difference": difference}
    if "loss" in out:
        a, b = own["loss"]["bins"]["mean_loss"], patched["loss"]["bins"]["mean_loss"]
        out["loss"]["bins"] = {
            "start": own["loss"]["bins"]["start"],
            "own": a,
            "patched": b,
            "difference": np.subtract(b, a),
        }
    return out


def _accuracy_grid(record: dict[str, Any]) -> list[list[float | None]]:
    """Accuracy [length][depth], ``None`` for cells not run yet."""
    found = {(cell["length"], cell["depth"]): cell["accuracy"] for cell in record["cells"]}
    return [[found.get((length, depth)) for depth in record["depths"]] for length in record["lengths"]]
