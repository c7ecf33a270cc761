"""The retrieval task by hand, ``measure`` against unbatched plain forward passes on a tiny random Llama with a
word-level tokenizer, PINE's zero order sensitivity there, and the ``bias`` CLI's bad input (one line, exit 2)."""

from __future__ import annotations

import itertools
import json
import re
from types import SimpleNamespace

import pytest

from cli_helpers import assert_input_error, run_cli
from ropescope.cli.arguments import parse_names
from ropescope.errors import RopescopeInputError
from ropescope.interventions.retrieval import encode, make_trials, order_sensitivity, paired_gain
from ropescope.interventions.run import INTERVENTIONS


class WordTokenizer:
    """One id per word or punctuation mark (a leading space belongs to the word), ids from a growing table."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        pieces = re.findall(r" ?[\w']+|\s|[^\w\s]", text)
        return {"input_ids": [self.ids.setdefault(piece, len(self.ids)) for piece in pieces]}


def test_orders_put_the_gold_document_at_every_slot() -> None:
    trial = make_trials(1, 4, seed=3)[0]
    orders = [trial.order(slot) for slot in range(4)]
    assert [order.index(trial.gold) for order in orders] == [0, 1, 2, 3]
    assert all(sorted(order) == [0, 1, 2, 3] for order in orders)
    assert all([d for d in order if d != trial.gold] == list(trial.others) for order in orders)
    assert trial.answer.strip() in trial.documents[trial.gold] and trial.question.endswith(" is")
    assert make_trials(2, 4, seed=3) == make_trials(2, 4, seed=3) != make_trials(2, 4, seed=4)


def test_encoded_documents_tile_one_range() -> None:
    tokenizer = WordTokenizer()
    trial = make_trials(1, 3, seed=0)[0]
    ids, spans = encode(tokenizer, trial, trial.order(1))
    assert spans[0][0] == len(tokenizer("Below are some facts. Read them, then answer the question.\n\n")["input_ids"])
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans)) and spans[-1][1] < len(ids)
    first = tokenizer(trial.documents[trial.order(1)[0]], add_special_tokens=False)["input_ids"]
    assert ids[spans[0][0] : spans[0][1]] == first


def test_order_sensitivity_by_hand() -> None:
    assert order_sensitivity([1, 1, 1]) == 0.0
    assert order_sensitivity([1, 1, 2]) == pytest.approx(2 / 3)  # pairs (0,2), (1,2) of three differ
    assert order_sensitivity([1, 2, 3, 4]) == 1.0


def test_paired_gain_by_hand_and_against_statistics() -> None:
    import statistics

    assert paired_gain([1.0, 0.5], [0.5, 0.5]) == pytest.approx((0.25, 0.25))  # d = 0.5, 0: sd 0.354, /√2
    accuracy, baseline = [0.2, 0.6, 0.4, 1.0, 0.8], [0.2, 0.2, 0.4, 0.6, 0.4]
    differences = [a - b for a, b in zip(accuracy, baseline, strict=True)]
    expected = (statistics.mean(differences), statistics.stdev(differences) / len(differences) ** 0.5)
    assert paired_gain(accuracy, baseline) == pytest.approx(expected)
    assert paired_gain([1.0], [0.0]) is None and paired_gain([1.0, 0.0], [0.0]) is None


def test_summary_table_pairs_each_intervention_with_none_and_fits_80_columns() -> None:
    from rich.console import Console

    from ropescope.report.bias_view import bias_rows, render_bias_summary

    def row(name: str, documents: int, by_trial: list[float] | None) -> dict:
        out = {"intervention": name, "documents": documents, "accuracy": 0.5, "accuracy_by_position": [0.5] * 3,
               "order_sensitivity": 0.25}  # fmt: skip
        return out | ({"accuracy_by_trial": by_trial} if by_trial is not None else {})

    results = {"rows": [row("none", 3, [0.0, 1 / 3, 1 / 3]), row("act", 3, [1 / 3, 1.0, 1 / 3]),
                        row("pine-causal", 3, None), row("pine", 5, [0.2, 0.2, 0.2])]}  # fmt: skip
    table = bias_rows(results)
    gain = paired_gain([1 / 3, 1.0, 1 / 3], [0.0, 1 / 3, 1 / 3])
    assert gain is not None and table[1][3] == f"{100 * gain[0]:+.0f} ± {100 * gain[1]:.0f}" == "+33 ± 19"
    assert table[0][3] == table[2][3] == table[3][3] == "—"  # the baseline, no per-trial data, no none at K = 5
    console = Console(width=80, record=True, color_system=None)
    render_bias_summary(console, results)
    lines = console.export_text().splitlines()
    assert max(map(len, lines)) <= 80 and any("+33 ± 19" in line for line in lines)


def test_bad_names_and_counts() -> None:
    assert parse_names("--intervention", "none, pine", INTERVENTIONS, "intervention") == ("none", "pine")
    with pytest.raises(RopescopeInputError, match="unknown intervention nope"):
        parse_names("--intervention", "none,nope", INTERVENTIONS, "intervention")
    with pytest.raises(RopescopeInputError, match="K = 1"):
        make_trials(1, 1, seed=0)


@pytest.mark.torch
@pytest.mark.hf
def _tiny_llama(layers: int) -> SimpleNamespace:
    """A random Llama with the word tokenizer, as ``run_bias`` sees a loaded model."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(
        vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    return SimpleNamespace(
        model=model, tokenizer=WordTokenizer(), describe=lambda: {"source": "tiny"}, fingerprint=lambda: "f" * 64
    )


