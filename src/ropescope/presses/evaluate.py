"""What each press costs on one model: passkey retrieval and next-token loss after compression, KV bytes kept,
and decode time per token.

Every prompt is prefilled once, plainly, with :func:`ropescope.presses.base.captured_calls`; each press and
ratio then compresses that prefill's cache with :func:`~ropescope.presses.base.compressed_cache` (the same
``Press.compress`` its hook runs) and the rest is run on the compressed cache, as kvpress does:

* **passkey** (Mohtashami & Jaggi 2023; :mod:`ropescope.probes.passkey`): the prompt's ``context`` tokens before
  the question are compressed; the question is then fed on the compressed cache and ``NEW_TOKENS`` tokens are
  decoded greedily; a trial succeeds when the first integer equals the key. Depths × trials prompts. This is
  kvpress's query-agnostic setting. With ``question_in_prefill`` the question ends the prefill instead (SnapKV's
  setting: its window then holds the question), is never evicted (``protect``), and the first answer token comes
  from the uncompressed prefill; the ratio then applies to context and question together.
* **loss**: ``context`` tokens of the text are compressed, the next ``loss_tokens`` are fed as one chunk, and
  ``loss_t = −ln p(x_{t+1})`` (nats) is taken at each of their positions but the first (which the uncompressed
  prefill predicts); ``loss_delta`` = mean loss − the uncompressed mean on the same windows.
* **kv_bytes**: bytes of the compressed context's keys and values, all layers; **decode_ms_per_token**: mean
  wall time of the greedy decoding steps after the question (one token each); **compress_ms**: the press's own
  time per prompt.

Kept tokens keep their positions (the next token is at ``context``) except for StreamingLLM, which re-rotates
its window to follow the sinks (``Press.next_position``). After each prompt the results are saved, and a rerun
with the same model, text and settings resumes after the prompts already done.
"""

from __future__ import annotations

import hashlib
import inspect
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch

import ropescope
from ropescope.errors import RopescopeInputError
from ropescope.presses import make_press
from ropescope.presses.base import (
    Press,
    attention_modules,
    cache_bytes,
    captured_calls,
    compressed_cache,
    output_cache,
)
from ropescope.probes.loss import binned_loss
from ropescope.probes.models import LoadedModel
from ropescope.probes.passkey import NEW_TOKENS, cell_keys, minimum_length, passkey_prompt, question_ids, retrieved
from ropescope.probes.run import ProgressHook, quiet
from ropescope.provenance import code_sha256, other_run

SCHEMA_VERSION = 1
DEFINITIONS = {
    "ratio": "fraction of the context's KV pairs removed, per layer and KV head",
    "passkey_accuracy": "fraction of passkey trials whose first decoded integer equals the key (question fed after "
    "compression)",
    "passkey_by_depth": "the same per needle depth (fraction of filler before the needle), in `depths` order",
    "loss": "mean next-token loss (nats) over the `loss_tokens` fed after the compressed context, first excluded",
    "loss_delta": "loss minus the uncompressed (press none) loss on the same windows",
    "loss_by_position": "mean loss per equal bin of position after the context (bins `loss_bins`)",
    "kv_bytes": "bytes of the compressed context's keys and values, all layers (mean over prompts)",
    "kv_fraction": "kv_bytes / the uncompressed bytes",
    "decode_ms_per_token": "mean wall time of one greedy decoding step on the compressed cache",
    "compress_ms": "wall time of the press itself per prompt (scoring and gathering, all layers)",
}


@dataclass(frozen=True)
class CompressSettings:
    """Everything that decides the numbers; a rerun resumes only when these are equal."""

    context: int
    presses: tuple[str, ...] = ("streaming", "snapkv", "expected", "triattention", "dapq")
    ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)
    depths: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    trials: int = 2
    loss_windows: int = 2
    loss_tokens: int = 256
    loss_bins: int = 8
    seed: int = 0
    question_in_prefill: bool = False

    def configs(self) -> list[tuple[str, float]]:
        """(press, ratio) pairs measured: the uncompressed baseline first, then every press at every ratio."""
        return [("none", 0.0)] + [(name, ratio) for name in self.presses if name != "none" for ratio in self.ratios]

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


def config_key(name: str, ratio: float) -> str:
    return f"{name}@{ratio:g}"


@dataclass(frozen=True)
class PasskeyPrompt:
    """One passkey prompt split where compression happens: ``context`` is compressed, ``question`` is fed after."""

    depth: float
    trial: int
    key: int
    context: list[int]
    question: list[int]


def passkey_prompts(tokenizer: Any, settings: CompressSettings) -> list[PasskeyPrompt]:
    """The seeded passkey prompts of ``settings``: depths × trials, each ``context`` tokens before its question."""
    question = question_ids(tokenizer)
    out = []
    for depth_index, depth in enumerate(settings.depths):
        for trial, key in enumerate(cell_keys(settings.seed, settings.context, depth_index, settings.trials)):
            prompt = passkey_prompt(tokenizer, settings.context + len(question), depth, key)
            out.append(PasskeyPrompt(depth, trial, key, prompt[: settings.context], question))
    return out


