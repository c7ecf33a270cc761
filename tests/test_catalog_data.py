"""The embedded catalog (``src/ropescope/data/catalog.json``): schema, observations and transcription.

The transcription checks recompute, from each entry's raw config keys alone, the rotary dimension d and the
longest RoPE wavelength 2π·base^((d−2)/d) (slowest pair, before scaling), and compare them with the values the
cataloguer derived independently in the shared catalog — a mistyped head count, base or rotary fraction shows up
as a mismatch. Hand-worked values for one model per key spelling keep the check alive where that file is absent.
"""

from __future__ import annotations

import importlib.util
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from ropescope.config import load_spec

SHARED_CATALOG = Path(__file__).parents[2] / "shared/data/model_catalog.json"
BUILD_SCRIPT = Path(__file__).parents[1] / "tools/build_catalog.py"
ENTRY_KEYS = {
    "id",
    "config",
    "advertised_context",
    "advertised_context_text",
    "long_context_notes",
    "sources",
    "confidence",
    "observations",
    "lineage",
}
OBSERVATION_KEYS = {"context", "works", "setting", "measure", "note", "source"}
MEASURES = {"perplexity", "retrieval", "task", "claim"}
LINEAGE_KEYS = {"trained_context", "pretrained", "confidence", "sources", "note"}
DERIVED_KEYS = {"rotary_dim", "longest_wavelength_tokens", "rope_type", "extra", "factor_list_lengths"}


def _catalog() -> dict[str, Any]:
    text = resources.files("ropescope").joinpath("data/catalog.json").read_text(encoding="utf-8")
    return json.loads(text)


MODELS = _catalog()["models"]
BY_ID = {model["id"]: model for model in MODELS}


def _shared() -> dict[str, dict[str, Any]]:
    if not SHARED_CATALOG.exists():
        pytest.skip(f"{SHARED_CATALOG} is not in this checkout (only the project workspace has shared/)")
    return {entry["model_id"]: entry for entry in json.loads(SHARED_CATALOG.read_text(encoding="utf-8"))}


def rotary_dim_from_raw(config: dict[str, Any]) -> int:
    """Rotated dimensions per q/k head, read the way each family's modelling code reads its own keys."""
    if config.get("qk_rope_head_dim") is not None:  # MLA: only the decoupled slice is rotated
        return int(config["qk_rope_head_dim"])
    if config.get("model_type") == "chatglm":  # GLM rotates half of each kv_channels-wide head
        return int(config["kv_channels"]) // 2
    head = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    fraction = next(
        (config[k] for k in ("partial_rotary_factor", "rotary_pct", "rope_pct") if config.get(k) is not None), 1.0
    )
    return int(head * fraction)


def base_from_raw(config: dict[str, Any]) -> float:
    """RoPE base: rope_theta, GPT-NeoX rotary_emb_base, GLM 10000·rope_ratio, else the 10000 default."""
    if config.get("rope_theta") is not None:
        return float(config["rope_theta"])
    if config.get("rotary_emb_base") is not None:
        return float(config["rotary_emb_base"])
    if config.get("rope_ratio") is not None:
        return 10_000.0 * float(config["rope_ratio"])
    return 10_000.0


def longest_wavelength(base: float, rotary_dim: int) -> float:
    """Period in tokens of the slowest pair: 2π / base^(−(d−2)/d)."""
    return 2 * math.pi * base ** ((rotary_dim - 2) / rotary_dim)


def test_top_level_schema() -> None:
    document = _catalog()
    assert document["schema_version"] == 1
    assert set(document) == {"schema_version", "models"}
    assert len(MODELS) == len(BY_ID), "ids must be unique"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m["id"])
def test_entry_schema(model: dict[str, Any]) -> None:
    assert set(model) == ENTRY_KEYS
    assert isinstance(model["advertised_context"], int) and not isinstance(model["advertised_context"], bool)
    assert model["advertised_context"] > 0
    assert model["advertised_context_text"] and model["long_context_notes"]
    assert model["sources"] and all(isinstance(s, str) and s for s in model["sources"])
    assert model["confidence"] and all(isinstance(v, str) and v for v in model["confidence"].values())
    assert model["config"]["model_type"] and not DERIVED_KEYS & set(model["config"])


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m["id"])
def test_lineage_schema(model: dict[str, Any]) -> None:
    lineage = model["lineage"]
    assert set(lineage) == LINEAGE_KEYS
    trained = lineage["trained_context"]
    assert isinstance(trained, int) and trained > 0
    assert lineage["confidence"] and lineage["note"] and all(s.startswith("https://") for s in lineage["sources"])
    if lineage["pretrained"] is not None:
        assert set(lineage["pretrained"]) == {"base", "context"}
        assert lineage["pretrained"]["base"] > 1 and 0 < lineage["pretrained"]["context"] <= trained


def test_lineages_of_note() -> None:
    """CodeLlama's lineage is Llama 2's pretraining then base 1e6 at 16K (arXiv 2308.12950, §2.4)."""
    assert BY_ID["codellama/CodeLlama-7b-hf"]["lineage"]["trained_context"] == 16384
    assert BY_ID["codellama/CodeLlama-7b-hf"]["lineage"]["pretrained"] == {"base": 10000, "context": 4096}
    assert BY_ID["mistralai/Mistral-7B-v0.1"]["lineage"]["trained_context"] == 8192  # mpe says 32768


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m["id"])
def test_advertised_context_matches_its_text(model: dict[str, Any]) -> None:
    tokens, text = model["advertised_context"], model["advertised_context_text"]
    spellings = {f"{tokens:,}", f"{tokens // 1024}K", f"{tokens // 1000}K"}
    assert any(s in text for s in spellings), (tokens, text)


