"""One lab run: train the reference decoder on a task with one encoding, then measure length generalisation.

Training: AdamW (weight decay 0.01, gradients clipped at norm 1, learning rate warmed up linearly over the first
5 % of steps), cross-entropy on the target tokens only; each step draws one input length n uniformly from
1 … train_length (lm: windows of train_length bytes). One thread, seeded: the same settings give the same
numbers on every engine.

Evaluation, on examples drawn from a separate seeded stream:

* algorithmic tasks: exact-match accuracy at each test length (every target token is the argmax given the true
  prefix, which is exact match of greedy decoding); a learned position table shorter than a test sequence makes
  that length not applicable (``None``);
* ``lm``: mean loss per position over windows of the longest test length, reported per test length as the mean
  over the positions since the previous one; the measured break is the first position of the first bin of
  train_length/4 positions whose mean loss exceeds ``BREAK_RATIO`` × the mean over the second half of the
  training window (None: it never does within the window);
* trained RoPE runs also under the training-free fixes of ``fixes``, with factor s = (test sequence tokens) /
  (longest training sequence tokens), through :mod:`ropescope.spectrum`: ``pi`` (linear, Chen et al. 2023),
  ``ntk`` (static NTK-aware base), ``yarn`` (Peng et al. 2023, original context = the training length) and
  ``dynamic`` (dynamic NTK with max_position_embeddings = the training length);
* ``lm`` RoPE runs carry the audit's predicted break (:func:`ropescope.predict.predict_break`) for the same
  base, head dimension and training context, beside the measured one.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ropescope.config import RopeSpec, spec_from_config
from ropescope.encodings.rope import RotaryEncoding
from ropescope.lab.spec import RunSettings
from ropescope.lab.tasks import batch, sequence_length, vocab_size
from ropescope.model import Decoder, DecoderConfig
from ropescope.predict import predict_break

BREAK_RATIO = 1.5
WEIGHT_DECAY = 0.01
WARMUP = 0.05
EVAL_SEED_OFFSET = 1_000_003
Progress = Callable[[int, int], None]


def decoder_for(settings: RunSettings) -> Decoder:
    options: dict[str, Any] = {}
    if settings.encoding == "rope":
        options["base"] = settings.rope_base
    if settings.encoding == "learned":
        options["max_positions"] = settings.learned_table
    config = DecoderConfig(
        vocab_size=vocab_size(settings.task),
        d_model=settings.d_model,
        n_layers=settings.n_layers,
        n_heads=settings.n_heads,
        encoding=settings.encoding,
        encoding_options=options,
    )
    return Decoder(config)


def _loss(model: Decoder, tokens: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits[scored], tokens[:, 1:][scored])


def train(model: Decoder, settings: RunSettings, progress: Progress | None = None) -> float:
    """Train in place; the mean loss over the last 10 % of steps."""
    rng = np.random.default_rng(settings.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=WEIGHT_DECAY)
    warmup = max(1, int(WARMUP * settings.steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    tail: list[float] = []
    model.train()
    for step in range(settings.steps):
        n = settings.train_length if settings.task == "lm" else int(rng.integers(1, settings.train_length + 1))
        drawn = batch(settings.task, rng, n, settings.batch_size)
        loss = _loss(model, torch.from_numpy(drawn.tokens), torch.from_numpy(drawn.scored))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step >= settings.steps - max(1, settings.steps // 10):
            tail.append(loss.item())
        if progress is not None:
            progress(step + 1, settings.steps)
    model.eval()
    return float(np.mean(tail))


def fix_spec(settings: RunSettings, fix: str, factor: float) -> RopeSpec:
    """The RoPE spec of a training-free ``fix`` with ``factor`` over the run's longest training sequence."""
    trained = sequence_length(settings.task, settings.train_length)
    scaling = {
        "pi": {"rope_type": "linear", "factor": factor},
        "ntk": {"rope_type": "ntk", "factor": factor},
        "yarn": {"rope_type": "yarn", "factor": factor, "original_max_position_embeddings": trained},
        "dynamic": {"rope_type": "dynamic", "factor": factor},
    }[fix]
    positions = math.ceil(factor * trained) if fix == "yarn" else trained
    config = {
        "head_dim": settings.head_dim,
        "rope_theta": settings.rope_base,
        "max_position_embeddings": positions,
        "rope_scaling": scaling,
    }
    return spec_from_config(config, f"lab fix {fix} ×{factor:g}")


@contextlib.contextmanager
def rotary_replaced(model: Decoder, spec: RopeSpec | None) -> Iterator[None]:
    """Every layer's RoPE computed from ``spec`` inside the block (None: unchanged); restored on exit."""
    if spec is None:
        yield
        return
    layers = [block.attention for block in model.blocks]
    saved = [layer.encoding for layer in layers]
    try:
        for layer in layers:
            layer.encoding = RotaryEncoding(spec=spec, head_dim=spec.head_dim)
        yield
    finally:
        for layer, encoding in zip(layers, saved, strict=True):
            layer.encoding = encoding