class CompressRun:
    """Measures every press and ratio of ``settings`` on ``loaded``, saving ``results`` after each prompt."""

    def __init__(
        self,
        loaded: LoadedModel,
        token_ids: list[int],
        settings: CompressSettings,
        save: Callable[[dict[str, Any]], None],
        previous: dict[str, Any] | None = None,
        progress: ProgressHook = quiet,
    ) -> None:
        self.loaded, self.text, self.settings, self.save, self.progress = loaded, token_ids, settings, save, progress
        self.presses = {config_key(n, r): make_press(n, r) for n, r in settings.configs()}
        self._check()
        self.passkey_presses = self.presses  # with the question in the prefill, the same presses protecting it
        if settings.question_in_prefill:
            asked = len(question_ids(loaded.tokenizer))
            self.passkey_presses = {config_key(n, r): make_press(n, r, asked) for n, r in settings.configs()}
            for press_ in self.passkey_presses.values():
                press_.check_budget(settings.context + asked)
        attention_modules(loaded.model)  # a model without hookable attention fails here, before any work
        # the cache's keyword: ``cache`` in recent transformers, ``past_key_values`` before
        self.cache_argument = (
            "cache" if "cache" in inspect.signature(loaded.model.forward).parameters else "past_key_values"
        )
        fresh = self._fresh()
        if previous is not None and previous.get("resume_key") != fresh["resume_key"]:
            raise other_run("model, text, settings or ropescope code")
        self.results = fresh if previous is None else previous

    def _check(self) -> None:
        settings, loaded = self.settings, self.loaded
        if loaded.spec is None:
            raise RopescopeInputError(
                "--presses",
                f"every press reads rotated queries or the RoPE spectrum, and {loaded.source} has no rotary module",
                "compress a RoPE model",
            )
        for press_ in self.presses.values():
            press_.check_budget(settings.context)
        needed = settings.context + settings.loss_tokens
        if len(self.text) < needed:
            raise RopescopeInputError(
                "--context",
                f"{settings.context} tokens + {settings.loss_tokens} to score need {needed}, the text has "
                f"{len(self.text)}",
                "give a smaller --context or a longer --text",
            )
        if loaded.tokenizer is None:
            raise RopescopeInputError("compress", "needs the model's tokenizer for the passkey prompts", "--tokenizer")
        shortest = minimum_length(loaded.tokenizer) - len(question_ids(loaded.tokenizer)) + 16
        if settings.context < shortest:
            raise RopescopeInputError(
                "--context", f"{settings.context} tokens cannot hold a passkey prompt", f"give at least {shortest}"
            )

    def _fresh(self) -> dict[str, Any]:
        resume_key = {
            "model_sha256": self.loaded.fingerprint(),
            "text_sha256": hashlib.sha256(np.asarray(self.text, dtype=np.int64).tobytes()).hexdigest(),
            "settings": self.settings.to_dict(),
            "code_sha256": code_sha256(),
        }
        return {
            "schema_version": SCHEMA_VERSION,
            "ropescope_version": ropescope.__version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "resume_key": resume_key,
            "model": self.loaded.describe(),
            "context": self.settings.context,
            "settings": self.settings.to_dict(),
            "definitions": DEFINITIONS,
            "prompts": {},
            "results": [],
            "complete": False,
        }

    def units(self) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
        """(name, measure) of every prompt: the passkey grid, then the loss windows."""
        settings = self.settings
        out: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            (f"passkey/{prompt.depth:g}/{prompt.trial}", lambda p=prompt: self._passkey(p))
            for prompt in passkey_prompts(self.loaded.tokenizer, settings)
        ]
        span = len(self.text) - settings.context - settings.loss_tokens
        starts = sorted({round(x) for x in np.linspace(0, span, settings.loss_windows)})
        out += [(f"loss/{start}", lambda s=start: self._loss(s)) for start in starts]
        return out

    def run(self) -> dict[str, Any]:
        units = self.units()
        prompts = self.results["prompts"]
        for done, (name, measure) in enumerate(units):
            self.progress("prompts (every press and ratio)", done, len(units))
            if name not in prompts:
                prompts[name] = measure()
                self.results["results"] = rows(self.results, self.settings)
                self.save(self.results)
        self.progress("prompts (every press and ratio)", len(units), len(units))
        self.results["results"] = rows(self.results, self.settings)
        self.results["complete"] = True
        self.save(self.results)
        return self.results

    def _forward(self, ids: list[int] | torch.Tensor, cache: Any, start: int) -> Any:
        tensor = torch.as_tensor(ids).view(1, -1)
        kwargs = {self.cache_argument: cache}
        positions = torch.arange(start, start + tensor.shape[1])[None]
        with torch.no_grad():
            return self.loaded.model(input_ids=tensor, position_ids=positions, use_cache=True, **kwargs)

    def _prefill(self, ids: list[int]) -> tuple[Any, dict[int, Any], int, torch.Tensor]:
        """The plain prefill's cache, the calls its attention modules saw, its bytes and its last logits."""
        with captured_calls(self.loaded.model) as calls, torch.no_grad():
            output = self.loaded.model(input_ids=torch.tensor([ids]), use_cache=True)
        cache = output_cache(output)
        return cache, calls, cache_bytes(cache), output.logits[0, -1]

    def _compressed(self, press_: Press, cache: Any, calls: dict[int, Any]) -> tuple[Any, float]:
        began = time.perf_counter()
        kept = compressed_cache(self.loaded.model, cache, calls, press_)
        return kept, 1000 * (time.perf_counter() - began)

    def _passkey(self, prompt: PasskeyPrompt) -> dict[str, Any]:
        inside = self.settings.question_in_prefill
        prefilled = prompt.context + prompt.question if inside else prompt.context
        cache, calls, full, last = self._prefill(prefilled)
        out: dict[str, Any] = {"depth": prompt.depth, "key": prompt.key, "full_bytes": full, "configs": {}}
        for name, press_ in self.passkey_presses.items():
            kept, compress_ms = self._compressed(press_, cache, calls)
            kv_bytes = cache_bytes(kept)
            position = press_.next_position(len(prefilled))
            if not inside:
                last = self._forward(prompt.question, kept, position).logits[0, -1]
                position += len(prompt.question)
            tokens, steps = [int(last.argmax())], []
            for _ in range(NEW_TOKENS - 1):
                began = time.perf_counter()
                logits = self._forward([tokens[-1]], kept, position).logits[0, -1]
                steps.append(time.perf_counter() - began)
                tokens.append(int(logits.argmax()))
                position += 1
            answer = self.loaded.tokenizer.decode(tokens, skip_special_tokens=True)
            out["configs"][name] = {
                "answer": answer,
                "correct": retrieved(answer, prompt.key),
                "kv_bytes": kv_bytes,
                "compress_ms": compress_ms,
                "decode_ms": 1000 * float(np.mean(steps)),
            }
        return out

    def _loss(self, start: int) -> dict[str, Any]:
        context, length = self.settings.context, self.settings.loss_tokens
        window = self.text[start : start + context + length]
        cache, calls, full, _ = self._prefill(window[:context])
        targets = torch.tensor(window[context + 1 :])
        out: dict[str, Any] = {"start": start, "full_bytes": full, "configs": {}}
        for name, press_ in self.presses.items():
            kept, compress_ms = self._compressed(press_, cache, calls)
            kv_bytes = cache_bytes(kept)
            logits = self._forward(window[context:], kept, press_.next_position(context)).logits[0, :-1].float()
            losses = torch.nn.functional.cross_entropy(logits, targets, reduction="none").double().numpy()
            out["configs"][name] = {"losses": losses.tolist(), "kv_bytes": kv_bytes, "compress_ms": compress_ms}
        return out


