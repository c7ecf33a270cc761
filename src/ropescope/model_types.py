"""What ropescope knows per ``model_type``: transformers' defaults, where a composite config keeps its language
model, and how a model encodes positions.

**Defaults.** A ``config.json`` written by transformers omits keys equal to its config class's defaults, so
``{"model_type": "llava", "text_config": {"model_type": "llama"}}`` is a LLaVA whose language model has
LlamaConfig's 4096 width, 32 heads and base 10⁴. :data:`MODEL_DEFAULTS` holds, per model type, the defaults of
the keys the reader uses: the dataclass field defaults of the transformers config class and its ``default_theta``
(for model types transformers implements; ``tests/test_model_types.py`` checks every value against the installed
transformers).

**Composite configs.** Vision-language and omni models nest their language model: ``text_config`` (LLaVA,
Gemma 3, Qwen2-VL/3-VL/3.5, Llama 4, Mistral 3, InternVL), ``llm_config`` (InternVL-Chat remote code),
``language_config`` (DeepSeek-VL2, Janus), ``thinker_config.text_config`` (Qwen2.5-Omni, Qwen3-Omni). As in
transformers, the nested dict alone configures the language model (top-level width or heads belong to the
wrapper or the vision tower); a nested dict without ``model_type`` gets the wrapper's default text model type
(:data:`TEXT_MODEL_TYPES`, e.g. LLaVA → ``llama``).

**Positional schemes.** :func:`detect_scheme` names the scheme from the config's own switches first (Falcon's and
RefinedWeb's ``alibi``, MPT's ``attn_config.alibi`` and ``learned_pos_emb``, ``position_embedding_type``), then
from ``model_type``: learned absolute tables (GPT-2, StarCoder/gpt_bigcode, GPT-Neo, OPT, BioGPT, BERT family,
BART), ALiBi (BLOOM, MPT; Press et al. 2022, arXiv 2108.12409), T5's bucketed relative bias (Raffel et al. 2020,
arXiv 1910.10683), fixed sinusoids (XGLM; Vaswani et al. 2017), and none (RWKV, Mamba: order comes from the
recurrence). Everything else is read as RoPE. Only a learned table imposes a positional limit of its own (its
size); ALiBi, T5 buckets, sinusoids and recurrence have no rotary limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ROPE = "rope"
LEARNED_ABSOLUTE = "learned_absolute"
ALIBI = "alibi"
T5_RELATIVE_BIAS = "t5_relative_bias"
SINUSOIDAL_ABSOLUTE = "sinusoidal_absolute"
NONE = "none"
SCHEMES = (ROPE, LEARNED_ABSOLUTE, ALIBI, T5_RELATIVE_BIAS, SINUSOIDAL_ABSOLUTE, NONE)


@dataclass(frozen=True)
class PositionalScheme:
    """How a model encodes positions.

    ``name`` is one of :data:`SCHEMES`; ``limit`` is the context the scheme itself cannot pass (a learned table's
    size; ``None`` when the scheme has no such limit or, for a learned table, when the config does not give its
    size); ``reason`` says which key or model type decided it.
    """

    name: str
    limit: int | None
    reason: str

    @property
    def is_rope(self) -> bool:
        return self.name == ROPE

    def describe(self) -> str:
        """One phrase for reports: ``learned absolute positions, table size 1024``, ``ALiBi: no rotary limit``."""
        if self.name == LEARNED_ABSOLUTE:
            size = f"table size {self.limit}" if self.limit is not None else "table size not given in the config"
            return f"learned absolute positions, {size}"
        return {
            ROPE: "RoPE",
            ALIBI: "ALiBi: no rotary limit",
            T5_RELATIVE_BIAS: "T5 relative position bias: no rotary limit",
            SINUSOIDAL_ABSOLUTE: "fixed sinusoidal absolute positions: no rotary limit",
            NONE: "no positional encoding (recurrent model): no rotary limit",
        }[self.name]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "limit": self.limit, "reason": self.reason, "description": self.describe()}


_LLAMA = {"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32, "max_position_embeddings": 2048}
_QWEN_VL_TEXT = {
    "hidden_size": 8192,
    "num_attention_heads": 64,
    "num_hidden_layers": 80,
    "max_position_embeddings": 32768,
    "rope_theta": 1e6,
}
_HUNYUAN = {**_LLAMA, "rope_theta": 10_000.0}
_GLM = {
    **_LLAMA,
    "num_hidden_layers": 40,
    "max_position_embeddings": 131072,
    "head_dim": 128,
    "partial_rotary_factor": 0.5,
    "rope_theta": 10_000.0,
}
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": {**_LLAMA, "rope_theta": 10_000.0},
    "mistral": {**_LLAMA, "max_position_embeddings": 131072, "rope_theta": 10_000.0},
    "ministral": {**_LLAMA, "max_position_embeddings": 131072, "rope_theta": 10_000.0},
    "mixtral": {**_LLAMA, "max_position_embeddings": 131072, "rope_theta": 1e6},
    "qwen2": {**_LLAMA, "max_position_embeddings": 32768, "rope_theta": 10_000.0},
    "qwen3": {**_LLAMA, "max_position_embeddings": 32768, "head_dim": 128, "rope_theta": 10_000.0},
    "qwen2_vl_text": _QWEN_VL_TEXT,
    "qwen2_5_vl_text": _QWEN_VL_TEXT,
    "qwen2_5_omni_text": {
        "hidden_size": 3584,
        "num_attention_heads": 28,
        "num_hidden_layers": 28,
        "max_position_embeddings": 32768,
        "rope_theta": 1e6,
    },
    "qwen3_vl_text": {**_LLAMA, "max_position_embeddings": 128000, "head_dim": 128, "rope_theta": 5e5},
    "qwen3_5_text": {
        "hidden_size": 4096,
        "num_attention_heads": 16,
        "num_hidden_layers": 32,
        "max_position_embeddings": 32768,
        "head_dim": 256,
        "partial_rotary_factor": 0.25,
        "full_attention_interval": 4,
        "rope_theta": 10_000.0,
    },
    "qwen3_next": {
        "hidden_size": 2048,
        "num_attention_heads": 16,
        "num_hidden_layers": 48,
        "max_position_embeddings": 32768,
        "head_dim": 256,
        "partial_rotary_factor": 0.25,
        "full_attention_interval": 4,
        "rope_theta": 10_000.0,
    },
    "phi3": {
        "hidden_size": 3072,
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "max_position_embeddings": 4096,
        "rope_theta": 10_000.0,
    },
    "phi": {
        "hidden_size": 2048,
        "num_attention_heads": 32,
        "num_hidden_layers": 24,
        "max_position_embeddings": 2048,
        "partial_rotary_factor": 0.5,
        "rope_theta": 10_000.0,
    },
    "deepseek_v2": {**_LLAMA, "qk_rope_head_dim": 64, "rope_theta": 10_000.0},
    "deepseek_v3": {
        "hidden_size": 7168,
        "num_attention_heads": 128,
        "num_hidden_layers": 61,
        "max_position_embeddings": 4096,
        "qk_rope_head_dim": 64,
        "rope_theta": 10_000.0,
    },
    "deepseek_ocr2_text": {**_LLAMA, "rope_theta": 10_000.0},
    "gemma2": {
        "hidden_size": 2304,
        "num_attention_heads": 8,
        "num_hidden_layers": 26,
        "max_position_embeddings": 8192,
        "head_dim": 256,
        "rope_theta": 10_000.0,
    },
    "gemma3_text": {
        "hidden_size": 2304,
        "num_attention_heads": 8,
        "num_hidden_layers": 26,
        "max_position_embeddings": 131072,
        "head_dim": 256,
        "rope_theta": 1e6,
        "rope_local_base_freq": 10_000.0,
    },
    "gpt_neox": {
        "hidden_size": 6144,
        "num_attention_heads": 64,
        "num_hidden_layers": 44,
        "max_position_embeddings": 2048,
        "rotary_pct": 0.25,
        "rope_theta": 10_000.0,
    },
    "stablelm": {
        "hidden_size": 2560,
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "max_position_embeddings": 4096,
        "partial_rotary_factor": 0.25,
        "rope_theta": 10_000.0,
    },
    "falcon": {
        "hidden_size": 4544,
        "num_attention_heads": 71,
        "num_hidden_layers": 32,
        "max_position_embeddings": 2048,
        "rope_theta": 10_000.0,
    },
    "olmo2": {**_LLAMA, "rope_theta": 10_000.0},
    "cohere": {
        "hidden_size": 8192,
        "num_attention_heads": 64,
        "num_hidden_layers": 40,
        "max_position_embeddings": 8192,
        "rope_theta": 5e5,
    },
    "glm": _GLM,
    "glm4": _GLM,
    "llama4_text": {
        "hidden_size": 5120,
        "num_attention_heads": 40,
        "num_hidden_layers": 48,
        "max_position_embeddings": 131072,
        "head_dim": 128,
        "rope_theta": 5e5,
    },
    "ministral3": {
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_hidden_layers": 34,
        "max_position_embeddings": 262144,
        "head_dim": 128,
        "rope_parameters": {
            "rope_type": "yarn",
            "rope_theta": 1e6,
            "factor": 16.0,
            "original_max_position_embeddings": 16384,
            "beta_fast": 32.0,
            "beta_slow": 1.0,
            "mscale_all_dim": 1.0,
            "mscale": 1.0,
            "llama_4_scaling_beta": 0.1,
        },
    },
    "hunyuan_v1_dense": _HUNYUAN,
    "hunyuan_v1_moe": _HUNYUAN,
    "gptj": {"n_embd": 4096, "n_head": 16, "n_layer": 28, "n_positions": 2048, "rotary_dim": 64},
    "codegen": {"n_embd": 4096, "n_head": 16, "n_layer": 28, "n_positions": 2048, "rotary_dim": 64},
    "gpt2": {"n_embd": 768, "n_head": 12, "n_layer": 12, "n_positions": 1024},
    "gpt_bigcode": {"n_embd": 768, "n_head": 12, "n_layer": 12, "n_positions": 1024},
    "gpt_neo": {"hidden_size": 2048, "max_position_embeddings": 2048},
    "opt": {"hidden_size": 768, "num_attention_heads": 12, "num_hidden_layers": 12, "max_position_embeddings": 2048},
}
"""transformers' default per model type, for the keys the reader uses (in the config.json spelling)."""

