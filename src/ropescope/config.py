"""Normalise any model config into one frozen :class:`RopeSpec`.

A model's positional settings arrive in many spellings. This module reads them all and records every deviation
as a :class:`Finding` instead of silently fixing it:

* transformers v4: top-level ``rope_theta`` plus a ``rope_scaling`` dict keyed by ``type`` or ``rope_type``;
* transformers v5: ``rope_parameters`` (flat, or nested per layer type such as Gemma 3's
  ``sliding_attention``/``full_attention``), with ``rope_theta`` inside;
* the rotary dimension d: ``head_dim`` when present, else ``hidden_size // num_attention_heads``, times
  ``partial_rotary_factor`` (GPT-NeoX ``rotary_pct``, StableLM ``rope_pct``); DeepSeek MLA rotates only
  ``qk_rope_head_dim``; GLM rotates half of each head and sets the base to ``10000 · rope_ratio``;
* Gemma 2/3 (v4 form): ``rope_local_base_freq`` is the base of the sliding-window layers;
* GPT-J, CodeGen and phi-msft: a top-level ``rotary_dim`` is the rotary dimension itself (GPT-J and CodeGen fix
  the base at 10⁴ in code);
* composite configs (``text_config``, ``llm_config``, ``language_config``, ``thinker_config.text_config``) and the
  keys a config omits: read as transformers does (:mod:`ropescope.model_types`);
* models without RoPE (GPT-2, BLOOM, T5, RWKV, Falcon with ``alibi``, ...): :func:`positional_scheme` names the
  scheme and :func:`load_spec` raises :class:`~ropescope.errors.NotRopeError`, which carries it;
* per-layer ``rope_parameters`` (v5) are nested when their keys are the config's ``layer_types`` (or, without
  ``layer_types``, every value is a dict or ``null``); a ``null`` entry is a layer type without RoPE (NoPE);
  ``num_layers`` counts only the layers that apply RoPE: not linear-attention/Mamba/conv layers (Qwen3.5,
  Qwen3-Next), not Llama 4's ``no_rope_layers``;
* MLA (DeepSeek) switched off (``use_mla: false`` or ``qk_rope_head_dim: 0``) is plain attention;
* HunYuan's ``dynamic`` with ``alpha`` is transformers' fixed NTK-alpha base b·α^(d/(d−2)): read as ``ntk``
  with factor α; Qwen-1's ``use_dynamic_ntk`` is ``qwen_dynamic`` (:mod:`ropescope.spectrum`), its
  ``use_logn_attn`` and Ministral 3's ``llama_4_scaling_beta`` are query scales (:meth:`Spectrum.query_scale`);
* ``mrope_section`` (Qwen2-VL, Qwen3.5) is checked (its sections must add up to the rotary pairs) and reported:
  for text tokens the three M-RoPE position ids are equal, so the 1-D spectrum is exact; the per-axis rotation of
  image and video tokens is not modelled.

The canonical rope types are those of transformers' ``ROPE_INIT_FUNCTIONS`` plus ``default`` and two that
transformers lacks: ``ntk`` (static NTK-aware base scaling, bloc97 2023) and ``entropy_abf`` (Zhang et al. 2024,
"Extending LLMs' Context Window with 100 Samples", arXiv 2401.07004). Legacy names map to them: ``su`` →
``longrope``, ``eabf`` → ``entropy_abf``, ``mrope`` → ``default`` (see ``mrope_section`` above). Names are
case-sensitive, as in transformers (``"Linear"`` is refused). Every number must be finite and in range: a base
must exceed 1, a head at most :data:`ropescope.bounds.MAX_ROTARY_DIM` wide.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ropescope import lineage as lineage_module
from ropescope.bounds import MAX_LAYERS, MAX_ROTARY_DIM
from ropescope.errors import NotRopeError, RopescopeInputError
from ropescope.lineage import Lineage
from ropescope.model_types import (
    TEXT_CONFIG_PATHS,
    TEXT_MODEL_TYPES,
    PositionalScheme,
    detect_scheme,
    model_defaults,
)

DEFAULT_BASE = 10_000.0
_MAX_INT = 1 << 62  # integer keys above this are not token counts or sizes anyone writes

# Keys each rope type reads, beyond rope_type/type/rope_theta/partial_rotary_factor (transformers v5 validators,
# plus our extra types). Anything else in the scaling dict is ignored by transformers: a finding.
REQUIRED_KEYS: dict[str, frozenset[str]] = {
    "default": frozenset(),
    "linear": frozenset({"factor"}),
    "dynamic": frozenset({"factor"}),
    "ntk": frozenset({"factor"}),
    "yarn": frozenset({"factor"}),
    "longrope": frozenset({"short_factor", "long_factor"}),
    "llama3": frozenset({"factor", "low_freq_factor", "high_freq_factor"}),
    "proportional": frozenset(),
    "entropy_abf": frozenset(),
    "qwen_dynamic": frozenset(),
}
OPTIONAL_KEYS: dict[str, frozenset[str]] = {
    "default": frozenset(),
    "linear": frozenset(),
    "dynamic": frozenset(),
    "ntk": frozenset(),
    "yarn": frozenset(
        {
            "original_max_position_embeddings",
            "attention_factor",
            "beta_fast",
            "beta_slow",
            "mscale",
            "mscale_all_dim",
            "truncate",
        }
    ),
    "longrope": frozenset({"factor", "attention_factor", "original_max_position_embeddings"}),
    "llama3": frozenset({"original_max_position_embeddings"}),
    "proportional": frozenset({"factor"}),
    "entropy_abf": frozenset({"factor", "original_max_position_embeddings"}),
    "qwen_dynamic": frozenset({"original_max_position_embeddings"}),
}
ROPE_TYPES = tuple(REQUIRED_KEYS)
_ALIASES = {"su": "longrope", "eabf": "entropy_abf", "mrope": "default", "static_ntk": "ntk"}
_COMMON_KEYS = frozenset({"rope_type", "type", "rope_theta", "partial_rotary_factor"})
# read by the model around the rotary module, for any rope type (transformers' ignore_keys_at_rope_validation)
_MODEL_KEYS = frozenset({"llama_4_scaling_beta", "mrope_section", "mrope_interleaved", "max_position_embeddings"})
_USES_ORIGINAL = frozenset({"yarn", "longrope", "llama3", "entropy_abf", "qwen_dynamic"})
_NTK_EXPONENT = frozenset({"ntk", "dynamic", "qwen_dynamic"})  # b·s^(d/(d−2)) needs d ≥ 4
_MAX_QUERY_BETA = 100.0  # Ministral 3 uses 0.1; far above it the query scale is no longer a mild correction
_NO_ROTARY_LAYERS = frozenset({"linear_attention", "mamba", "conv", "moe", "sparse", "dense"})
_SHAPE_KEYS = ("hidden_size", "num_attention_heads", "head_dim", "num_hidden_layers", "rope_theta", "rope_scaling")


@dataclass(frozen=True)
class Finding:
    """A problem or ambiguity in a config: ``severity`` is ``info``, ``warning`` or ``error``."""

    code: str
    severity: str
    message: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "severity": self.severity, "message": self.message, "fix": self.fix}


@dataclass(frozen=True)
class RopeSpec:
    """The positional settings a model uses at run time, normalised.

    ``scaling`` holds the method's parameters (``factor``, ``beta_fast``, ``short_factor`` as a tuple, ...) and
    the query scales read around the rotary module (``llama_4_scaling_beta``, ``logn_attn``), and
    ``mrope_section`` as a tuple. ``layer_specs`` maps each layer type to its spec when a model has several
    (this spec is then the one of the full-attention layers); it is empty otherwise. ``num_layers`` counts the
    layers that apply RoPE.
    """

    source: str
    rope_type: str
    base: float
    head_dim: int
    rotary_dim: int
    num_layers: int | None = None
    max_position_embeddings: int | None = None
    original_max_position_embeddings: int | None = None
    sliding_window: int | None = None
    dtype: str | None = None
    model_type: str | None = None
    layer_type: str | None = None
    scaling: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    findings: tuple[Finding, ...] = ()
    layer_specs: Mapping[str, RopeSpec] = field(default_factory=lambda: MappingProxyType({}))
    lineage: Lineage | None = None

    @property
    def training_context(self) -> int | None:
        """The context the unscaled spectrum was trained for."""
        return self.original_max_position_embeddings or self.max_position_embeddings

    @property
    def factor(self) -> float | None:
        value = self.scaling.get("factor")
        return None if value is None else float(value)

    def with_base(self, base: float) -> RopeSpec:
        """The same spec with another base (layer specs untouched)."""
        return replace(self, base=float(base), layer_specs=MappingProxyType({}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "model_type": self.model_type,
            "layer_type": self.layer_type,
            "rope_type": self.rope_type,
            "base": self.base,
            "head_dim": self.head_dim,
            "rotary_dim": self.rotary_dim,
            "num_layers": self.num_layers,
            "max_position_embeddings": self.max_position_embeddings,
            "original_max_position_embeddings": self.original_max_position_embeddings,
            "sliding_window": self.sliding_window,
            "dtype": self.dtype,
            "scaling": {k: list(v) if isinstance(v, tuple) else v for k, v in self.scaling.items()},
            "lineage": None if self.lineage is None else self.lineage.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
            "layer_types": sorted(self.layer_specs),
        }


def load_spec(source: str | Path | Mapping[str, Any]) -> RopeSpec:
    """Build a :class:`RopeSpec` from a ``config.json`` path, a model folder, a config dict, or a catalog id
    (with the catalog's training lineage). A model without RoPE raises :class:`~ropescope.errors.NotRopeError`
    naming its scheme.
    """
    config, name, catalog_lineage = load_config(source)
    spec = spec_from_config(config, name)
    return spec if spec.lineage is not None or catalog_lineage is None else replace(spec, lineage=catalog_lineage)


def positional_scheme(source: str | Path | Mapping[str, Any]) -> PositionalScheme:
    """How the model of ``source`` (as for :func:`load_spec`) encodes positions, without reading its RoPE.

    ``positional_scheme({"model_type": "gpt2"})`` is ``PositionalScheme("learned_absolute", 1024, ...)``;
    a RoPE model gives ``name == "rope"`` (then :func:`load_spec` reads it).
    """
    config, _, _ = load_config(source)
    return detect_scheme(language_model_config(config)[0])


def load_config(source: str | Path | Mapping[str, Any]) -> tuple[Mapping[str, Any], str, Lineage | None]:
    """The raw config behind ``source`` (a path, a model folder, a dict or a catalog id), its name, and the
    catalog's lineage when it is a catalog id."""
    if isinstance(source, Mapping):
        return source, "<dict>", None
    path = Path(source)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise RopescopeInputError(
                str(path), "is a folder without a config.json", "give the model folder that holds config.json"
            )
        path = path / "config.json"
    if path.is_file():
        return read_config_file(path), str(path), None
    text = str(source)
    if text.endswith(".json") or "\\" in text or text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise RopescopeInputError(
            text, "no such file", "give the path of a model's config.json, a model folder, or a catalog id"
        )
    from ropescope.catalog import get_entry

    entry = get_entry(text)
    return entry.config, entry.id, entry.lineage


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise RopescopeInputError(str(path), f"cannot be read ({error.strerror})", "check its permissions") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise RopescopeInputError(
            str(path),
            f"is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start})",
            "save the file as UTF-8, the encoding of JSON",
        ) from None
    except json.JSONDecodeError as error:
        raise RopescopeInputError(
            str(path),
            f"invalid JSON at line {error.lineno} column {error.colno} ({error.msg})",
            "fix the file so it parses as JSON (a model's config.json)",
        ) from None
    except (ValueError, RecursionError) as error:  # integers over Python's digit limit; absurd nesting
        raise RopescopeInputError(str(path), f"cannot be parsed ({error})", "give a model's config.json") from None
    if not isinstance(data, dict):
        raise RopescopeInputError(str(path), "is not a JSON object", "give a model's config.json")
    return data


def language_model_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], list[Finding]]:
    """The config of the language model, as transformers builds it: the nested text config of a composite
    config (else the config itself), with the model type's defaults under the keys it omits; and findings."""
    findings: list[Finding] = []
    node: Any = config
    where = ""
    if config.get("model_type") is not None and not isinstance(config.get("model_type"), str):
        raise RopescopeInputError("model_type", f"must be a string, got {config['model_type']!r}", "e.g. 'llama'")
    for path in TEXT_CONFIG_PATHS:
        candidate: Any = config
        for key in path:
            candidate = candidate.get(key) if isinstance(candidate, Mapping) else None
        if isinstance(candidate, Mapping):
            node, where = candidate, ".".join(path)
            break
    present = {key: value for key, value in node.items() if value is not None}
    if not isinstance(present.get("model_type", ""), str):
        raise RopescopeInputError(
            f"{where}.model_type", f"must be a string, got {present['model_type']!r}", "e.g. 'llama'"
        )
    if where:
        model_type = present.get("model_type", TEXT_MODEL_TYPES.get(config.get("model_type")))  # type: ignore[arg-type]
        ignored = [k for k in _SHAPE_KEYS if config.get(k) is not None and config.get(k) != present.get(k)]
        findings.append(
            Finding(
                "text-config",
                "info",
                f"positional settings read from the nested {where} (model type {model_type!r})"
                + (f"; top-level {ignored} belong to the wrapper, not the language model" if ignored else ""),
            )
        )
        for key in ("torch_dtype", "dtype"):
            if key not in present and config.get(key) is not None:
                present[key] = config[key]
    else:
        model_type = present.get("model_type")
    if model_type is not None:
        present["model_type"] = model_type
    defaults = model_defaults(model_type)
    defaults.pop("rope_theta", None)  # the base's default is reported by the reader (default-base)
    if "rope_scaling" in present:
        defaults.pop("rope_parameters", None)
    used = sorted(set(defaults) - set(present))
    if used:
        findings.append(
            Finding(
                "model-type-defaults",
                "info",
                f"{used} not in the config: transformers' {model_type} defaults are used",
                "write them explicitly",
            )
        )
    return {**defaults, **present}, findings


