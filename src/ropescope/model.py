"""A small pre-norm decoder-only language model whose positional encoding is chosen by name.

Each block computes ``x + Attn(RMSNorm(x))`` then ``x + MLP(RMSNorm(x))`` (pre-norm, Xiong et al. 2020,
arXiv 2002.04745; RMSNorm, Zhang & Sennrich 2019, arXiv 1910.07467), with a SwiGLU MLP
(``W_down(silu(x W_gate) ⊙ x W_up)``, Shazeer 2020, arXiv 2002.05202) or a GELU one, and optionally tied input
and output embeddings. Attention is ``softmax(q kᵀ/√d_head + bias + causal) v`` through PyTorch's
``scaled_dot_product_attention``; the encoding (see :mod:`ropescope.encodings`) adds to the token embeddings,
rotates q and k, or supplies ``bias``. The causal mask follows token order (a key is visible when it comes no
later in the sequence), independently of the position labels, so positions can be shifted, repeated or 2-D.

Each layer computes that softmax through its ``attend`` attribute, an :data:`AttentionFunction`
(:func:`sdpa_attention` by default). ``with decoder.attention_function(f):`` routes every layer through ``f``
and puts the previous functions back on exit, even after an exception; the attention probes use it.

The KV cache is a list with one :class:`LayerCache` per layer: keys after rotation, values, the key positions
(for bias encodings) and the encoding's carry (CARoPE's running phase). Positions default to
``cache length + arange(T)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from ropescope.encodings import accepted_options, build, names
from ropescope.encodings.base import PositionalEncoding
from ropescope.encodings.nope import NoPositionalEncoding
from ropescope.errors import RopescopeInputError


@dataclass(frozen=True)
class DecoderConfig:
    """Sizes of the decoder and its positional encoding (``encoding_options`` go to ``encodings.build``)."""

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    encoding: str = "rope"
    encoding_options: Mapping[str, Any] = field(default_factory=dict)
    mlp: str = "swiglu"
    mlp_hidden: int | None = None
    tie_embeddings: bool = True
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads"):
            if getattr(self, name) <= 0:
                raise RopescopeInputError(f"DecoderConfig.{name}", f"is {getattr(self, name)}", "use a positive size")
        if self.d_model % self.n_heads:
            raise RopescopeInputError(
                "DecoderConfig.d_model",
                f"{self.d_model} is not divisible by n_heads {self.n_heads}",
                "choose d_model as a multiple of n_heads",
            )
        if self.mlp not in ("swiglu", "gelu"):
            raise RopescopeInputError("DecoderConfig.mlp", f"is {self.mlp!r}", "use 'swiglu' or 'gelu'")
        if self.encoding not in names():
            raise RopescopeInputError("DecoderConfig.encoding", f"unknown {self.encoding!r}", f"use one of {names()}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def hidden(self) -> int:
        if self.mlp_hidden is not None:
            return self.mlp_hidden
        return 4 * self.d_model if self.mlp == "gelu" else 8 * ((8 * self.d_model // 3 + 7) // 8)

    def llama_config_kwargs(self) -> dict[str, Any]:
        """Arguments of the transformers ``LlamaConfig`` with this architecture (default RoPE of base 10000, SwiGLU,
        RMSNorm, tied embeddings); tests/test_model.py checks the two give equal logits with copied weights."""
        if (self.encoding, dict(self.encoding_options), self.mlp, self.tie_embeddings) != ("rope", {}, "swiglu", True):
            raise RopescopeInputError(
                "DecoderConfig", "has no LlamaForCausalLM twin", "use encoding='rope' without options, swiglu, tied"
            )
        return {
            "vocab_size": self.vocab_size,
            "hidden_size": self.d_model,
            "intermediate_size": self.hidden,
            "num_hidden_layers": self.n_layers,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": self.n_heads,
            "rms_norm_eps": self.norm_eps,
            "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10_000.0},
        }


class LayerCache(NamedTuple):
    keys: torch.Tensor
    values: torch.Tensor
    positions: torch.Tensor | None
    carry: Any


def build_encoding(config: DecoderConfig) -> PositionalEncoding:
    """The configured encoding, given the model sizes its constructor takes (unless the options set them)."""
    sizes = {"d_model": config.d_model, "num_heads": config.n_heads, "head_dim": config.head_dim}
    wanted = {k: v for k, v in sizes.items() if k in accepted_options(config.encoding)}
    return build(config.encoding, **{**wanted, **config.encoding_options})


AttentionFunction = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, bool], torch.Tensor]
"""``f(layer, q, k, v, mask, causal)`` → ``softmax(q kᵀ/√d_head + mask) v`` for q (B, H, T, D), k and v (B, H, K, D).

``mask`` is None (every key visible, or the causal triangle when ``causal``), a (T, K) bool tensor (True where a
query may attend) or an additive float tensor (B, H, T, K) holding the encoding's bias and −inf at hidden keys."""


def sdpa_attention(
    layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, causal: bool
) -> torch.Tensor:
    """The default :data:`AttentionFunction`: PyTorch's ``scaled_dot_product_attention`` (``layer`` unused)."""
    del layer
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)