TEXT_MODEL_TYPES: dict[str, str] = {
    "llava": "llama",
    "llava_next": "llama",
    "llava_next_video": "llama",
    "llava_onevision": "qwen2",
    "mistral3": "mistral",
    "gemma3": "gemma3_text",
    "qwen2_vl": "qwen2_vl_text",
    "qwen2_5_vl": "qwen2_5_vl_text",
    "qwen3_vl": "qwen3_vl_text",
    "qwen3_5": "qwen3_5_text",
    "qwen2_5_omni": "qwen2_5_omni_text",
    "llama4": "llama4_text",
    "internvl": "qwen2",
    "deepseek_vl": "llama",
    "deepseek_ocr2": "deepseek_ocr2_text",
}
"""The language model type transformers builds when a composite config's nested dict names none."""

TEXT_CONFIG_PATHS: tuple[tuple[str, ...], ...] = (
    ("thinker_config", "text_config"),
    ("text_config",),
    ("llm_config",),
    ("language_config",),
)
"""Where composite configs keep the language model, in the order they are looked for."""

_LEARNED_TABLE_KEY = {
    "gpt2": "n_positions",
    "gpt_bigcode": "n_positions",
    "gpt_neo": "max_position_embeddings",
    "opt": "max_position_embeddings",
    "biogpt": "max_position_embeddings",
    "bert": "max_position_embeddings",
    "roberta": "max_position_embeddings",
    "xlm-roberta": "max_position_embeddings",
    "distilbert": "max_position_embeddings",
    "electra": "max_position_embeddings",
    "bart": "max_position_embeddings",
    "mbart": "max_position_embeddings",
}
_ALIBI_TYPES = frozenset({"bloom"})
_T5_TYPES = frozenset({"t5", "mt5", "umt5", "longt5", "switch_transformers"})
_SINUSOIDAL_TYPES = frozenset({"xglm"})
_RECURRENT_TYPES = frozenset({"rwkv", "rwkv5", "rwkv6", "rwkv7", "mamba", "mamba2", "falcon_mamba"})


