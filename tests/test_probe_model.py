"""Model-level probes on a tiny random Llama saved to disk with a byte-level tokenizer.

References: the per-position loss against cross-entropy of the model's own full logits; the passkey prompt
against its template decoded back to text; the probe run against itself resumed after an interruption, and the
forward pass resumed from a layer checkpoint against an uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ropescope.cli.arguments import parse_names  # noqa: E402
from ropescope.errors import RopescopeInputError  # noqa: E402
from ropescope.probes.checkpoint import CHECKPOINT_FILE  # noqa: E402
from ropescope.probes.loss import binned_loss, final_hidden_states, token_losses  # noqa: E402
from ropescope.probes.models import LoadedModel, load_model  # noqa: E402
from ropescope.probes.passkey import QUESTION, TASK, cell_keys, needle, passkey_prompt  # noqa: E402
from ropescope.probes.run import METRICS, ProbeRun, ProbeSettings  # noqa: E402
from ropescope.report.probe_view import read_results, to_json, write_plots, write_results  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.hf]

SAMPLE_TEXT = " ".join(
    f"Sentence {n} tells of a {colour} boat that sailed past {count} quiet islands before the storm."
    for n, colour, count in zip(range(40), ["red", "green", "grey", "white"] * 10, range(3, 43), strict=True)
)


def byte_tokenizer():
    """256 byte tokens plus <s> (256) and </s> (257), no merges: every UTF-8 byte is one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: index for index, symbol in enumerate(alphabet)} | {"<s>": 256, "</s>": 257}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>")


def save_tiny_model(folder: Path, seed: int = 0, layers: int = 2) -> Path:
    """A small Llama (GQA, 2 layers by default) with the byte-level tokenizer, saved as a transformers folder."""
    tokenizer = byte_tokenizer()
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=258,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_theta=500.0,
        bos_token_id=256,
        eos_token_id=257,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


def test_load_model_reads_folder_and_spec(tiny_folder: Path) -> None:
    loaded = load_model(tiny_folder)
    assert loaded.kind == "transformers"
    assert loaded.spec.base == 500.0 and loaded.spec.training_context == 64
    assert loaded.model.config._attn_implementation == "sdpa"
    assert loaded.describe()["num_kv_heads"] == 2


