"""Load a causal language model for probing, offline: a transformers folder or a GGUF file, or wrap a
reference decoder (:class:`ropescope.model.Decoder`) already in memory.

A folder must hold ``config.json`` (and tokenizer files); a ``.gguf`` file is loaded by transformers'
``gguf_file=`` path, which dequantises the weights to float32. Nothing is downloaded: transformers runs with
``local_files_only=True``. The model's own rotary settings come from its config through
:func:`ropescope.config.load_spec`; a reference decoder has no RopeSpec (its encoding is described instead), so it
cannot be patched, and without a tokenizer it cannot run the passkey test.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ropescope.config import RopeSpec, load_spec
from ropescope.errors import NotRopeError, RopescopeInputError

_MODEL_SUFFIXES = (".json", ".safetensors", ".bin", ".gguf", ".model", ".txt")


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model in eval mode, its tokenizer, where it came from and its rotary spec."""

    model: Any
    tokenizer: Any  # None for a reference decoder given without one
    source: str
    kind: str  # "transformers", "gguf" or "decoder"
    spec: RopeSpec | None  # None for a reference decoder and for models without RoPE

    def fingerprint(self) -> str:
        """SHA-256 of the model: its weight and config files (a GGUF file, or a folder's config, weights and
        tokenizer files), or for a model in memory its parameters."""
        import hashlib

        digest = hashlib.sha256()
        path = Path(self.source)
        if self.kind == "decoder":
            for name, tensor in self.model.state_dict().items():
                digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
            return digest.hexdigest()
        files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix in _MODEL_SUFFIXES)
        for file in files:
            digest.update(file.name.encode())
            with file.open("rb") as stream:
                while chunk := stream.read(1 << 22):
                    digest.update(chunk)
        return digest.hexdigest()

    @property
    def num_layers(self) -> int:
        return self.model.config.n_layers if self.kind == "decoder" else self.model.config.num_hidden_layers

    @property
    def training_context(self) -> int | None:
        return None if self.spec is None else self.spec.training_context

    def describe(self) -> dict[str, Any]:
        config = self.model.config
        if self.kind == "decoder":
            return {
                "source": self.source,
                "kind": self.kind,
                "encoding": config.encoding,
                "encoding_options": dict(config.encoding_options),
                "num_layers": config.n_layers,
                "num_heads": config.n_heads,
                "num_kv_heads": config.n_heads,
                "parameters": sum(p.numel() for p in self.model.parameters()),
            }
        from ropescope.config import positional_scheme

        return {
            "source": self.source,
            "kind": self.kind,
            "model_type": config.model_type,
            "encoding": positional_scheme(config.to_dict()).name,
            "num_layers": config.num_hidden_layers,
            "num_heads": config.num_attention_heads,
            "num_kv_heads": getattr(config, "num_key_value_heads", config.num_attention_heads),
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def _tokenizer_folder(path: Path, given: str | Path | None) -> Path:
    """Where the tokenizer is read from: ``given`` (a folder), else the model's folder; checked here so that a
    missing tokenizer is one line naming the files looked for, not transformers' multi-line message."""
    folder = Path(given).expanduser() if given is not None else (path if path.is_dir() else None)
    what = "--tokenizer" if given is not None else str(path)
    if folder is None:
        return path.parent  # a GGUF file carries its tokenizer
    if not folder.is_dir():
        raise RopescopeInputError(what, f"{folder} is not a folder", "give the folder holding tokenizer.json")
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise RopescopeInputError(
            what,
            f"{folder} has no tokenizer ({', '.join(_TOKENIZER_FILES)} all missing)",
            "pass --tokenizer FOLDER with the model's tokenizer files",
        )
    return folder


def load_model(source: str | Path, tokenizer: str | Path | None = None) -> LoadedModel:
    """Load ``source`` (a model folder or a ``.gguf`` file) in float32 with SDPA attention; ``tokenizer`` is a
    folder with its tokenizer when the model's own has none."""
    path = Path(source).expanduser()
    if not path.exists():
        raise RopescopeInputError(str(source), "no such file or folder", "give a local model folder or .gguf file")
    if path.is_dir() and not (path / "config.json").is_file():
        raise RopescopeInputError(str(source), "folder has no config.json", "give a transformers model folder")
    if path.is_file() and path.suffix != ".gguf":
        raise RopescopeInputError(str(source), "is not a .gguf file", "give a model folder or a .gguf file")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    folder, extra = (path, {}) if path.is_dir() else (path.parent, {"gguf_file": path.name})
    tokenizer_folder = _tokenizer_folder(path, tokenizer)
    tokenizer_extra = extra if tokenizer is None else {}
    bars = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()  # the caller shows its own progress; keep stderr for errors
    try:
        text_tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder, local_files_only=True, **tokenizer_extra)
        with contextlib.redirect_stderr(io.StringIO()):  # the GGUF reader's own tqdm bar ignores the switch above
            model = AutoModelForCausalLM.from_pretrained(
                folder, local_files_only=True, dtype=torch.float32, attn_implementation="sdpa", **extra
            )
    except (OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RopescopeInputError(str(source), f"transformers cannot load it ({first})", "check the files") from error
    finally:
        if bars:
            logging.enable_progress_bar()
    model.eval()
    try:
        spec: RopeSpec | None = load_spec(model.config.to_dict())
    except NotRopeError:  # GPT-2, BLOOM, ...: probed like the reference decoder, without a spectrum
        spec = None
    return LoadedModel(model, text_tokenizer, str(path), "gguf" if extra else "transformers", spec)


def wrap_decoder(decoder: Any, tokenizer: Any = None) -> LoadedModel:
    """A :class:`ropescope.model.Decoder` (put in eval mode) ready for :class:`ropescope.probes.run.ProbeRun`;
    ``tokenizer`` (a transformers tokenizer for its vocabulary) is needed only for the passkey test."""
    from ropescope.model import Decoder

    if not isinstance(decoder, Decoder):
        raise RopescopeInputError(
            "model", f"is a {type(decoder).__name__}", "pass a ropescope.model.Decoder, or load_model() a path"
        )
    decoder.eval()
    return LoadedModel(decoder, tokenizer, "ropescope.model.Decoder", "decoder", None)
