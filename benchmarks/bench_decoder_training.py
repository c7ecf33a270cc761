"""Training throughput of the reference decoder against a same-size transformers ``LlamaForCausalLM`` (CPU).

Both models have the same sizes (RoPE base 10000, SwiGLU, RMSNorm, tied embeddings, SDPA attention, equal
parameter counts, checked). One step is forward, cross-entropy, backward and AdamW on a random batch. The two
are timed one step each, alternately, ``steps`` times; tokens/s come from the fastest step of each (the one least
disturbed by other load on a shared machine; medians are printed too) and the ratio is ropescope over
transformers (> 1: ropescope faster). Run: ``python benchmarks/bench_decoder_training.py``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ropescope.model import Decoder, DecoderConfig

# name, DecoderConfig sizes, batch, sequence length
SETTINGS = [
    ("toy (2 layers, d 128)", DecoderConfig(vocab_size=1024, d_model=128, n_layers=2, n_heads=4), 8, 128),
    ("small (6 layers, d 384)", DecoderConfig(vocab_size=8192, d_model=384, n_layers=6, n_heads=6), 4, 256),
    ("medium (8 layers, d 512)", DecoderConfig(vocab_size=32000, d_model=512, n_layers=8, n_heads=8), 1, 256),
]


def llama_of(config: DecoderConfig) -> LlamaForCausalLM:
    return LlamaForCausalLM(LlamaConfig(**config.llama_config_kwargs(), attn_implementation="sdpa"))


def training_step(model: torch.nn.Module, hf: bool, batch: int, length: int, vocab: int) -> Callable[[], None]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, vocab, (batch, length + 1), generator=torch.Generator().manual_seed(0))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        logits = model(ids[:, :-1]).logits if hf else model(ids[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1))
        loss.backward()
        optimizer.step()

    return step


def seconds(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main(steps: int = 8) -> None:
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU")
    header = f"{'model':<26} {'params':>10} {'ropescope tok/s':>16} {'transformers tok/s':>19} {'ratio':>7}"
    print(header + f" {'ratio of medians':>17}")
    worst = float("inf")
    for name, config, batch, length in SETTINGS:
        ours, theirs = Decoder(config).train(), llama_of(config).train()
        count = sum(p.numel() for p in ours.parameters())
        assert count == sum(p.numel() for p in theirs.parameters()), "the two models differ in size"
        mine = training_step(ours, False, batch, length, config.vocab_size)
        baseline = training_step(theirs, True, batch, length, config.vocab_size)
        mine(), baseline()  # warm up allocators and kernels
        t_mine, t_theirs = [], []
        for _ in range(steps):
            t_mine.append(seconds(mine))
            t_theirs.append(seconds(baseline))
        tokens = batch * length
        rate_mine, rate_theirs = tokens / min(t_mine), tokens / min(t_theirs)
        ratio, median_ratio = rate_mine / rate_theirs, statistics.median(t_theirs) / statistics.median(t_mine)
        worst = min(worst, ratio)
        row = f"{name:<26} {count / 1e6:>9.2f}M {rate_mine:>16.0f} {rate_theirs:>19.0f} {ratio:>7.2f}"
        print(row + f" {median_ratio:>17.2f}")
    verdict = "within" if worst >= 1 / 1.10 else "OVER"
    print(f"worst throughput ratio ropescope/transformers: {worst:.2f} ({verdict} the 10% budget)")


if __name__ == "__main__":
    main()
