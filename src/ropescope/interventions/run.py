"""``ropescope bias``: accuracy by gold position and order sensitivity of a model, plain and under each
intervention, on the retrieval task of :mod:`ropescope.interventions.retrieval`.

Each trial runs as one batch of its K orders (same tokens, same length), one forward pass, no KV cache: the answer
is the argmax of the last position's logits. ``pine`` re-positions the documents of each batch
(:mod:`.pine`); ``act`` first chooses heads by :func:`ropescope.interventions.act.search_layers` on held-out
trials (another seed) at the smallest K, keeping the layers whose calibration raises (accuracy, mean gold
log-probability), then runs with them at every K (:mod:`.act`). Results are handed to ``save`` after every
(K, intervention), so an interrupted run keeps what it finished, and a rerun of the same model, settings and code
into the same folder resumes from there.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import ropescope
from ropescope.interventions.retrieval import Trial, encode, make_trials, order_sensitivity, single_token_values
from ropescope.provenance import code_sha256, other_run

SCHEMA_VERSION = 1
INTERVENTIONS = ("none", "pine", "act", "pine-causal", "pine-unmoved")
PINE_ABLATIONS = {"pine": (True, True), "pine-causal": (False, True), "pine-unmoved": (True, False)}
ACT_KEYS = ("act_heads", "act_search", "act_searched_at")
HELD_OUT_SEED = 1000  # held-out trials for the ACT head search use seed + 1000 + K
DEFINITIONS = {
    "intervention": "none (the model as loaded, SDPA), pine (PINE, Wang et al. ICLR 2025), act (ACT sink "
    "calibration, Yu et al. ICML 2024, on the heads in act_heads), or a PINE ablation: pine-causal (re-positioning "
    "only, causal masks) or pine-unmoved (bidirectional attention between documents only, positions unchanged)",
    "documents": "K, the documents per prompt; each trial is shown in K orders, gold document at slot 0 … K−1",
    "trials": "document sets measured; each gives one answer per slot",
    "accuracy_by_position": "fraction of trials whose greedy answer token is the gold value, per gold slot, slot 0 "
    "(first document after the instruction) first",
    "accuracy": "mean of accuracy_by_position",
    "accuracy_by_trial": "fraction of a trial's K orders answered correctly, per trial in generation order (the same "
    "trials for every intervention at one K, so differences between interventions can be paired)",
    "order_sensitivity": "fraction of pairs of orders of one trial whose answers differ, mean over trials (0: the "
    "answer never depends on the order)",
    "mean_gold_log_probability": "mean log-probability (nats) of the gold value token",
    "seconds": "wall time of the measurement (ACT: without its head search)",
    "act_heads": "(layer, head) pairs ACT calibrates, chosen on held-out trials at K = act_searched_at",
    "act_search": "the greedy search: per step the layer tried, its held-out [accuracy, mean gold log-probability] "
    "and whether it was kept (the first step is no head)",
}

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class BiasSettings:
    documents: tuple[int, ...]
    trials: int
    interventions: tuple[str, ...]
    seed: int = 0
    search_trials: int = 4
    beta: float = 0.4
    threshold: float = 0.1


@contextlib.contextmanager
def _intervention(model: Any, name: str, spans: list[list[tuple[int, int]]], calibration: Any) -> Iterator[None]:
    if name in PINE_ABLATIONS:
        from ropescope.interventions.pine import DocumentLayout, PineOptions, pine

        bidirectional, reposition = PINE_ABLATIONS[name]
        with pine(model, DocumentLayout.of(spans), PineOptions(bidirectional, reposition)):
            yield
    elif name == "act":
        from ropescope.interventions.act import act

        with act(model, calibration):
            yield
    else:
        yield


def measure(
    loaded: Any, trials: list[Trial], name: str, calibration: Any = None, progress: Progress | None = None
) -> dict[str, Any]:
    """Accuracy by gold slot, order sensitivity and mean gold log-probability of ``trials`` under ``name``."""
    import torch

    tokenizer, model = loaded.tokenizer, loaded.model
    slots = len(trials[0].documents)
    correct, by_trial, sensitivity, log_probability = [0] * slots, [], [], 0.0
    started = time.perf_counter()
    for done, trial in enumerate(trials, 1):
        encoded = [encode(tokenizer, trial, trial.order(slot)) for slot in range(slots)]
        ids = torch.tensor([ids for ids, _ in encoded])
        answer = tokenizer(trial.answer, add_special_tokens=False)["input_ids"][0]
        with torch.no_grad(), _intervention(model, name, [spans for _, spans in encoded], calibration):
            logits = model(ids, use_cache=False, logits_to_keep=1).logits[:, -1].float()
        predicted = logits.argmax(-1).tolist()
        for slot, token in enumerate(predicted):
            correct[slot] += token == answer
        by_trial.append(sum(token == answer for token in predicted) / slots)
        sensitivity.append(order_sensitivity(predicted))
        log_probability += float(logits.log_softmax(-1)[:, answer].mean())
        if progress is not None:
            progress(f"K={slots} {name}", done, len(trials))
    by_position = [c / len(trials) for c in correct]
    return {
        "accuracy_by_position": by_position,
        "accuracy": sum(by_position) / slots,
        "accuracy_by_trial": by_trial,
        "order_sensitivity": sum(sensitivity) / len(sensitivity),
        "mean_gold_log_probability": log_probability / len(trials),
        "seconds": time.perf_counter() - started,
    }


def _choose_heads(loaded: Any, settings: BiasSettings, documents: int, progress: Progress | None) -> tuple[Any, list]:
    from ropescope.interventions.act import search_layers

    held_out = make_trials(
        settings.search_trials,
        documents,
        settings.seed + HELD_OUT_SEED + documents,
        single_token_values(loaded.tokenizer),
    )
    config = loaded.model.config

    def score(calibration: Any) -> tuple[float, float]:
        measured = measure(loaded, held_out, "act", calibration)
        return measured["accuracy"], measured["mean_gold_log_probability"]

    def step(done: int, total: int) -> None:
        if progress is not None:
            progress(f"K={documents} ACT head search", done, total)

    return search_layers(
        score, range(2, config.num_hidden_layers), config.num_attention_heads, settings.beta, settings.threshold, step
    )


def run_bias(
    loaded: Any,
    settings: BiasSettings,
    save: Callable[[dict[str, Any]], None],
    progress: Progress | None = None,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every (K, intervention) of ``settings`` on ``loaded``; ``save`` gets the results after each. ``previous``
    results of the same model file, settings and ropescope code are resumed: their rows are kept, not measured
    again (ACT reuses the heads they hold); results of another run are refused."""
    from ropescope.interventions.act import SinkCalibration

    values = single_token_values(loaded.tokenizer)
    key = {"model_sha256": loaded.fingerprint(), "code_sha256": code_sha256(), "settings": asdict(settings)}
    fresh: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "ropescope_version": ropescope.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "resume_key": json.loads(json.dumps(key)),  # as it reads back from results.json (lists, not tuples)
        "model": loaded.describe(),
        "settings": asdict(settings),
        "task": {
            "values": len(values),
            "answer": "greedy next token",
            "documents_per_prompt": list(settings.documents),
        },
        "definitions": DEFINITIONS,
        "rows": [],
        "complete": False,
    }
    if previous is not None and previous.get("resume_key") != fresh["resume_key"]:
        raise other_run("model, settings or ropescope code")
    results = previous or fresh
    done = {(row["documents"], row["intervention"]) for row in results["rows"]}
    searched = next(({key: row[key] for key in ACT_KEYS} for row in results["rows"] if "act_heads" in row), {})
    heads = tuple(tuple(head) for head in searched.get("act_heads", ()))
    calibration = SinkCalibration(heads, settings.beta, settings.threshold) if searched else None
    for documents in settings.documents:
        trials = make_trials(settings.trials, documents, settings.seed + documents, values)
        for name in settings.interventions:
            if (documents, name) in done:
                continue
            row: dict[str, Any] = {"intervention": name, "documents": documents, "trials": settings.trials}
            if name == "act":
                if not searched:
                    at = min(settings.documents)
                    calibration, steps = _choose_heads(loaded, settings, at, progress)
                    searched = {"act_heads": [list(head) for head in calibration.heads], "act_search": steps}
                    searched["act_searched_at"] = at
                row.update(searched)
            row.update(measure(loaded, trials, name, calibration if name == "act" else None, progress))
            results["rows"].append(row)
            save(results)
    results["complete"] = True
    save(results)
    return results