def test_measure_matches_unbatched_forward_passes() -> None:
    torch = pytest.importorskip("torch")
    from ropescope.interventions.run import measure

    loaded = _tiny_llama(2)
    model, tokenizer = loaded.model, loaded.tokenizer
    trials = make_trials(3, 4, seed=1)
    plain = measure(loaded, trials, "none")
    answers, correct, per_trial = [], [0] * 4, []
    for trial in trials:
        answer = tokenizer(trial.answer, add_special_tokens=False)["input_ids"][0]
        row = []
        for slot in range(4):
            ids, _ = encode(tokenizer, trial, trial.order(slot))
            with torch.no_grad():
                row.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
            correct[slot] += row[-1] == answer
        answers.append(row)
        per_trial.append(sum(token == answer for token in row) / 4)
    assert plain["accuracy_by_position"] == [c / 3 for c in correct]
    assert plain["accuracy_by_trial"] == per_trial
    assert plain["order_sensitivity"] == pytest.approx(sum(order_sensitivity(a) for a in answers) / 3)
    assert measure(loaded, trials, "pine")["order_sensitivity"] == 0.0


class Interrupted(Exception):
    pass


@pytest.mark.torch
@pytest.mark.hf
def test_an_interrupted_run_resumes_to_the_uninterrupted_result(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Stopped after its third row, a run resumed from what it saved measures only the rest, keeps ACT's heads
    (no second search) and ends with the rows of a run never stopped; another run's results are refused."""
    from ropescope.interventions import run

    loaded = _tiny_llama(4)
    settings = run.BiasSettings(documents=(3, 4), trials=2, interventions=("none", "act", "pine"), search_trials=1)
    saved: list[dict] = []

    def save_then_stop(results: dict) -> None:
        saved.append(json.loads(json.dumps(results)))  # as results.json would hold it
        if len(results["rows"]) == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        run.run_bias(loaded, settings, save_then_stop)
    whole = run.run_bias(loaded, settings, lambda results: None)
    searches: list[tuple] = []
    measured: list[tuple] = []
    choose, measure = run._choose_heads, run.measure
    monkeypatch.setattr(run, "_choose_heads", lambda *args: searches.append(args) or choose(*args))
    monkeypatch.setattr(run, "measure", lambda *args: measured.append(args[2]) or measure(*args))
    resumed = run.run_bias(loaded, settings, lambda results: None, previous=saved[-1])

    def without_time(rows: list[dict]) -> list[dict]:
        return [{key: value for key, value in row.items() if key != "seconds"} for row in rows]

    assert searches == [] and measured == ["none", "act", "pine"]  # K = 4 only
    assert resumed["complete"] and len(resumed["rows"]) == 6
    assert resumed["created"] == saved[-1]["created"]  # the same run, continued
    assert without_time(json.loads(json.dumps(resumed["rows"]))) == without_time(json.loads(json.dumps(whole["rows"])))
    other = saved[-1] | {"resume_key": saved[-1]["resume_key"] | {"code_sha256": "0" * 64}}
    with pytest.raises(RopescopeInputError, match="were made with another model, settings or ropescope code"):
        run.run_bias(loaded, settings, lambda results: None, previous=other)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--intervention", "none,magic"], ["--intervention", "magic"]),
        (["--documents", "1"], ["--documents", "K < 2"]),
        (["--documents", "x"], ["--documents"]),
    ],
)
def test_cli_bad_options(args: list[str], fragments: list[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert_input_error(run_cli("bias", "no-such-model.gguf", "--out", str(tmp_path / "o"), *args), *fragments)


def test_cli_missing_model_and_bad_out(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert_input_error(run_cli("bias", str(tmp_path / "none.gguf"), "--out", str(tmp_path / "o")), "no such file")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_input_error(run_cli("bias", str(tmp_path / "none.gguf"), "--out", str(blocker)), "--out", "is a file")


def test_report_shows_a_bias_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("jinja2")
    from ropescope.interventions.run import DEFINITIONS
    from ropescope.report.page import render_report
    from ropescope.report.probe_view import write_results

    rows = [
        {"intervention": name, "documents": 3, "trials": 2, "accuracy": acc, "accuracy_by_position": by,
         "order_sensitivity": sens, "mean_gold_log_probability": -1.0, "seconds": 1.0}
        for name, acc, by, sens in (("none", 0.5, [1.0, 0.0, 0.5], 0.67), ("pine", 0.25, [0.25] * 3, 0.0))
    ]  # fmt: skip
    write_results(tmp_path, {
        "schema_version": 1, "ropescope_version": "0", "created": "2025-01-01T00:00:00+00:00", "complete": True,
        "model": {"source": "m.gguf"}, "settings": {"documents": [3], "trials": 2, "seed": 0,
        "interventions": ["none", "pine"]}, "definitions": DEFINITIONS, "rows": rows,
    })  # fmt: skip
    page = render_report([tmp_path])
    assert "Bias: m.gguf" in page and "data:image/png;base64," in page
    assert '<td class="num">100</td>' in page and '<td class="num">0.67</td>' in page  # slot 0 of none


@pytest.mark.torch
@pytest.mark.hf
@pytest.mark.smollm2
@pytest.mark.slow
def test_smollm2_bias_from_the_cli(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """K = 3, one trial, on the real SmolLM2: PINE's answers ignore the order, every accuracy is a fraction of the
    one trial, and the plain model's accuracy by slot is a direct greedy evaluation of the same prompts, one
    unbatched SDPA forward pass each."""
    import json

    torch = pytest.importorskip("torch")
    from conftest import smollm2_path
    from ropescope.interventions.retrieval import single_token_values
    from ropescope.probes.models import load_model

    out = tmp_path / "bias"
    args = ["--documents", "3", "--trials", "1", "--search-trials", "1", "--intervention", "none,pine,act"]
    done = run_cli("bias", str(smollm2_path()), *args, "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout)
    assert results == json.loads((out / "results.json").read_text()) and results["complete"]
    assert (out / "accuracy_by_position.png").stat().st_size > 1000
    rows = {row["intervention"]: row for row in results["rows"]}
    assert set(rows) == {"none", "pine", "act"} and results["model"]["num_layers"] == 30
    for row in rows.values():
        assert all(a in (0.0, 1.0) for a in row["accuracy_by_position"]) and len(row["accuracy_by_position"]) == 3
        assert row["accuracy"] == pytest.approx(sum(row["accuracy_by_position"]) / 3)
        assert 0.0 <= row["order_sensitivity"] <= 1.0 and row["mean_gold_log_probability"] < 0
    assert rows["pine"]["order_sensitivity"] == 0.0
    assert len(set(rows["pine"]["accuracy_by_position"])) == 1  # one answer for every order
    assert all(0 <= layer < 30 and 0 <= head < 9 for layer, head in rows["act"]["act_heads"])

    loaded = load_model(str(smollm2_path()))
    trial = make_trials(1, 3, seed=0 + 3, values=single_token_values(loaded.tokenizer))[0]
    answer = loaded.tokenizer(trial.answer, add_special_tokens=False)["input_ids"][0]
    direct = []
    for slot in range(3):
        ids, _ = encode(loaded.tokenizer, trial, trial.order(slot))
        with torch.no_grad():
            direct.append(float(int(loaded.model(torch.tensor([ids])).logits[0, -1].argmax()) == answer))
    assert rows["none"]["accuracy_by_position"] == direct