@pytest.mark.parametrize(
    "observation",
    [(m["id"], o) for m in MODELS for o in m["observations"]],
    ids=lambda pair: f"{pair[0]}@{pair[1]['context']}",
)
def test_observation_schema(observation: tuple[str, dict[str, Any]]) -> None:
    model_id, obs = observation
    assert set(obs) == OBSERVATION_KEYS
    assert isinstance(obs["context"], int) and not isinstance(obs["context"], bool) and obs["context"] > 0
    assert isinstance(obs["works"], bool)
    assert obs["setting"] and obs["note"] and obs["measure"] in MEASURES
    assert obs["source"].startswith(("https://", "this project: ropescope probe"))
    if not obs["works"]:
        # A failure is recorded only past what the model advertises: otherwise the entry contradicts itself.
        assert obs["context"] > BY_ID[model_id]["advertised_context"]


def test_observations_cover_enough_models_both_ways() -> None:
    observations = [o for m in MODELS for o in m["observations"]]
    assert len(observations) >= 30
    assert sum(1 for m in MODELS if m["observations"]) >= 15
    assert {o["works"] for o in observations} == {True, False}


def test_failures_as_shipped_bracket_the_training_length() -> None:
    """For each model measured both ways as shipped, the largest working context is below the smallest failing one."""
    for model in MODELS:
        shipped = [o for o in model["observations"] if o["setting"].startswith("as released")]
        works = [o["context"] for o in shipped if o["works"]]
        fails = [o["context"] for o in shipped if not o["works"]]
        if works and fails:
            assert max(works) < min(fails), model["id"]


@pytest.mark.parametrize(
    ("model_id", "rotary_dim", "wavelength", "absent"),
    [
        # 2π·1e4^(126/128); the original config has no rope_theta key.
        ("meta-llama/Llama-2-7b-hf", 128, 54_410, "rope_theta"),
        # GPT-NeoX: 6144/64 = 96, rotary_pct 0.25 → 24; 2π·1e4^(22/24).
        ("EleutherAI/gpt-neox-20b", 24, 29_164, "rope_theta"),
        # GLM: kv_channels 128 halved → 64; base 1e4·500 = 5e6; 2π·5e6^(62/64).
        ("THUDM/glm-4-9b-chat", 64, 19_400_238, "max_position_embeddings"),
        # MLA: only qk_rope_head_dim 64 rotates; 2π·1e4^(62/64).
        ("deepseek-ai/DeepSeek-V2", 64, 47_117, "head_dim"),
        # StableLM: 2560/32 = 80, rope_pct 0.25 → 20; 2π·1e4^(18/20).
        ("stabilityai/stablelm-3b-4e1t", 20, 25_014, "partial_rotary_factor"),
        # Phi-4-mini: 3072/24 = 128, partial_rotary_factor 0.75 → 96; 2π·1e4^(94/96).
        ("microsoft/Phi-4-mini-instruct", 96, 51_862, "head_dim"),
        # Falcon-7B: 4544/71 = 64, default base; no max_position_embeddings in its config.
        ("tiiuae/falcon-7b", 64, 47_117, "max_position_embeddings"),
    ],
)
def test_hand_worked_rotary_geometry(model_id: str, rotary_dim: int, wavelength: int, absent: str) -> None:
    config = BY_ID[model_id]["config"]
    assert absent not in config
    assert rotary_dim_from_raw(config) == rotary_dim
    assert round(longest_wavelength(base_from_raw(config), rotary_dim)) == wavelength


def test_ids_and_order_follow_the_shared_catalog() -> None:
    assert [m["id"] for m in MODELS] == list(_shared())


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m["id"])
def test_raw_config_reproduces_shared_derived_values(model: dict[str, Any]) -> None:
    shared = _shared()[model["id"]]
    config = model["config"]
    rotary_dim = rotary_dim_from_raw(config)
    assert rotary_dim == shared["rotary_dim"]
    assert round(longest_wavelength(base_from_raw(config), rotary_dim)) == shared["longest_wavelength_tokens"]
    layers = config.get("num_hidden_layers", config.get("num_layers"))
    assert layers == shared["num_hidden_layers"]
    for key in ("hidden_size", "num_attention_heads", "rope_scaling", "rope_theta", "max_position_embeddings"):
        if key in config:
            assert config[key] == shared[key], key


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m["id"])
def test_loader_reads_the_same_geometry(model: dict[str, Any]) -> None:
    """ropescope's normaliser and the raw-key reading above agree on every catalog config."""
    spec = load_spec(model["config"])
    assert spec.rotary_dim == rotary_dim_from_raw(model["config"])
    assert spec.base == pytest.approx(base_from_raw(model["config"]), rel=1e-12)


def test_catalog_is_the_build_script_output() -> None:
    shared = _shared()
    module_spec = importlib.util.spec_from_file_location("build_catalog", BUILD_SCRIPT)
    assert module_spec is not None and module_spec.loader is not None
    build_catalog = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(build_catalog)
    assert build_catalog.build(list(shared.values())) == _catalog()
