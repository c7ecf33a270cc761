"""Forward time and peak memory of PINE and ACT against a plain SDPA forward measured in the same run.

The model is the decoder of a random Llama with SmolLM2-135M's layer shape (hidden 576, 9 heads, 3 KV heads, MLP
1536, head dim 64; ``--layers`` of them, no LM head); the prompt is an instruction of 16 tokens, documents of 64
tokens filling the rest up to a suffix of 32 (K = (L − 48) / 64 documents). ACT calibrates every head of every layer
(``act-all``, the worst case) and every head of one layer (``act-1``, the size of head set the search keeps). Each
(method, length) runs in a fresh subprocess; time is the fastest of ``--repeats`` passes; peak memory is the
growth of the peak resident set over the resident set after a warm-up pass.

Run:  python benchmarks/bench_interventions.py [--lengths 2048,4096] [--layers 4] [--threads 1]
Goal: PINE ≤ 2× the plain forward (the published implementation is 2–8×), ACT ≤ 1.3×, memory linear in L.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from measure import fastest_and_peak

METHODS = ("plain", "pine", "act-1", "act-all")
PREFIX, DOCUMENT, SUFFIX = 16, 64, 32


def worker(method: str, length: int, layers: int, threads: int, repeats: int) -> dict[str, float]:
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
    count = (length - PREFIX - SUFFIX) // DOCUMENT
    spans = [(PREFIX + DOCUMENT * k, PREFIX + DOCUMENT * (k + 1)) for k in range(count)]
    ids = torch.randint(0, 1000, (1, length), generator=torch.Generator().manual_seed(0))
    heads = range(9)
    chosen = {"act-1": [(layers // 2, h) for h in heads], "act-all": [(n, h) for n in range(layers) for h in heads]}

    def context(n: int):  # type: ignore[no-untyped-def]
        if method == "pine":
            return pine(model, DocumentLayout.of([[(a, b) for a, b in spans if b <= n - SUFFIX]]))
        if method.startswith("act"):
            return act(model, SinkCalibration(tuple(chosen[method])))
        return contextlib.nullcontext()

    def forward(tokens: torch.Tensor) -> None:
        with torch.no_grad(), context(tokens.shape[1]):
            decoder(input_ids=tokens, use_cache=False)

    measured = fastest_and_peak(
        lambda: forward(ids), lambda: forward(ids[:, : PREFIX + 2 * DOCUMENT + SUFFIX]), repeats
    )
    return {**measured, "documents": count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="2048,4096")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "LENGTH"))
    args = parser.parse_args()
    if args.worker:
        result = worker(args.worker[0], int(args.worker[1]), args.layers, args.threads, args.repeats)
        print(json.dumps(result))
        return
    print(
        f"random Llama, SmolLM2-135M layer shape, {args.layers} layers; {args.threads} thread(s); time = fastest of "
        f"{args.repeats}; baseline = plain SDPA forward in the same run"
    )
    print(f"{'L':>6} {'K':>4} | {'method':>8} | {'seconds':>8} {'× plain':>8} | {'peak MiB':>9} {'× plain':>8}")
    for length in (int(n) for n in args.lengths.split(",")):
        results = {}
        for method in METHODS:
            command = [sys.executable, __file__, "--worker", method, str(length), "--layers", str(args.layers),
                       "--threads", str(args.threads), "--repeats", str(args.repeats)]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode:
                print(f"{method} at {length} failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                continue
            results[method] = json.loads(done.stdout.strip().splitlines()[-1])
        plain = results.get("plain")
        for method, result in results.items():
            time_ratio = result["seconds"] / plain["seconds"] if plain else float("nan")
            memory_ratio = result["peak_bytes"] / plain["peak_bytes"] if plain and plain["peak_bytes"] else float("nan")
            print(
                f"{length:>6} {result['documents']:>4} | {method:>8} | {result['seconds']:8.3f} {time_ratio:7.2f}x | "
                f"{result['peak_bytes'] / 2**20:9.1f} {memory_ratio:7.2f}x"
            )


if __name__ == "__main__":
    main()