def _factor(settings: RunSettings, n: int) -> float:
    return max(1.0, sequence_length(settings.task, n) / sequence_length(settings.task, settings.train_length))


@torch.no_grad()
def accuracy(model: Decoder, settings: RunSettings, n: int, spec: RopeSpec | None = None) -> float | None:
    """Exact-match accuracy at input length ``n`` (None when a learned table is too short for it)."""
    if settings.encoding == "learned" and sequence_length(settings.task, n) > settings.learned_table:
        return None
    drawn = batch(settings.task, np.random.default_rng(settings.seed + EVAL_SEED_OFFSET + n), n, settings.eval_examples)
    tokens, scored = torch.from_numpy(drawn.tokens), torch.from_numpy(drawn.scored)
    with rotary_replaced(model, spec):
        predicted = model(tokens[:, :-1]).argmax(-1)
    correct = (predicted == tokens[:, 1:]) | ~scored
    return float(correct.all(dim=1).double().mean())


@torch.no_grad()
def position_losses(model: Decoder, settings: RunSettings, spec: RopeSpec | None = None) -> np.ndarray:
    """Mean next-byte loss at each position 1 … max(test_lengths) − 1 of the evaluation windows."""
    window = max(settings.test_lengths)
    drawn = batch("lm", np.random.default_rng(settings.seed + EVAL_SEED_OFFSET), window, settings.eval_examples)
    tokens = torch.from_numpy(drawn.tokens)
    with rotary_replaced(model, spec):
        logits = model(tokens[:, :-1])
    losses = F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none")
    return losses.mean(dim=0).double().numpy()


def loss_by_length(losses: np.ndarray, test_lengths: tuple[int, ...]) -> dict[str, float]:
    """Mean loss over the predicted positions since the previous test length, keyed by test length."""
    out, start = {}, 0
    for length in sorted(test_lengths):
        stop = min(length - 1, losses.size)
        if stop > start:
            out[str(length)] = float(losses[start:stop].mean())
        start = max(start, stop)
    return out


def measured_break(losses: np.ndarray, train_length: int) -> int | None:
    """First position of the first train_length/4-wide bin whose mean loss exceeds BREAK_RATIO × the mean over
    the second half of the training window; None when no bin does."""
    reference = float(losses[train_length // 2 : train_length - 1].mean())
    width = max(1, train_length // 4)
    for start in range(train_length - 1, losses.size - width + 1, width):
        if losses[start : start + width].mean() > BREAK_RATIO * reference:
            return start + 1  # losses[t] scores the token at position t + 1
    return None


def predicted(settings: RunSettings) -> dict[str, Any] | None:
    """The audit's predicted break for a plain RoPE lm run of this base, head dimension and training context."""
    if settings.encoding != "rope" or settings.task != "lm":
        return None
    spec = spec_from_config(
        {
            "head_dim": settings.head_dim,
            "rope_theta": settings.rope_base,
            "max_position_embeddings": settings.train_length,
            "num_hidden_layers": settings.n_layers,
        },
        "lab run",
    )
    prediction = predict_break(spec)
    return {k: prediction.to_dict()[k] for k in ("context", "low", "high", "mechanism")}


def run(settings: RunSettings, progress: Progress | None = None) -> dict[str, Any]:
    """Train and evaluate one run; the record the results writer stores (see the module docstring)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    started = time.perf_counter()
    try:
        torch.manual_seed(settings.seed)
        model = decoder_for(settings)
        record: dict[str, Any] = {**settings.to_dict(), "final_train_loss": train(model, settings, progress)}
        if settings.task == "lm":
            losses = position_losses(model, settings)
            record["loss_by_length"] = loss_by_length(losses, settings.test_lengths)
            record["break_context"] = measured_break(losses, settings.train_length)
            factor = max(settings.test_lengths) / settings.train_length
            fixed = {fix: position_losses(model, settings, fix_spec(settings, fix, factor)) for fix in settings.fixes}
            record["fix_loss_by_length"] = {f: loss_by_length(v, settings.test_lengths) for f, v in fixed.items()}
            record["fix_break_context"] = {f: measured_break(v, settings.train_length) for f, v in fixed.items()}
            record["predicted_break"] = predicted(settings)
        else:
            record["accuracy"] = {str(n): accuracy(model, settings, n) for n in settings.test_lengths}
            record["fix_accuracy"] = {
                fix: {
                    str(n): accuracy(model, settings, n, fix_spec(settings, fix, _factor(settings, n)))
                    if _factor(settings, n) > 1
                    else record["accuracy"][str(n)]
                    for n in settings.test_lengths
                }
                for fix in settings.fixes
            }
        record["wall_s"] = time.perf_counter() - started
        return record
    finally:
        torch.set_num_threads(threads)