def rows(results: dict[str, Any], settings: CompressSettings) -> list[dict[str, Any]]:
    """One row per press and ratio from the prompts measured so far (the aggregate of ``results["prompts"]``)."""
    prompts = results["prompts"]
    passkeys = [p for name, p in prompts.items() if name.startswith("passkey/")]
    windows = [p for name, p in prompts.items() if name.startswith("loss/")]
    baseline = _mean_loss(windows, config_key("none", 0.0))
    out = []
    for name, ratio in settings.configs():
        key = config_key(name, ratio)
        measured = [p["configs"][key] for p in passkeys + windows]
        full = [p["full_bytes"] for p in passkeys + windows]
        loss = _mean_loss(windows, key)
        by_depth = [
            _mean([p["configs"][key]["correct"] for p in passkeys if p["depth"] == depth]) for depth in settings.depths
        ]
        losses = np.array([p["configs"][key]["losses"] for p in windows]) if windows else None
        out.append(
            {
                "press": name,
                "ratio": ratio,
                "passkey_accuracy": _mean([p["configs"][key]["correct"] for p in passkeys]),
                "passkey_by_depth": by_depth,
                "passkey_trials": len(passkeys),
                "loss": loss,
                "loss_delta": None if loss is None or baseline is None else loss - baseline,
                "loss_by_position": None if losses is None else binned_loss(losses, settings.loss_bins),
                "kv_bytes": float(np.mean([m["kv_bytes"] for m in measured])) if measured else None,
                "kv_fraction": float(np.mean([m["kv_bytes"] for m in measured]) / np.mean(full)) if full else None,
                "decode_ms_per_token": _mean([p["configs"][key]["decode_ms"] for p in passkeys]),
                "compress_ms": _mean([m["compress_ms"] for m in measured]),
            }
        )
    return out


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _mean_loss(windows: list[dict[str, Any]], key: str) -> float | None:
    return float(np.mean([np.mean(w["configs"][key]["losses"]) for w in windows])) if windows else None