def spec_from_config(config: Mapping[str, Any], source: str) -> RopeSpec:
    """Normalise one config mapping (see the module docstring for what is understood)."""
    if not isinstance(config, Mapping):
        raise RopescopeInputError(source, "is not a JSON object", "give a model's config.json")
    text, findings = language_model_config(config)
    scheme = detect_scheme(text)
    if not scheme.is_rope:
        raise NotRopeError(source, scheme)
    return _ConfigReader(text, source, findings).spec()


class _ConfigReader:
    """Reads one language-model config; collects findings as it goes."""

    def __init__(self, config: Mapping[str, Any], source: str, findings: list[Finding]) -> None:
        self.config = config
        self.source = source
        self.findings = findings
        self.model_type = config.get("model_type") if isinstance(config.get("model_type"), str) else None

    # --- helpers -------------------------------------------------------------------------------------
    def _note(self, code: str, severity: str, message: str, fix: str = "") -> None:
        self.findings.append(Finding(code, severity, message, fix))

    def _error(self, key: str, problem: str, fix: str) -> RopescopeInputError:
        return RopescopeInputError(f"{self.source}: {key}", problem, fix)

    def _positive_int(self, key: str, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            valid = False
        elif isinstance(value, int):
            valid = 0 < value <= _MAX_INT
        else:
            valid = math.isfinite(value) and value == int(value) and 0 < value <= _MAX_INT
        if not valid:
            shown = f"{value!r}" if not isinstance(value, int) or abs(value) < 10**30 else "a huge integer"
            raise self._error(key, f"must be a positive integer, got {shown}", f"set {key} to a positive integer")
        return int(value)

    def _number(self, key: str, value: Any) -> float:
        number = value if isinstance(value, float) else None
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**300:
            number = float(value)
        if number is None or not math.isfinite(number):
            shown = f"{value!r}" if not isinstance(value, int) or abs(value) < 10**30 else "a huge integer"
            raise self._error(key, f"must be a finite number, got {shown}", f"set {key} to a number")
        return number

    # --- the pieces ----------------------------------------------------------------------------------
    def spec(self) -> RopeSpec:
        c = self.config
        head_dim = self._head_dim()
        shared = {
            "source": self.source,
            "head_dim": head_dim,
            "num_layers": self._rope_layers(),
            "max_position_embeddings": self._positive_int(
                "max_position_embeddings",
                c.get("max_position_embeddings", c.get("seq_length", c.get("n_positions"))),
            ),
            "sliding_window": self._sliding_window(),
            "dtype": c.get("torch_dtype", c.get("dtype"))
            if isinstance(c.get("torch_dtype", c.get("dtype")), str)
            else None,
            "model_type": self.model_type,
            "lineage": (
                lineage_module.from_config_key(c[lineage_module.CONFIG_KEY], self.source)
                if lineage_module.CONFIG_KEY in c
                else None
            ),
        }
        if "dual_chunk_attention_config" in c:
            self._note(
                "dual-chunk-attention",
                "warning",
                "dual_chunk_attention_config is set: at long context the runtime remaps positions (DCA), "
                "which the spectrum and bounds do not model",
                "treat the audit beyond the chunk size as describing the unmodified RoPE only",
            )
        per_layer = self._per_layer_parameters()
        if per_layer is None:
            return replace(self._build(self._flat_parameters(), shared, None), findings=tuple(self.findings))
        built = {name: self._build(params, shared, layer_type=name) for name, params in per_layer.items()}
        specs = {name: replace(spec, findings=tuple(self.findings)) for name, spec in built.items()}
        main = specs.get("full_attention") or next(iter(specs.values()))
        return replace(main, layer_specs=MappingProxyType(specs))

    def _mla_off(self) -> bool:
        c = self.config
        if c.get("qk_rope_head_dim") is None:
            return False
        if c.get("use_mla") is False or c.get("qk_rope_head_dim") == 0:
            self._note(
                "mla-off",
                "info",
                f"use_mla={c.get('use_mla')!r}, qk_rope_head_dim={c.get('qk_rope_head_dim')!r}: multi-head latent "
                "attention is off, so heads are plain attention over hidden_size / num_attention_heads",
            )
            return True
        return False

    def _head_dim(self) -> int:
        c = self.config
        if c.get("qk_rope_head_dim") is not None and not self._mla_off():
            self._note(
                "mla",
                "info",
                f"multi-head latent attention: RoPE rotates qk_rope_head_dim={c['qk_rope_head_dim']} of each "
                f"q/k head (qk_nope_head_dim={c.get('qk_nope_head_dim')} are not rotated)",
            )
            return self._checked_width("qk_rope_head_dim", c["qk_rope_head_dim"])
        if c.get("head_dim") is not None:
            return self._checked_width("head_dim", c["head_dim"])
        if c.get("kv_channels") is not None:
            return self._checked_width("kv_channels", c["kv_channels"])
        hidden_key = next((k for k in ("hidden_size", "n_embd", "d_model") if c.get(k) is not None), "hidden_size")
        heads_key = next((k for k in ("num_attention_heads", "n_head") if c.get(k) is not None), "num_attention_heads")
        hidden, heads = c.get(hidden_key), c.get(heads_key)
        if hidden is None or heads is None:
            raise self._error(
                "head_dim",
                "cannot be determined (no head_dim, and no hidden_size with num_attention_heads)",
                "add head_dim (or hidden_size and num_attention_heads) to the config",
            )
        hidden, heads = self._positive_int(hidden_key, hidden), self._positive_int(heads_key, heads)
        assert hidden is not None and heads is not None
        if hidden % heads:
            self._note(
                "head-dim-floor",
                "warning",
                f"{hidden_key} {hidden} is not divisible by {heads_key} {heads}; head_dim taken as "
                f"{hidden // heads} (transformers floors it)",
                "set head_dim explicitly",
            )
        return self._checked_width("head_dim", hidden // heads)

    def _checked_width(self, key: str, value: Any) -> int:
        width = self._positive_int(key, value) or 0
        if width > MAX_ROTARY_DIM:
            raise self._error(key, f"is {width}, wider than any model's head", f"use at most {MAX_ROTARY_DIM}")
        return width

    def _rope_layers(self) -> int | None:
        """Layers that apply RoPE: all of num_hidden_layers, less linear-attention/Mamba/conv and NoPE layers."""
        c = self.config
        key = next((k for k in ("num_hidden_layers", "n_layer", "num_layers") if c.get(k) is not None), None)
        total = self._positive_int(key, c[key]) if key else None
        if total is not None and total > MAX_LAYERS:
            raise self._error(key, f"is {total}, deeper than any model", f"use at most {MAX_LAYERS:,} layers")
        layer_types = self._layer_types(total)
        if layer_types is None:
            flags = self._no_rope_flags(total)
            return total if flags is None else sum(flags)
        rotary = [t for t in layer_types if t not in _NO_ROTARY_LAYERS and t not in self._nope_layer_types()]
        if len(rotary) < len(layer_types):
            skipped = sorted(set(layer_types) - set(rotary))
            self._note(
                "non-rotary-layers",
                "info",
                f"{len(layer_types) - len(rotary)} of {len(layer_types)} layers ({', '.join(skipped)}) apply no RoPE; "
                f"the depth bound counts the {len(rotary)} that do",
            )
        return len(rotary) or None

    def _layer_types(self, total: int | None) -> list[str] | None:
        c = self.config
        layer_types = c.get("layer_types")
        if layer_types is None and c.get("full_attention_interval") is not None and total is not None:
            interval = self._positive_int("full_attention_interval", c["full_attention_interval"])
            assert interval is not None
            # transformers' Qwen3-Next / Qwen3.5 default: every interval-th layer is full attention
            return ["full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(total)]
        if layer_types is None:
            return None
        if not isinstance(layer_types, list) or not all(isinstance(t, str) for t in layer_types):
            raise self._error("layer_types", "must be a list of layer type names", "fix layer_types")
        if total is not None and len(layer_types) != total:
            self._note(
                "layer-types-length",
                "warning",
                f"layer_types has {len(layer_types)} entries but num_hidden_layers is {total} (transformers refuses)",
                "give one layer type per layer",
            )
        return layer_types

    def _no_rope_flags(self, total: int | None) -> list[bool] | None:
        """Llama 4's no_rope_layers: 1 where a layer applies RoPE, 0 where it is NoPE."""
        flags = self.config.get("no_rope_layers") or None  # transformers: an empty list means the default
        if flags is None and self.model_type == "llama4_text" and total is not None:
            interval = self._positive_int("no_rope_layer_interval", self.config.get("no_rope_layer_interval", 4))
            assert interval is not None
            flags = [int((i + 1) % interval != 0) for i in range(total)]
        if flags is None:
            return None
        if not isinstance(flags, list) or not all(f in (0, 1) and not isinstance(f, float) for f in flags):
            raise self._error("no_rope_layers", "must be a list of 0 and 1 per layer", "fix no_rope_layers")
        rotary = [bool(f) for f in flags]
        if not all(rotary):
            self._note(
                "nope-layers",
                "info",
                f"{rotary.count(False)} of {len(rotary)} layers are NoPE (no_rope_layers): "
                f"the depth bound counts the {sum(rotary)} that apply RoPE",
            )
        return rotary

    def _nope_layer_types(self) -> set[str]:
        parameters = self.config.get("rope_parameters")
        if not isinstance(parameters, Mapping) or not self._is_nested(parameters):
            return set()
        return {str(name) for name, value in parameters.items() if value is None}

    def _sliding_window(self) -> int | None:
        c = self.config
        window = c.get("sliding_window")
        if window is None:
            return None
        if c.get("use_sliding_window") is False:
            self._note(
                "inert-sliding-window",
                "info",
                f"sliding_window={window!r} is set but use_sliding_window is false, so it has no effect",
            )
            return None
        return self._positive_int("sliding_window", window)

    def _top_level_base(self) -> float | None:
        c = self.config
        if self.model_type in ("gptj", "codegen"):
            if c.get("rope_theta") is not None:
                self._note(
                    "fixed-base", "warning", f"{self.model_type} fixes the base at 10000 in code: rope_theta is ignored"
                )
            return DEFAULT_BASE
        if c.get("rope_theta") is not None:
            return self._number("rope_theta", c["rope_theta"])
        if c.get("rotary_emb_base") is not None:
            return self._number("rotary_emb_base", c["rotary_emb_base"])
        if c.get("rope_ratio") is not None:
            ratio = self._number("rope_ratio", c["rope_ratio"])
            self._note("glm-rope-ratio", "info", f"GLM rope_ratio {ratio:g}: base = 10000 × {ratio:g}")
            return DEFAULT_BASE * ratio
        return None

    def _partial_rotary_factor(self, params: Mapping[str, Any]) -> float:
        c = self.config
        for key, value in (
            ("partial_rotary_factor", params.get("partial_rotary_factor")),
            ("partial_rotary_factor", c.get("partial_rotary_factor")),
            ("rotary_pct", c.get("rotary_pct")),
            ("rope_pct", c.get("rope_pct")),
        ):
            if value is not None:
                factor = self._number(key, value)
                if not 0 < factor <= 1:
                    raise self._error(key, f"must be in (0, 1], got {factor:g}", f"set {key} to a fraction in (0, 1]")
                return factor
        if c.get("rope_ratio") is not None or self.model_type in {"chatglm", "glm"}:
            self._note("glm-half-rotary", "info", "GLM rotates half of each head (partial_rotary_factor 0.5)")
            return 0.5
        return 1.0

    def _rotary_dim(self, rope_type: str, head_dim: int, params: Mapping[str, Any]) -> tuple[int, str]:
        """The rotary dimension and how it was found."""
        c = self.config
        if c.get("rotary_dim") is not None and rope_type != "proportional":
            rotary = self._checked_width("rotary_dim", c["rotary_dim"])
            if rotary > head_dim:
                raise self._error(
                    "rotary_dim", f"is {rotary}, wider than the head ({head_dim})", f"use at most {head_dim}"
                )
            return rotary, f"rotary_dim {rotary}"
        partial = self._partial_rotary_factor(params)
        if rope_type == "proportional":
            return head_dim, f"head_dim {head_dim}"
        return int(head_dim * partial), f"head_dim {head_dim} × partial_rotary_factor {partial:g}"

    def _flat_parameters(self) -> dict[str, Any]:
        c = self.config
        scaling = c.get("rope_scaling")
        parameters = c.get("rope_parameters")
        if scaling is not None and not isinstance(scaling, Mapping):
            raise self._error("rope_scaling", f"must be an object or null, got {scaling!r}", "fix rope_scaling")
        if parameters is not None and not isinstance(parameters, Mapping):
            raise self._error("rope_parameters", f"must be an object, got {parameters!r}", "fix rope_parameters")
        if scaling and parameters:
            self._note(
                "both-schemas",
                "warning",
                "both rope_scaling (v4) and rope_parameters (v5) are set; transformers v5 uses rope_scaling",
                "keep only rope_parameters",
            )
            return dict(scaling)
        params = dict(scaling or parameters or {})
        if c.get("use_dynamic_ntk") is True and not params:
            self._note(
                "qwen-dynamic-ntk",
                "warning",
                "use_dynamic_ntk: Qwen raises the base at run time to b·α^(d/(d−2)), "
                "α = max(1, 2^⌈log2(ℓ/seq_length)+1⌉ − 1) for a prompt of ℓ tokens (α = 7 at 4× seq_length), "
                "chosen at prefill and kept while decoding",
                "pass seq_len (spectrum --seq-len) to see the spectrum at that length",
            )
            params["rope_type"] = "qwen_dynamic"
        return params

    @staticmethod
    def _is_nested(parameters: Mapping[str, Any]) -> bool:
        return (
            bool(parameters)
            and all(v is None or isinstance(v, Mapping) for v in parameters.values())
            and any(isinstance(v, Mapping) for v in parameters.values())
        )

    def _per_layer_parameters(self) -> dict[str, dict[str, Any]] | None:
        c = self.config
        parameters = c.get("rope_parameters")
        layer_types = c.get("layer_types") if isinstance(c.get("layer_types"), list) else None
        if isinstance(parameters, Mapping) and (
            any(key in layer_types for key in parameters) if layer_types else self._is_nested(parameters)
        ):
            entries = {str(name): p for name, p in parameters.items() if not layer_types or name in layer_types}
            for name, p in entries.items():
                if p is not None and not isinstance(p, Mapping):
                    raise self._error(f"rope_parameters.{name}", "must be an object or null", "fix rope_parameters")
            nope = sorted(name for name, p in entries.items() if p is None)
            if nope:
                self._note("nope-layer-types", "info", f"rope_parameters for {nope} is null: those layers use no RoPE")
            rotary = {name: dict(p) for name, p in entries.items() if p is not None}
            if not rotary:
                raise self._error("rope_parameters", "is null for every layer type", "this model applies no RoPE")
            return rotary
        if c.get("rope_local_base_freq") is None:
            return None
        local = {"rope_type": "default", "rope_theta": self._number("rope_local_base_freq", c["rope_local_base_freq"])}
        self._note(
            "local-base",
            "info",
            f"sliding-window layers use rope_local_base_freq {local['rope_theta']:g}; "
            "rope_theta and rope_scaling apply to the full-attention layers",
        )
        return {"full_attention": self._flat_parameters(), "sliding_attention": local}

    def _rope_type(self, params: dict[str, Any], where: str) -> str:
        declared_new, declared_old = params.get("rope_type"), params.get("type")
        if declared_old is not None and declared_new is None:
            self._note(
                "legacy-type-key", "info", f"{where} uses the legacy key 'type' (transformers reads it as rope_type)"
            )
        elif declared_old is not None and declared_old != declared_new:
            self._note(
                "type-conflict",
                "warning",
                f"{where} has type={declared_old!r} and rope_type={declared_new!r}; transformers uses rope_type",
                "remove the legacy 'type' key",
            )
        name = declared_new if declared_new is not None else declared_old
        if name is None:
            return "default"
        if not isinstance(name, str):
            raise self._error(f"{where}.rope_type", f"must be a string, got {name!r}", "use a known rope type")
        if name in _ALIASES:
            canonical = _ALIASES[name]
            self._note(
                "rope-type-alias",
                "warning" if name == "su" else "info",
                f"{where} rope type {name!r} is read as {canonical!r}"
                + (" (transformers v5 has no 'su'; it was renamed 'longrope')" if name == "su" else ""),
                f"write rope_type {canonical!r}" if name == "su" else "",
            )
            return canonical
        if name not in REQUIRED_KEYS:
            lowered = name.lower()
            close = lowered if lowered in REQUIRED_KEYS else _ALIASES.get(lowered)
            raise self._error(
                f"{where}.rope_type",
                f"unknown rope type {name!r}"
                + (" (names are case-sensitive: transformers refuses it)" if close else ""),
                f"write {close!r}" if close else f"use one of: {', '.join(ROPE_TYPES)}",
            )
        return name

    def _hunyuan_alpha(self, rope_type: str, params: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
        """HunYuan's 'dynamic' with alpha is a fixed NTK-alpha base: read as 'ntk' with factor α."""
        if rope_type != "dynamic" or not params.get("alpha") or not str(self.model_type).startswith("hunyuan"):
            return rope_type, params
        alpha = self._number(f"{where}.alpha", params["alpha"])
        if alpha < 1:
            raise self._error(f"{where}.alpha", f"is {alpha:g}, below 1 (that would lower the base)", "use alpha >= 1")
        self._note(
            "hunyuan-ntk-alpha",
            "info",
            f"rope type 'dynamic' with alpha {alpha:g}: HunYuan's rotary module uses the fixed NTK-alpha base "
            f"b·α^(d/(d−2)) (factor and the sequence length play no part); read as static 'ntk' with factor {alpha:g}",
        )
        kept = {k: v for k, v in params.items() if k not in ("alpha", "factor", "type", "rope_type")}
        return "ntk", {**kept, "rope_type": "ntk", "factor": alpha}

    def _build(self, params: dict[str, Any], shared: dict[str, Any], layer_type: str | None) -> RopeSpec:
        where = (
            f"rope_parameters.{layer_type}"
            if layer_type
            else ("rope_scaling" if self.config.get("rope_scaling") else "rope_parameters")
        )
        rope_type, params = self._hunyuan_alpha(self._rope_type(params, where), params, where)
        base = params.get("rope_theta")
        base = self._number(f"{where}.rope_theta", base) if base is not None else self._top_level_base()
        if base is None:
            default = model_defaults(self.model_type).get("rope_theta", DEFAULT_BASE)
            owner = f"{self.model_type} default" if "rope_theta" in model_defaults(self.model_type) else "default"
            self._note(
                "default-base",
                "info",
                f"no rope_theta in the config: the transformers {owner} {default:g} is used",
                "write rope_theta explicitly",
            )
            base = default
        if not math.isfinite(base):
            raise self._error("rope_theta", f"is {base:g} (from rope_ratio), not a finite number", "set rope_theta")
        if not base > 1:
            raise self._error(
                "rope_theta",
                f"must exceed 1, got {base:g} (RoPE wavelengths 2π·b^(2i/d) grow with i only for b > 1)",
                "set rope_theta to the model's base, e.g. 10000",
            )
        head_dim = shared["head_dim"]
        rotary_dim, how = self._rotary_dim(rope_type, head_dim, params)
        if rotary_dim % 2 or rotary_dim == 0:
            raise self._error(
                "rotary dimension",
                f"is {rotary_dim} ({how}); RoPE rotates pairs, so it must be even and positive",
                "fix head_dim or partial_rotary_factor so their product is an even integer",
            )
        if rope_type in _NTK_EXPONENT and rotary_dim < 4:
            raise self._error(
                "rotary dimension",
                f"is {rotary_dim}: {rope_type} raises the base by s^(d/(d−2)), undefined for d = 2",
                "use a rotary dimension of at least 4, or rope type 'default'",
            )
        scaling = self._scaling(rope_type, params, where, rotary_dim)
        original = self._original_context(rope_type, scaling, shared["max_position_embeddings"])
        if rope_type == "proportional":
            scaling["partial_rotary_factor"] = self._partial_rotary_factor(params)
        scaling.pop("original_max_position_embeddings", None)
        scaling.update(self._model_scaling(params, where, rotary_dim, original))
        return RopeSpec(
            rope_type=rope_type,
            base=base,
            rotary_dim=rotary_dim,
            original_max_position_embeddings=original,
            layer_type=layer_type,
            scaling=MappingProxyType(scaling),
            **shared,
        )

    def _model_scaling(
        self, params: dict[str, Any], where: str, rotary_dim: int, original: int | None
    ) -> dict[str, Any]:
        """Keys read around the rotary module: query scales and the M-RoPE section split."""
        c, out = self.config, {}
        beta = params.get("llama_4_scaling_beta")
        if beta is not None:
            out["llama_4_scaling_beta"] = self._number(f"{where}.llama_4_scaling_beta", beta)
            if not 0 <= out["llama_4_scaling_beta"] <= _MAX_QUERY_BETA:
                raise self._error(
                    f"{where}.llama_4_scaling_beta",
                    f"is {beta:g}; the query scale 1 + β·ln(1 + ⌊m / L_orig⌋) needs 0 ≤ β ≤ {_MAX_QUERY_BETA:g}",
                    "use the model's value (Ministral 3: 0.1)",
                )
            if original is None:
                raise self._error(
                    f"{where}.original_max_position_embeddings",
                    "is needed by llama_4_scaling_beta (the query scale 1 + β·ln(1 + ⌊m / L_orig⌋))",
                    f"add original_max_position_embeddings to {where}",
                )
            self._note(
                "llama4-query-scale",
                "info",
                f"llama_4_scaling_beta {out['llama_4_scaling_beta']:g}: queries at position m are scaled by "
                f"1 + β·ln(1 + ⌊m / {original}⌋) (Spectrum.query_scale)",
            )
        if c.get("use_logn_attn") is True:
            length = self._positive_int("seq_length", c.get("seq_length"))
            if length is None or length < 2:
                raise self._error(
                    "seq_length", "is needed (≥ 2) by use_logn_attn", "add seq_length (the training length)"
                )
            out["logn_attn"] = length
            self._note(
                "qwen-logn-attn",
                "info",
                f"use_logn_attn: queries at position m are scaled by max(1, ln(m+1)/ln {length}) "
                "(Spectrum.query_scale); Qwen's table of these scales ends at position 32767",
            )
        section = params.get("mrope_section", c.get("mrope_section"))
        if section is not None:
            if not isinstance(section, list) or not all(
                isinstance(x, int) and not isinstance(x, bool) and 0 < x <= rotary_dim for x in section
            ):
                raise self._error(f"{where}.mrope_section", "must be a list of positive integers", "e.g. [16, 24, 24]")
            if sum(section) != rotary_dim // 2:
                raise self._error(
                    f"{where}.mrope_section",
                    f"adds up to {sum(section)} pairs but the rotary dimension {rotary_dim} has {rotary_dim // 2}",
                    f"make the sections add up to {rotary_dim // 2}",
                )
            out["mrope_section"] = tuple(section)
            interleaved = " interleaved" if params.get("mrope_interleaved") else ""
            self._note(
                "mrope",
                "info",
                f"M-RoPE{interleaved}: the {rotary_dim // 2} pairs are split {section} between the temporal, height "
                "and width position ids; for text tokens the three ids are equal, so the spectrum and bounds are "
                "exact; the per-axis rotation of image and video tokens is not modelled",
            )
        return out

    def _scaling(self, rope_type: str, params: dict[str, Any], where: str, rotary_dim: int) -> dict[str, Any]:
        known = REQUIRED_KEYS[rope_type] | OPTIONAL_KEYS[rope_type]
        ignored = sorted(set(params) - known - _COMMON_KEYS - _MODEL_KEYS)
        if ignored:
            hint = " (did you mean attention_factor?)" if "attn_factor" in ignored else ""
            self._note(
                "ignored-keys",
                "warning",
                f"{where} keys {ignored} are not read for rope type {rope_type!r}; transformers ignores them{hint}",
                "remove them, or use the key the runtime reads",
            )
        missing = sorted(k for k in REQUIRED_KEYS[rope_type] if params.get(k) is None)
        if missing:
            raise self._error(
                f"{where}", f"rope type {rope_type!r} needs {missing}", f"add {', '.join(missing)} to {where}"
            )
        scaling: dict[str, Any] = {}
        for key in sorted(known & set(params)):
            value = params[key]
            if value is None:
                continue
            if key in {"short_factor", "long_factor"}:
                scaling[key] = self._factor_list(f"{where}.{key}", value, rotary_dim)
            elif key == "truncate":
                scaling[key] = bool(value)
            elif key == "original_max_position_embeddings":
                scaling[key] = self._positive_int(f"{where}.{key}", value)
            else:
                scaling[key] = self._number(f"{where}.{key}", value)
        self._check_values(rope_type, scaling, where)
        return scaling

    def _factor_list(self, key: str, value: Any, rotary_dim: int) -> tuple[float, ...]:
        if not isinstance(value, list | tuple) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in value
        ):
            raise self._error(key, "must be a list of numbers", f"give {rotary_dim // 2} numbers")
        if len(value) != rotary_dim // 2:
            raise self._error(
                key,
                f"has {len(value)} numbers but the rotary dimension {rotary_dim} has {rotary_dim // 2} pairs",
                f"give exactly {rotary_dim // 2} numbers",
            )
        factors = tuple(self._number(key, x) for x in value)
        if any(x <= 0 for x in factors):
            raise self._error(key, "has a non-positive factor", "every rescale factor must be positive")
        return factors

    def _check_values(self, rope_type: str, s: dict[str, Any], where: str) -> None:
        factor = s.get("factor")
        if factor is not None and factor < 1:
            raise self._error(
                f"{where}.factor",
                f"is {factor:g}, below 1 (that would shrink the context)",
                "use a factor >= 1 (the ratio of the new context to the original)",
            )
        if rope_type == "yarn":
            self._check_yarn(s, where)
        if rope_type == "llama3":
            if s["low_freq_factor"] <= 0:
                raise self._error(
                    f"{where}.low_freq_factor", f"must be positive, got {s['low_freq_factor']:g}", "use e.g. 1"
                )
            if s["high_freq_factor"] == s["low_freq_factor"]:
                self._note(
                    "llama3-no-smooth-band",
                    "info",
                    f"high_freq_factor equals low_freq_factor ({s['low_freq_factor']:g}): no blended band; pairs whose "
                    "wavelength exceeds original_max_position_embeddings / low_freq_factor are divided by factor, "
                    "the others kept",
                )
            elif s["high_freq_factor"] < s["low_freq_factor"]:
                raise self._error(
                    f"{where}.high_freq_factor",
                    f"high_freq_factor {s['high_freq_factor']:g} must exceed low_freq_factor {s['low_freq_factor']:g}",
                    "use e.g. low_freq_factor 1, high_freq_factor 4",
                )
        if rope_type == "longrope" and s.get("attention_factor") is not None and s["attention_factor"] <= 0:
            raise self._error(f"{where}.attention_factor", "must be positive", "remove it or set it > 0")
        if rope_type == "entropy_abf" and factor is not None:
            self._note(
                "eabf-factor-unused",
                "info",
                "Entropy-ABF does not use factor in its frequencies (the base change is in rope_theta)",
            )

    def _check_yarn(self, s: dict[str, Any], where: str) -> None:
        beta_fast, beta_slow = s.get("beta_fast") or 32.0, s.get("beta_slow") or 1.0  # transformers: `or` defaults
        if beta_slow < 0:
            raise self._error(f"{where}.beta_slow", f"must be positive, got {beta_slow:g}", "use e.g. beta_slow 1")
        if beta_fast <= beta_slow:
            raise self._error(
                f"{where}.beta_fast",
                f"beta_fast {beta_fast:g} must exceed beta_slow {beta_slow:g}",
                "YaRN keeps pairs with more than beta_fast rotations and interpolates those with fewer than "
                "beta_slow: use e.g. beta_fast 32, beta_slow 1",
            )
        if s.get("attention_factor") is not None and s["attention_factor"] <= 0:
            raise self._error(
                f"{where}.attention_factor",
                f"must be positive, got {s['attention_factor']:g} (it multiplies cos and sin)",
                "remove it or set it > 0",
            )
        if s.get("attention_factor") is not None and ("mscale" in s or "mscale_all_dim" in s):
            self._note(
                "yarn-attention-factor-wins",
                "info",
                "attention_factor is set, so mscale/mscale_all_dim do not change the cos/sin scale",
            )
        elif s.get("mscale") and not s.get("mscale_all_dim"):
            self._note(
                "yarn-mscale-ignored",
                "warning",
                f"mscale {s['mscale']:g} without mscale_all_dim: transformers then ignores mscale and uses "
                "0.1·ln(factor) + 1",
                "add mscale_all_dim (DeepSeek sets both), or remove mscale",
            )
        if s.get("mscale_all_dim"):
            self._note(
                "yarn-mscale-all-dim",
                "info",
                "mscale_all_dim is set: DeepSeek-style models also multiply the softmax scale by "
                "(0.1·mscale_all_dim·ln(factor)+1)², outside the rotary module",
            )

    def _original_context(self, rope_type: str, s: dict[str, Any], max_positions: int | None) -> int | None:
        c = self.config
        top_key = "seq_length" if rope_type == "qwen_dynamic" else "original_max_position_embeddings"
        top = self._positive_int(top_key, c.get(top_key))
        inner = s.get("original_max_position_embeddings")
        if top is not None and inner is not None and top != inner:
            self._note(
                "original-context-conflict",
                "warning",
                f"original_max_position_embeddings is {top} at top level but {inner} in the scaling dict; "
                "transformers v5 uses the top-level value",
                "keep one",
            )
        original = top if top is not None else inner
        if rope_type in _USES_ORIGINAL and original is None:
            if max_positions is None:
                raise self._error(
                    "original_max_position_embeddings",
                    f"is needed by rope type {rope_type!r}",
                    "add original_max_position_embeddings (the pretraining context) or max_position_embeddings",
                )
            self._note(
                "original-context-default",
                "warning",
                f"{rope_type}: no original_max_position_embeddings, so transformers uses max_position_embeddings "
                f"({max_positions}) as the pretraining context",
                "add original_max_position_embeddings",
            )
            original = max_positions
        if rope_type == "longrope" and original is not None and original < 2:
            raise self._error(
                "original_max_position_embeddings",
                f"is {original}: LongRoPE's attention factor √(1 + ln s / ln L_orig) needs L_orig ≥ 2",
                "set it to the pretraining context",
            )
        factor = s.get("factor")
        if rope_type in _USES_ORIGINAL and original and max_positions and original > max_positions:
            self._note(
                "original-above-max",
                "warning",
                f"original_max_position_embeddings {original} exceeds max_position_embeddings {max_positions}: "
                "the two look swapped",
                "original_max_position_embeddings is the pretraining context, max_position_embeddings the extended one",
            )
        elif rope_type == "yarn" and original and max_positions and factor:
            implied = max_positions / original
            if implied not in (1.0, factor):
                self._note(
                    "factor-mismatch",
                    "warning",
                    f"yarn factor {factor:g} differs from max_position_embeddings / original_max_position_embeddings"
                    f" = {max_positions}/{original} = {implied:g}; transformers uses the explicit factor",
                    "make factor equal the extension ratio, or correct max_position_embeddings",
                )
        if rope_type == "llama3" and original and max_positions and original == max_positions:
            self._note(
                "llama3-original-not-below-max",
                "warning",
                f"original_max_position_embeddings {original} is not below max_position_embeddings {max_positions}",
                "set original_max_position_embeddings to the pretraining context",
            )
        if rope_type == "longrope" and factor is None and original and max_positions:
            self._note(
                "longrope-implicit-factor",
                "info",
                f"longrope factor not set: transformers derives it as {max_positions}/{original}"
                f" = {max_positions / original:g}",
                "set factor explicitly",
            )
        return original if rope_type in _USES_ORIGINAL or top is not None or inner is not None else None


def rope_parameters(spec: RopeSpec) -> dict[str, Any]:
    """``spec``'s RoPE settings as a transformers v5 ``rope_parameters`` dict (lists for per-pair factors)."""
    params: dict[str, Any] = {"rope_type": spec.rope_type, "rope_theta": spec.base}
    params.update({k: list(v) if isinstance(v, tuple) else v for k, v in spec.scaling.items()})
    if spec.rope_type == "proportional":
        params.pop("partial_rotary_factor", None)
    if spec.original_max_position_embeddings is not None and spec.rope_type in _USES_ORIGINAL:
        params["original_max_position_embeddings"] = spec.original_max_position_embeddings
    return params


def with_rope_parameters(
    spec: RopeSpec, params: Mapping[str, Any], max_position_embeddings: int | None = None
) -> RopeSpec:
    """``spec``'s geometry (head and rotary dimension, layers) with other RoPE parameters, read and checked by
    the same reader as a config.json (``params`` in ``rope_parameters`` form)."""
    config: dict[str, Any] = {
        "head_dim": spec.head_dim,
        "num_hidden_layers": spec.num_layers,
        "max_position_embeddings": max_position_embeddings or spec.max_position_embeddings,
        "rope_parameters": dict(params),
    }
    if spec.rope_type != "proportional" and params.get("rope_type") != "proportional":
        config["partial_rotary_factor"] = spec.rotary_dim / spec.head_dim
    else:
        config["partial_rotary_factor"] = spec.scaling.get("partial_rotary_factor", 1.0)
    return replace(spec_from_config(config, spec.source), findings=spec.findings, lineage=spec.lineage)