def test_load_model_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(RopescopeInputError, match="no such file"):
        load_model(tmp_path / "missing")
    with pytest.raises(RopescopeInputError, match=r"config\.json"):
        load_model(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(RopescopeInputError, match="gguf"):
        load_model(tmp_path / "weights.bin")


def test_token_losses_match_full_logits(tiny_folder: Path) -> None:
    loaded = load_model(tiny_folder)
    ids = torch.randint(0, 258, (2, 50), generator=torch.Generator().manual_seed(0))
    hidden = final_hidden_states(loaded.model, ids)
    streamed = token_losses(loaded.model, hidden, ids, block=7)
    with torch.no_grad():
        logits = loaded.model(ids, use_cache=False).logits
    reference = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    np.testing.assert_allclose(streamed, reference.double().numpy(), rtol=1e-5, atol=1e-6)


def test_binned_loss_means() -> None:
    losses = np.arange(10, dtype=float)[None]  # predicted positions 1..10
    bins = binned_loss(losses, 2)
    assert bins["start"] == [1, 6] and bins["stop"] == [6, 11]
    assert bins["mean_loss"] == [2.0, 7.0]


@pytest.mark.parametrize("depth", [0.0, 0.4, 1.0])
def test_passkey_prompt_length_and_depth(tiny_folder: Path, depth: float) -> None:
    tokenizer = load_model(tiny_folder).tokenizer
    ids = passkey_prompt(tokenizer, 600, depth, 12345)
    assert len(ids) == 600
    text = tokenizer.decode(ids, skip_special_tokens=True)
    assert text.startswith(TASK + "\n") and text.endswith("\n" + QUESTION)
    before, after = text.split("\n" + needle(12345) + "\n")
    filler_before, filler_after = len(before) - len(TASK) - 1, len(after) - len(QUESTION) - 1
    assert filler_before / (filler_before + filler_after) == pytest.approx(depth, abs=0.01)
    assert "The grass is green." in (before + after)


def test_passkey_keys_are_seeded_five_digit_numbers() -> None:
    keys = cell_keys(0, 1024, 2, 5)
    assert keys == cell_keys(0, 1024, 2, 5) and keys != cell_keys(1, 1024, 2, 5)
    assert all(10_000 <= key < 100_000 for key in keys)


def test_metric_names_drop_duplicates_and_reject_unknown_ones() -> None:
    assert parse_names("--metrics", "loss, entropy,loss", METRICS, "metric") == ("loss", "entropy")
    with pytest.raises(RopescopeInputError, match="unknown metric perplexity") as error:
        parse_names("--metrics", "entropy,perplexity", METRICS, "metric")
    assert error.value.fix == "choose from entropy,sinks,distance,loss,passkey"
    with pytest.raises(RopescopeInputError, match=r"unknown metric \(none given\)"):
        parse_names("--metrics", " , ", METRICS, "metric")


class Interrupt(Exception):
    pass


def test_probe_run_is_resumable_and_complete(tiny_folder: Path, tmp_path: Path) -> None:
    loaded = load_model(tiny_folder)
    ids = list(loaded.tokenizer(SAMPLE_TEXT)["input_ids"])
    settings = ProbeSettings(context=300, passkey_lengths=(300,), passkey_depths=(0.0, 1.0), passkey_trials=1)
    saves: list[str] = []

    def save_then_stop(results: dict) -> None:
        write_results(tmp_path, results)
        saves.append(json.dumps(sorted(results["metrics"]["own"])))
        if "passkey" in results["metrics"]["own"]:
            raise Interrupt  # stop after the first passkey cell

    with pytest.raises(Interrupt):
        ProbeRun(loaded, ids, settings, save_then_stop).run()
    partial = read_results(tmp_path)
    assert partial is not None and not partial["complete"]
    assert set(partial["metrics"]["own"]) == {"entropy", "sinks", "distance", "loss", "passkey"}
    assert len(partial["metrics"]["own"]["passkey"]["cells"]) == 1

    finished = ProbeRun(loaded, ids, settings, lambda r: write_results(tmp_path, r), partial).run()
    final = read_results(tmp_path)
    assert final["complete"] and final["schema_version"] == 1 and final["context"] == 300
    assert final["metrics"]["own"]["entropy"] == partial["metrics"]["own"]["entropy"]  # not recomputed
    assert [c["depth"] for c in final["metrics"]["own"]["passkey"]["cells"]] == [0.0, 1.0]
    assert np.array(final["metrics"]["own"]["passkey"]["accuracy"]).shape == (1, 2)
    assert finished["metrics"]["own"]["loss"]["beyond_training_context"] is not None
    own = final["metrics"]["own"]
    assert len(own["entropy"]["normalised_entropy"]) == 2 and len(own["entropy"]["normalised_entropy"][0]) == 4
    assert {p.name for p in write_plots(tmp_path, final)} == {
        "entropy.png",
        "sinks.png",
        "distance.png",
        "loss.png",
        "passkey.png",
    }


class LayerInterrupt(Exception):
    pass


def interrupted_then_resumed(
    loaded: LoadedModel, ids: list[int], settings: ProbeSettings, folder: Path, stop: tuple[str, int]
) -> tuple[dict, list[int]]:
    """Run into ``folder``, interrupted once the forward pass ``stop[0]`` has finished ``stop[1]`` layers, then
    rerun from what the folder holds: (the rerun's results, the layer counts it reported for that pass)."""
    checkpoint = folder / CHECKPOINT_FILE

    def save(results: dict) -> None:
        write_results(folder, results)

    def interrupt(description: str, done: int, total: int) -> None:
        if description.startswith(f"{stop[0]}: forward") and done == stop[1]:
            raise LayerInterrupt

    with pytest.raises(LayerInterrupt):
        ProbeRun(loaded, ids, settings, save, read_results(folder), interrupt, checkpoint).run()
    assert checkpoint.is_file()
    reported: list[int] = []

    def record(description: str, done: int, total: int) -> None:
        if description.startswith(f"{stop[0]}: forward"):
            reported.append(done)

    results = ProbeRun(loaded, ids, settings, save, read_results(folder), record, checkpoint).run()
    assert not checkpoint.exists()  # deleted once the pass is saved
    return results, reported


def without_time(results: dict) -> dict:
    return {key: value for key, value in to_json(results).items() if key != "created"}


@pytest.fixture(scope="module")
def four_layer_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama-4"), seed=1, layers=4)


@pytest.mark.parametrize(("patch", "stop"), [(None, ("own", 1)), (None, ("own", 4)), ("yarn:4", ("patched", 2))])
def test_forward_pass_resumes_from_its_layer_checkpoint(
    four_layer_folder: Path, tmp_path: Path, patch: str | None, stop: tuple[str, int]
) -> None:
    """Interrupted after layer k (the last one included, and inside the patched pass), the rerun runs only layers
    k+1 … and every number equals an uninterrupted run's."""
    loaded = load_model(four_layer_folder)
    ids = list(loaded.tokenizer(SAMPLE_TEXT)["input_ids"])
    settings = ProbeSettings(context=150, metrics=("entropy", "sinks", "distance", "loss"), patch=patch)
    fresh = ProbeRun(loaded, ids, settings, lambda r: None).run()
    resumed, reported = interrupted_then_resumed(loaded, ids, settings, tmp_path, stop)
    assert reported == [*range(stop[1], 5), 4]  # from the checkpoint on, then the pass's end
    assert without_time(resumed) == without_time(fresh)


def test_layer_checkpoint_of_another_run_is_refused_or_restarted(four_layer_folder: Path, tmp_path: Path) -> None:
    """Beside another text's results.json the run is refused and the checkpoint kept; with that results.json
    deleted, the other run's checkpoint is not used: the pass starts at layer 0 and equals a fresh run."""
    loaded = load_model(four_layer_folder)
    ids = list(loaded.tokenizer(SAMPLE_TEXT)["input_ids"])
    settings = ProbeSettings(context=150, metrics=("entropy", "loss"))
    checkpoint = tmp_path / CHECKPOINT_FILE

    def stop_at_two(description: str, done: int, total: int) -> None:
        if done == 2:
            raise LayerInterrupt

    other = ProbeRun(loaded, ids[::-1], settings, lambda r: None, None, stop_at_two, checkpoint)
    write_results(tmp_path, other.results)  # the other run's results.json, as its first save leaves it
    with pytest.raises(LayerInterrupt):
        other.run()
    written = checkpoint.read_bytes()
    with pytest.raises(RopescopeInputError, match="another text"):
        ProbeRun(loaded, ids, settings, lambda r: None, read_results(tmp_path), checkpoint=checkpoint)
    assert checkpoint.read_bytes() == written
    (tmp_path / "results.json").unlink()
    reported: list[int] = []
    run = ProbeRun(loaded, ids, settings, lambda r: None, None, lambda d, done, t: reported.append(done), checkpoint)
    assert without_time(run.run()) == without_time(ProbeRun(loaded, ids, settings, lambda r: None).run())
    assert reported == [0, 1, 2, 3, 4, 4]


def test_context_longer_than_text_is_refused(tiny_folder: Path) -> None:
    loaded = load_model(tiny_folder)
    with pytest.raises(RopescopeInputError, match="only 20"):
        ProbeRun(loaded, list(range(20)), ProbeSettings(context=30, metrics=("loss",)), lambda r: None)
    ProbeRun(loaded, list(range(20)), ProbeSettings(context=30, metrics=("passkey",)), lambda r: None)


def test_compare_mode_matches_transformers_own_yarn(tiny_folder: Path) -> None:
    """The patched run equals the same weights loaded by transformers with a YaRN config (factor 4 over 64)."""
    loaded = load_model(tiny_folder)
    ids = list(loaded.tokenizer(SAMPLE_TEXT)["input_ids"])
    settings = ProbeSettings(context=200, metrics=("loss", "entropy"), loss_bins=4, patch="yarn:4")
    results = ProbeRun(loaded, ids, settings, lambda r: None).run()
    config = transformers.AutoConfig.from_pretrained(tiny_folder)
    config.rope_parameters = {
        "rope_type": "yarn",
        "rope_theta": 500.0,
        "factor": 4.0,
        "original_max_position_embeddings": 64,
    }
    yarn = transformers.LlamaForCausalLM.from_pretrained(tiny_folder, config=config).eval()
    window = torch.tensor([ids[:200]])
    for name, model in (("own", loaded.model), ("patched", yarn)):
        with torch.no_grad():
            logits = model(window, use_cache=False).logits
        reference = torch.nn.functional.cross_entropy(logits[0, :-1], window[0, 1:]).item()
        assert results["metrics"][name]["loss"]["mean_loss"] == pytest.approx(reference, rel=1e-5)
    own, patched = results["metrics"]["own"]["loss"]["mean_loss"], results["metrics"]["patched"]["loss"]["mean_loss"]
    assert own != patched
    comparison = results["comparison"]
    assert float(comparison["loss"]["mean_loss"]["difference"]) == pytest.approx(patched - own)
    assert np.asarray(comparison["entropy"]["layer_mean_normalised_entropy"]["difference"]).shape == (2,)
    assert results["spectrum"]["patched"]["rope_type"] == "yarn"
    restored = loaded.model.model.rotary_emb.inv_freq
    assert torch.equal(restored, load_model(tiny_folder).model.model.rotary_emb.inv_freq)


def save_gpt2(folder: Path, layers: int = 1, positions: int = 64) -> Path:
    """A tiny random GPT-2 (learned absolute positions, no RoPE) with the byte-level tokenizer."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=layers, n_head=2, n_embd=16, vocab_size=258, n_positions=positions, bos_token_id=256, eos_token_id=257
    )
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    return folder


def test_patch_on_a_model_without_rotary_module_is_refused(tmp_path: Path) -> None:
    loaded = load_model(save_gpt2(tmp_path))
    with pytest.raises(RopescopeInputError, match="no rotary module"):
        ProbeRun(loaded, list(range(100)), ProbeSettings(context=50, patch="yarn:4"), lambda r: None)


def test_a_model_without_rope_is_probed_and_names_its_encoding(tmp_path: Path) -> None:
    loaded = load_model(save_gpt2(tmp_path, layers=2))
    ids = list(range(40))
    results = ProbeRun(loaded, ids, ProbeSettings(context=40, metrics=("loss",)), lambda r: None).run()
    assert results["spectrum"]["own"] == {"encoding": "learned_absolute", "training_context": None}
    window = torch.tensor([ids])
    with torch.no_grad():
        logits = loaded.model(window).logits[0, :-1]
    expected = torch.nn.functional.cross_entropy(logits, window[0, 1:]).item()
    assert results["metrics"]["own"]["loss"]["mean_loss"] == pytest.approx(expected, rel=1e-5)
