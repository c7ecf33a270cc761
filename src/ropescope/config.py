"""Normalise any model config into one frozen :class:`RopeSpec`.

A model's positional settings arrive in many spellings. This module reads them all and records every deviation
as a :class:`Finding` instead of silently fixing it:

* transformers v4: top-level ``rope_theta`` plus a ``rope_scaling`` dict keyed by ``type`` or ``rope_type``;
* transformers v5: ``rope_parameters`` (flat, or nested per layer type such as Gemma 3's
  ``sliding_attention``/``full_attention``), with ``rope_theta`` inside;
* the rotary dimension d: ``head_dim`` when present, else ``hidden_size // num_attention_heads``, times
  ``partial_rotary_factor`` (GPT-NeoX ``rotary_pct``, StableLM ``rope_pct``); DeepSeek MLA rotates only
  ``qk_rope_head_dim``; GLM rotates half of each head and sets the base to ``10000 · rope_ratio``;
* Gemma 2/3 (v4 form): ``rope_local_base_freq`` is the base of the sliding-window layers.

The canonical rope types are those of transformers' ``ROPE_INIT_FUNCTIONS`` plus ``default`` and two that
transformers lacks: ``ntk`` (static NTK-aware base scaling, bloc97 2023) and ``entropy_abf`` (Zhang et al. 2024,
"Extending LLMs' Context Window with 100 Samples", arXiv 2401.07004). Legacy names map to them: ``su`` →
``longrope``, ``eabf`` → ``entropy_abf``, ``mrope`` → ``default`` (the section split is not modelled).
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
from ropescope.errors import RopescopeInputError
from ropescope.lineage import Lineage

DEFAULT_BASE = 10_000.0

# Keys each rope type reads, beyond rope_type/type/rope_theta/partial_rotary_factor (transformers v5 validators,
# plus our two extra types). Anything else in the scaling dict is ignored by transformers: a finding.
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
}
ROPE_TYPES = tuple(REQUIRED_KEYS)
_ALIASES = {"su": "longrope", "eabf": "entropy_abf", "mrope": "default", "static_ntk": "ntk"}
_COMMON_KEYS = frozenset({"rope_type", "type", "rope_theta", "partial_rotary_factor"})
_USES_ORIGINAL = frozenset({"yarn", "longrope", "llama3", "entropy_abf"})


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

    ``scaling`` holds the method's parameters (``factor``, ``beta_fast``, ``short_factor`` as a tuple, ...).
    ``layer_specs`` maps each layer type to its spec when a model has several (this spec is then the one of
    the full-attention layers); it is empty otherwise.
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
    """Build a :class:`RopeSpec` from a ``config.json`` path, a config dict, or an embedded catalog id."""
    config, name, catalog_lineage = load_config(source)
    spec = spec_from_config(config, name)
    return spec if spec.lineage is not None or catalog_lineage is None else replace(spec, lineage=catalog_lineage)


def load_config(source: str | Path | Mapping[str, Any]) -> tuple[Mapping[str, Any], str, Lineage | None]:
    """The raw config behind ``source`` (a path, a model folder, a dict or a catalog id), its name, and the
    catalog's lineage when it is a catalog id."""
    if isinstance(source, Mapping):
        return source, "<dict>", None
    path = Path(source)
    if path.is_dir():
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
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RopescopeInputError(
            str(path),
            f"invalid JSON at line {error.lineno} column {error.colno} ({error.msg})",
            "fix the file so it parses as JSON (a model's config.json)",
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise RopescopeInputError(str(path), f"cannot be read ({error})", "check the path and permissions") from None
    if not isinstance(data, dict):
        raise RopescopeInputError(str(path), "is not a JSON object", "give a model's config.json")
    return data


def spec_from_config(config: Mapping[str, Any], source: str) -> RopeSpec:
    """Normalise one config mapping (see the module docstring for what is understood)."""
    reader = _ConfigReader(config, source)
    return reader.spec()


class _ConfigReader:
    """Reads one config; collects findings as it goes."""

    def __init__(self, config: Mapping[str, Any], source: str) -> None:
        text_config = config.get("text_config")
        self.findings: list[Finding] = []
        if isinstance(text_config, Mapping) and not _has_rope_keys(config):
            config = {**config, **text_config}
            self._note("text-config", "info", "positional settings read from the nested text_config")
        self.config = config
        self.source = source

    # --- helpers -------------------------------------------------------------------------------------
    def _note(self, code: str, severity: str, message: str, fix: str = "") -> None:
        self.findings.append(Finding(code, severity, message, fix))

    def _error(self, key: str, problem: str, fix: str) -> RopescopeInputError:
        return RopescopeInputError(f"{self.source}: {key}", problem, fix)

    def _positive_int(self, key: str, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value <= 0:
            raise self._error(key, f"must be a positive integer, got {value!r}", f"set {key} to a positive integer")
        return int(value)

    def _number(self, key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self._error(key, f"must be a number, got {value!r}", f"set {key} to a number")
        return float(value)

    # --- the pieces ----------------------------------------------------------------------------------
    def spec(self) -> RopeSpec:
        c = self.config
        head_dim = self._head_dim()
        shared = {
            "source": self.source,
            "head_dim": head_dim,
            "num_layers": self._positive_int(
                "num_hidden_layers", c.get("num_hidden_layers", c.get("n_layer", c.get("num_layers")))
            ),
            "max_position_embeddings": self._positive_int(
                "max_position_embeddings",
                c.get("max_position_embeddings", c.get("seq_length", c.get("n_positions"))),
            ),
            "sliding_window": self._sliding_window(),
            "dtype": c.get("torch_dtype", c.get("dtype")),
            "model_type": c.get("model_type"),
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

    def _head_dim(self) -> int:
        c = self.config
        if c.get("qk_rope_head_dim") is not None:
            self._note(
                "mla",
                "info",
                f"multi-head latent attention: RoPE rotates qk_rope_head_dim={c['qk_rope_head_dim']} of each "
                f"q/k head (qk_nope_head_dim={c.get('qk_nope_head_dim')} are not rotated)",
            )
            return self._positive_int("qk_rope_head_dim", c["qk_rope_head_dim"]) or 0
        if c.get("head_dim") is not None:
            return self._positive_int("head_dim", c["head_dim"]) or 0
        if c.get("kv_channels") is not None:
            return self._positive_int("kv_channels", c["kv_channels"]) or 0
        hidden = c.get("hidden_size", c.get("n_embd", c.get("d_model")))
        heads = c.get("num_attention_heads", c.get("n_head"))
        if hidden is None or heads is None:
            raise self._error(
                "head_dim",
                "cannot be determined (no head_dim, and no hidden_size with num_attention_heads)",
                "add head_dim (or hidden_size and num_attention_heads) to the config",
            )
        hidden, heads = self._positive_int("hidden_size", hidden), self._positive_int("num_attention_heads", heads)
        assert hidden is not None and heads is not None
        if hidden % heads:
            self._note(
                "head-dim-floor",
                "warning",
                f"hidden_size {hidden} is not divisible by num_attention_heads {heads}; head_dim taken as "
                f"{hidden // heads} (transformers floors it)",
                "set head_dim explicitly",
            )
        return hidden // heads

    def _sliding_window(self) -> int | None:
        c = self.config
        window = c.get("sliding_window")
        if window is None:
            return None
        if c.get("use_sliding_window") is False:
            self._note(
                "inert-sliding-window",
                "info",
                f"sliding_window={window} is set but use_sliding_window is false, so it has no effect",
            )
            return None
        return self._positive_int("sliding_window", window)

    def _top_level_base(self) -> float | None:
        c = self.config
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
        if c.get("rope_ratio") is not None or str(c.get("model_type", "")).lower() in {"chatglm", "glm"}:
            self._note("glm-half-rotary", "info", "GLM rotates half of each head (partial_rotary_factor 0.5)")
            return 0.5
        return 1.0

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
        return dict(scaling or parameters or {})

    def _per_layer_parameters(self) -> dict[str, dict[str, Any]] | None:
        c = self.config
        parameters = c.get("rope_parameters")
        if isinstance(parameters, Mapping) and parameters and all(isinstance(v, Mapping) for v in parameters.values()):
            return {str(name): dict(p) for name, p in parameters.items()}
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
        lowered = name.lower()
        if lowered in _ALIASES:
            canonical = _ALIASES[lowered]
            self._note(
                "rope-type-alias",
                "warning" if lowered in {"su", "mrope"} else "info",
                f"{where} rope type {name!r} is read as {canonical!r}"
                + (" (M-RoPE sections are not modelled)" if lowered == "mrope" else "")
                + (" (transformers v5 has no 'su'; it was renamed 'longrope')" if lowered == "su" else ""),
                f"write rope_type {canonical!r}" if lowered == "su" else "",
            )
            return canonical
        if lowered not in REQUIRED_KEYS:
            raise self._error(
                f"{where}.rope_type",
                f"unknown rope type {name!r}",
                f"use one of: {', '.join(ROPE_TYPES)}",
            )
        return lowered

    def _build(self, params: dict[str, Any], shared: dict[str, Any], layer_type: str | None) -> RopeSpec:
        where = (
            f"rope_parameters.{layer_type}"
            if layer_type
            else ("rope_scaling" if self.config.get("rope_scaling") else "rope_parameters")
        )
        rope_type = self._rope_type(params, where)
        base = params.get("rope_theta")
        base = self._number(f"{where}.rope_theta", base) if base is not None else self._top_level_base()
        if base is None:
            self._note(
                "default-base",
                "info",
                "no rope_theta in the config: the transformers default 10000 is used",
                "write rope_theta explicitly",
            )
            base = DEFAULT_BASE
        if base <= 0:
            raise self._error("rope_theta", f"must be positive, got {base:g}", "set rope_theta to a positive number")
        head_dim = shared["head_dim"]
        partial = self._partial_rotary_factor(params)
        rotary_dim = head_dim if rope_type == "proportional" else int(head_dim * partial)
        if rotary_dim % 2 or rotary_dim == 0:
            raise self._error(
                "rotary dimension",
                f"is {rotary_dim} (head_dim {head_dim} × partial_rotary_factor {partial:g}); "
                "RoPE rotates pairs, so it must be even and positive",
                "fix head_dim or partial_rotary_factor so their product is an even integer",
            )
        scaling = self._scaling(rope_type, params, where, rotary_dim, shared["max_position_embeddings"])
        original = self._original_context(rope_type, scaling, shared["max_position_embeddings"])
        if rope_type == "proportional":
            scaling["partial_rotary_factor"] = partial
        scaling.pop("original_max_position_embeddings", None)
        return RopeSpec(
            rope_type=rope_type,
            base=base,
            rotary_dim=rotary_dim,
            original_max_position_embeddings=original,
            layer_type=layer_type,
            scaling=MappingProxyType(scaling),
            **shared,
        )

    def _scaling(
        self, rope_type: str, params: dict[str, Any], where: str, rotary_dim: int, max_positions: int | None
    ) -> dict[str, Any]:
        known = REQUIRED_KEYS[rope_type] | OPTIONAL_KEYS[rope_type]
        ignored = sorted(set(params) - known - _COMMON_KEYS)
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
        self._check_values(rope_type, scaling, where, max_positions)
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
        if any(x <= 0 for x in value):
            raise self._error(key, "has a non-positive factor", "every rescale factor must be positive")
        return tuple(float(x) for x in value)

    def _check_values(self, rope_type: str, s: dict[str, Any], where: str, max_positions: int | None) -> None:
        factor = s.get("factor")
        if factor is not None and factor < 1:
            raise self._error(
                f"{where}.factor",
                f"is {factor:g}, below 1 (that would shrink the context)",
                "use a factor >= 1 (the ratio of the new context to the original)",
            )
        if rope_type == "yarn":
            beta_fast, beta_slow = s.get("beta_fast", 32.0), s.get("beta_slow", 1.0)
            if beta_fast <= beta_slow:
                raise self._error(
                    f"{where}.beta_fast",
                    f"beta_fast {beta_fast:g} must exceed beta_slow {beta_slow:g}",
                    "YaRN keeps pairs with more than beta_fast rotations and interpolates those with fewer than "
                    "beta_slow: use e.g. beta_fast 32, beta_slow 1",
                )
            if s.get("attention_factor") is not None and s["attention_factor"] <= 0:
                raise self._error(f"{where}.attention_factor", "must be positive", "remove it or set it > 0")
            if s.get("attention_factor") is not None and ("mscale" in s or "mscale_all_dim" in s):
                self._note(
                    "yarn-attention-factor-wins",
                    "info",
                    "attention_factor is set, so mscale/mscale_all_dim do not change the cos/sin scale",
                )
            if s.get("mscale_all_dim"):
                self._note(
                    "yarn-mscale-all-dim",
                    "info",
                    "mscale_all_dim is set: DeepSeek-style models also multiply the softmax scale by "
                    "(0.1·mscale_all_dim·ln(factor)+1)², outside the rotary module",
                )
        if rope_type == "llama3" and s["high_freq_factor"] <= s["low_freq_factor"]:
            raise self._error(
                f"{where}.high_freq_factor",
                f"high_freq_factor {s['high_freq_factor']:g} must exceed low_freq_factor {s['low_freq_factor']:g}",
                "use e.g. low_freq_factor 1, high_freq_factor 4",
            )
        if rope_type == "entropy_abf" and factor is not None:
            self._note(
                "eabf-factor-unused",
                "info",
                "Entropy-ABF does not use factor in its frequencies (the base change is in rope_theta)",
            )

    def _original_context(self, rope_type: str, s: dict[str, Any], max_positions: int | None) -> int | None:
        top = self._positive_int(
            "original_max_position_embeddings", self.config.get("original_max_position_embeddings")
        )
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
        factor = s.get("factor")
        if rope_type == "yarn" and original and max_positions and factor:
            implied = max_positions / original
            if implied not in (1.0, factor):
                self._note(
                    "factor-mismatch",
                    "warning",
                    f"yarn factor {factor:g} differs from max_position_embeddings / original_max_position_embeddings"
                    f" = {max_positions}/{original} = {implied:g}; transformers uses the explicit factor",
                    "make factor equal the extension ratio, or correct max_position_embeddings",
                )
        if rope_type == "llama3" and original and max_positions and original >= max_positions:
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


def _has_rope_keys(config: Mapping[str, Any]) -> bool:
    return any(k in config for k in ("rope_theta", "rope_scaling", "rope_parameters", "head_dim", "hidden_size"))


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