class Attention(nn.Module):
    def __init__(self, config: DecoderConfig, encoding: PositionalEncoding, layer: int) -> None:
        super().__init__()
        self.heads, self.encoding, self.layer = config.n_heads, encoding, layer
        self.attend: AttentionFunction = sdpa_attention
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.out = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(
        self, x: torch.Tensor, positions: torch.Tensor, past: LayerCache | None
    ) -> tuple[torch.Tensor, LayerCache]:
        batch, length, _ = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        encoding, carry = self.encoding, None if past is None else past.carry
        if encoding.kind == "rotary":
            q, k, carry = encoding.rotate(q, k, positions, x if encoding.needs_hidden else None, carry)
        key_positions = positions if encoding.kind == "bias" else None
        if past is not None:
            k, v = torch.cat((past.keys, k), dim=2), torch.cat((past.values, v), dim=2)
            if key_positions is not None:
                key_positions = torch.cat((past.positions, positions), dim=-1)
        mask, causal = None, past is None and length > 1
        if encoding.kind == "bias" or past is not None:
            visible = torch.ones(length, k.shape[2], dtype=torch.bool, device=x.device).tril(k.shape[2] - length)
            mask, causal = visible, False
            if encoding.kind == "bias":
                bias = encoding.attention_bias(q, positions, key_positions)
                mask = bias.to(q.dtype).masked_fill(~visible, float("-inf"))
        y = self.attend(self.layer, q, k, v, mask, causal)
        return self.out(y.transpose(1, 2).reshape(batch, length, -1)), LayerCache(k, v, key_positions, carry)


class MLP(nn.Module):
    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.gated = config.mlp == "swiglu"
        self.up = nn.Linear(config.d_model, (2 if self.gated else 1) * config.hidden, bias=False)
        self.down = nn.Linear(config.hidden, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            gate, up = self.up(x).chunk(2, dim=-1)
            return self.down(F.silu(gate) * up)
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    def __init__(self, config: DecoderConfig, encoding: PositionalEncoding, layer: int) -> None:
        super().__init__()
        self.attention_norm = nn.RMSNorm(config.d_model, eps=config.norm_eps)
        self.attention = Attention(config, encoding, layer)
        self.mlp_norm = nn.RMSNorm(config.d_model, eps=config.norm_eps)
        self.mlp = MLP(config)

    def forward(
        self, x: torch.Tensor, positions: torch.Tensor, past: LayerCache | None
    ) -> tuple[torch.Tensor, LayerCache]:
        attended, cache = self.attention(self.attention_norm(x), positions, past)
        x = x + attended
        return x + self.mlp(self.mlp_norm(x)), cache


class Decoder(nn.Module):
    """The reference decoder: ``forward(tokens, positions=None, past=None, use_cache=False)`` → logits."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        first = build_encoding(config)
        self.absolute = first if first.kind == "absolute" else None
        if first.kind in ("rotary", "bias"):  # each layer owns its encoding (and its parameters)
            per_layer = [first, *(build_encoding(config) for _ in range(config.n_layers - 1))]
        else:
            per_layer = [NoPositionalEncoding()] * config.n_layers
        self.blocks = nn.ModuleList(Block(config, encoding, layer) for layer, encoding in enumerate(per_layer))
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.norm = nn.RMSNorm(config.d_model, eps=config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        own = [self.embed, self.lm_head]
        own += [m for b in self.blocks for m in (b.attention.qkv, b.attention.out, b.mlp.up, b.mlp.down)]
        for module in own:  # the encodings initialise their own parameters
            nn.init.normal_(module.weight, std=0.02)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed.weight

    @property
    def encoding(self) -> PositionalEncoding:
        """The configured encoding (the first layer's, for per-layer kinds)."""
        return self.absolute or self.blocks[0].attention.encoding

    @contextlib.contextmanager
    def attention_function(self, attend: AttentionFunction) -> Iterator[None]:
        """Compute every layer's attention with ``attend`` inside the block; the previous functions come back on
        exit, even after an exception."""
        layers = [block.attention for block in self.blocks]
        previous = [layer.attend for layer in layers]
        try:
            for layer in layers:
                layer.attend = attend
            yield
        finally:
            for layer, function in zip(layers, previous, strict=True):
                layer.attend = function

    def final_hidden_states(self, tokens: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """The normalised hidden states the LM head reads (B, T, d_model), without a cache."""
        return self.norm(self._run(tokens, positions, None)[0])

    def forward(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor | None = None,
        past: list[LayerCache] | None = None,
        use_cache: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[LayerCache]]:
        x, cache = self._run(tokens, positions, past)
        logits = self.lm_head(self.norm(x))
        return (logits, cache) if use_cache else logits

    def _run(
        self, tokens: torch.Tensor, positions: torch.Tensor | None, past: list[LayerCache] | None
    ) -> tuple[torch.Tensor, list[LayerCache]]:
        if tokens.dim() != 2:
            raise RopescopeInputError("tokens", f"have shape {tuple(tokens.shape)}", "pass token ids as [batch, T]")
        if past is not None and len(past) != len(self.blocks):
            raise RopescopeInputError(
                "past", f"has {len(past)} layers, not {len(self.blocks)}", "pass the cache returned by this model"
            )
        start = 0 if past is None else past[0].keys.shape[2]
        if positions is None:
            positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        x = self.embed(tokens)
        if self.absolute is not None:
            x = x + self.absolute.embed(positions).to(x.dtype)
        cache = []
        for i, block in enumerate(self.blocks):
            x, layer_cache = block(x, positions, None if past is None else past[i])
            cache.append(layer_cache)
        return x, cache
