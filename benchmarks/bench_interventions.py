"""Forward time and peak memory of PINE and ACT against a plain SDPA forward measured in the same run.

The model is the decoder of a random Llama with SmolLM2-135M's layer shape (hidden 576, 9 heads, 3 KV heads, MLP
1536, head dim 64; ``--layers`` of them, no LM head); the prompt is an instruction of 16 tokens, documents of 64
tokens filling the rest up to a suffix of 32 (K = (L − 48) / 64 documents). ACT calibrates every head of every layer
(``act-all``, the worst case) and every head of one layer (``act-1``, the size of head set the search keeps).

Time: one process per length builds the model once and calls the methods in turn, ``--repeats`` rounds (a slow
spell of this noisy machine hits all of them), keeping each one's fastest. The same process times the attention
alone on random (1, 9, L, 64) tensors: SDPA causal (the baseline), SDPA without a mask (bidirectional: the two
L×L products PINE's attention needs, fused) and PINE's attention, which also needs the no-PE importance, a third
L×L product. Peak memory: one process per (method, length), the growth of the peak resident set over the
resident set after a warm-up pass.

Run:  python benchmarks/bench_interventions.py [--lengths 2048,4096] [--layers 4] [--threads 1]
Goal: PINE ≤ 2× the plain forward (the published implementation is 2–8×), ACT ≤ 1.3×, memory linear in L.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from measure import alternating_fastest, fastest_and_peak

METHODS = ("plain", "pine", "act-1", "act-all")
PREFIX, DOCUMENT, SUFFIX = 16, 64, 32


def build(length: int, layers: int, threads: int):  # type: ignore[no-untyped-def]
    """The model, the prompt and a function that runs one forward of a method on its first n tokens."""
    import contextlib

    import torch
    import transformers

    from ropescope.interventions.act import SinkCalibration, act
    from ropescope.interventions.pine import DocumentLayout, pine

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=1000, hidden_size=576, intermediate_size=1536, num_hidden_layers=layers, num_attention_heads=9,
        num_key_value_heads=3, max_position_embeddings=8192,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(config).eval()
    decoder = model.get_decoder()
    spans = [
        (PREFIX + DOCUMENT * k, PREFIX + DOCUMENT * (k + 1)) for k in range((length - PREFIX - SUFFIX) // DOCUMENT)
    ]
    ids = torch.randint(0, 1000, (1, length), generator=torch.Generator().manual_seed(0))
    heads = range(9)
    chosen = {"act-1": [(layers // 2, h) for h in heads], "act-all": [(n, h) for n in range(layers) for h in heads]}

    def forward(method: str, n: int = length) -> None:
        if method == "pine":
            context = pine(model, DocumentLayout.of([[(a, b) for a, b in spans if b <= n - SUFFIX]]))
        elif method.startswith("act"):
            context = act(model, SinkCalibration(tuple(chosen[method])))
        else:
            context = contextlib.nullcontext()
        with torch.no_grad(), context:
            decoder(input_ids=ids[:, :n], use_cache=False)

    return model, spans, forward


def time_worker(length: int, layers: int, threads: int, repeats: int) -> dict[str, float]:
    """The fastest forward of every method and of the three attentions alone, called in turn."""
    import torch

    from ropescope.config import load_spec
    from ropescope.interventions.pine import DocumentLayout, PineOptions, _PineState, pine_attention

    model, spans, forward = build(length, layers, threads)
    layout = DocumentLayout.of([spans])
    table = _PineState(layout, load_spec(model.config.to_dict()), PineOptions()).table(length, torch.device("cpu"))
    q, k, v = (torch.randn(1, 9, length, 64, generator=torch.Generator().manual_seed(n)) for n in range(3))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    runs = {method: (lambda m=method: forward(m)) for method in METHODS}
    runs |= {
        "attention: sdpa causal": lambda: sdpa(q, k, v, is_causal=True),
        "attention: sdpa bidirectional": lambda: sdpa(q, k, v),
        "attention: pine": lambda: pine_attention(q, k, v, layout, 0.125, table),
    }
    with torch.no_grad():
        return {**alternating_fastest(runs, repeats), "documents": len(spans)}


def memory_worker(method: str, length: int, layers: int, threads: int) -> dict[str, float]:
    _, _, forward = build(length, layers, threads)
    return fastest_and_peak(lambda: forward(method), lambda: forward(method, PREFIX + 2 * DOCUMENT + SUFFIX), 1)


def _run(arguments: list[str], args: argparse.Namespace) -> dict[str, float] | None:
    command = [sys.executable, __file__, *arguments, "--layers", str(args.layers), "--threads", str(args.threads),
               "--repeats", str(args.repeats)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        print(f"{' '.join(arguments)} failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="2048,4096")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--time-worker", type=int, metavar="LENGTH")
    parser.add_argument("--memory-worker", nargs=2, metavar=("METHOD", "LENGTH"))
    args = parser.parse_args()
    if args.time_worker:
        print(json.dumps(time_worker(args.time_worker, args.layers, args.threads, args.repeats)))
        return
    if args.memory_worker:
        method, length = args.memory_worker
        print(json.dumps(memory_worker(method, int(length), args.layers, args.threads)))
        return
    print(
        f"random Llama, SmolLM2-135M layer shape, {args.layers} layers; {args.threads} thread(s); time = fastest of "
        f"{args.repeats}, called in turn; baseline = plain SDPA forward (attention: SDPA causal) in the same run"
    )
    print(f"{'L':>6} {'K':>4} | {'method':>29} | {'seconds':>8} {'× base':>7} | {'peak MiB':>9} {'× plain':>8}")
    for length in (int(n) for n in args.lengths.split(",")):
        times = _run(["--time-worker", str(length)], args)
        if times is None:
            continue
        peaks = {method: _run(["--memory-worker", method, str(length)], args) for method in METHODS}
        for name, seconds in times.items():
            if name == "documents":
                continue
            base = times["plain"] if name in METHODS else times["attention: sdpa causal"]
            memory = ""
            if name in METHODS and peaks[name] and peaks["plain"]:
                peak, plain = peaks[name]["peak_bytes"], peaks["plain"]["peak_bytes"]
                memory = f"{peak / 2**20:9.1f} {peak / plain if plain else float('nan'):7.2f}x"
            print(
                f"{length:>6} {times['documents']:>4} | {name:>29} | {seconds:8.3f} {seconds / base:6.2f}x | {memory}"
            )


if __name__ == "__main__":
    main()