def model_defaults(model_type: object) -> dict[str, Any]:
    """transformers' defaults for ``model_type`` (empty for model types ropescope has none for)."""
    return dict(MODEL_DEFAULTS.get(model_type, {})) if isinstance(model_type, str) else {}


def _table_size(config: Mapping[str, Any], key: str) -> int | None:
    value = config.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def detect_scheme(config: Mapping[str, Any]) -> PositionalScheme:
    """The positional scheme of a (language-model) config: its own switches first, then its ``model_type``."""
    model_type = config.get("model_type")
    named = f"model_type {model_type!r}"
    attn_config = config.get("attn_config")
    attn_config = attn_config if isinstance(attn_config, Mapping) else {}
    if model_type == "mpt":
        if attn_config.get("alibi", True):  # MptAttentionConfig.alibi defaults to True
            return PositionalScheme(ALIBI, None, "MPT with attn_config.alibi (the default) true")
        if config.get("learned_pos_emb", True):
            size = _table_size(config, "max_seq_len")
            return PositionalScheme(LEARNED_ABSOLUTE, size, "MPT with attn_config.alibi false and learned_pos_emb")
        return PositionalScheme(NONE, None, "MPT with attn_config.alibi and learned_pos_emb both false")
    for key in ("alibi", "use_alibi"):
        if config.get(key) is True:
            return PositionalScheme(ALIBI, None, f"{key} is true")
    embedding_type = config.get("position_embedding_type")
    if embedding_type == "alibi":
        return PositionalScheme(ALIBI, None, "position_embedding_type is 'alibi'")
    if embedding_type in ("absolute", "learned") and model_type not in (None, *_LEARNED_TABLE_KEY):
        size = _table_size(config, "max_position_embeddings")
        return PositionalScheme(LEARNED_ABSOLUTE, size, f"position_embedding_type is {embedding_type!r}")
    if model_type in _LEARNED_TABLE_KEY:
        key = _LEARNED_TABLE_KEY[model_type]
        size = _table_size(config, key) or _table_size(model_defaults(model_type), key)
        return PositionalScheme(LEARNED_ABSOLUTE, size, f"{named} learns a position table of {key} entries")
    if model_type in _ALIBI_TYPES:
        return PositionalScheme(ALIBI, None, f"{named} uses ALiBi attention biases")
    if model_type in _T5_TYPES:
        return PositionalScheme(T5_RELATIVE_BIAS, None, f"{named} uses T5's bucketed relative position bias")
    if model_type in _SINUSOIDAL_TYPES:
        return PositionalScheme(SINUSOIDAL_ABSOLUTE, None, f"{named} adds fixed sinusoidal position embeddings")
    if model_type in _RECURRENT_TYPES:
        return PositionalScheme(NONE, None, f"{named} is recurrent: order comes from the recurrence")
    return PositionalScheme(ROPE, None, f"{named} rotates queries and keys (RoPE)" if model_type else "RoPE")
