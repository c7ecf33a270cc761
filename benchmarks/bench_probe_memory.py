"""Peak memory and time of the streaming attention probe against two baselines measured in the same run.

Baselines: (a) transformers eager attention with ``output_attentions=True`` — what people use today to look at
attention — and (b) a plain SDPA forward pass, the floor. Every (method, length) runs in a fresh subprocess on
the decoder of a tiny random Llama (no LM head, so vocabulary logits do not swamp the comparison); peak memory is
the growth of the process's peak resident set over its resident set after loading and a short warm-up pass.
Eager runs whose attention maps alone would exceed ``--eager-budget-gb`` are skipped and shown as projected.
Time is the fastest of ``--repeats`` passes, on one thread by default: on a shared machine, thread wake-ups
between PyTorch's many small kernels otherwise dominate and make every ratio noise.

Run:  python benchmarks/bench_probe_memory.py [--lengths 2048,4096,8192,16384] [--threads 1] [--model PATH]
Goal: probe memory within 1.5× of the plain forward and growing linearly in L; probe time within 2×; eager
memory growing as L².
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

from measure import fastest_and_peak

LAYERS, HEADS, KV_HEADS, HIDDEN = 2, 4, 2, 256
METHODS = ("plain", "probe", "eager")


def _model(source: str):
    """The tiny random Llama, or a local model folder / GGUF file (``--model``) loaded as the probe CLI does."""
    if source != "tiny":
        from ropescope.probes.models import load_model

        return load_model(source).model
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=1000,
        hidden_size=HIDDEN,
        intermediate_size=512,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=32768,
        attn_implementation="sdpa",
    )
    return transformers.LlamaForCausalLM(config).eval()


def worker(source: str, method: str, length: int, threads: int, repeats: int, budget: float) -> dict[str, float]:
    """``repeats`` forward passes of ``method`` at ``length`` tokens: the fastest, and peak memory growth; an eager
    run whose attention maps alone exceed ``budget`` bytes is not attempted (``skipped_bytes`` says why)."""
    import torch

    from ropescope.probes.attention import AttentionProbe, probe_attention
    from ropescope.probes.summary import summarise

    torch.set_num_threads(threads)
    model = _model(source)
    decoder = model.get_decoder()
    config = model.config
    attention_maps = config.num_hidden_layers * config.num_attention_heads * length * length * 4
    if method == "eager" and attention_maps > budget:
        return {"skipped_bytes": attention_maps}
    ids = torch.randint(0, 1000, (1, length), generator=torch.Generator().manual_seed(0))  # ids < every vocab

    def forward(tokens: torch.Tensor) -> None:
        with torch.no_grad():
            if method == "plain":
                decoder(input_ids=tokens, use_cache=False)
            elif method == "eager":
                model.set_attn_implementation("eager")
                decoder(input_ids=tokens, use_cache=False, output_attentions=True)
            else:
                probe = AttentionProbe()
                with probe_attention(model, probe):
                    decoder(input_ids=tokens, use_cache=False)
                summarise(probe)

    return fastest_and_peak(lambda: forward(ids), lambda: forward(ids[:, :64]), repeats)


def _run(
    source: str, method: str, length: int, threads: int, repeats: int, budget_gb: float
) -> dict[str, float] | None:
    command = [
        sys.executable,
        __file__,
        "--model",
        source,
        "--worker",
        method,
        str(length),
        "--threads",
        str(threads),
        "--repeats",
        str(repeats),
        "--eager-budget-gb",
        str(budget_gb),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"  {method} at {length}: failed ({done.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return None
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if "skipped_bytes" in result:
        print(f"  {method} at {length}: skipped, attention maps alone need {result['skipped_bytes'] / 2**30:.1f} GiB")
        return None
    return result


def _growth(lengths: list[int], values: list[float | None]) -> float:
    """Least-squares exponent p of value ∝ L^p over the measured points."""
    points = [(math.log(n), math.log(v)) for n, v in zip(lengths, values, strict=True) if v]
    if len(points) < 2:
        return float("nan")
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="2048,4096,8192,16384")
    parser.add_argument("--model", default="tiny", help="'tiny' (random Llama) or a model folder / .gguf file")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="forward passes per run; the fastest is kept")
    parser.add_argument("--eager-budget-gb", type=float, default=6.0)
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "LENGTH"))
    args = parser.parse_args()
    if args.worker:
        method, length = args.worker[0], int(args.worker[1])
        budget = args.eager_budget_gb * 2**30
        print(json.dumps(worker(args.model, method, length, args.threads, args.repeats, budget)))
        return
    lengths = [int(n) for n in args.lengths.split(",")]
    model = f"tiny random Llama ({LAYERS} layers, {HEADS} heads, {KV_HEADS} KV, hidden {HIDDEN})"
    print(
        f"{model if args.model == 'tiny' else args.model}; {args.threads} thread(s); time = fastest of "
        f"{args.repeats}; peak = growth of peak RSS over post-load RSS"
    )
    rows = {method: [] for method in METHODS}
    for length in lengths:
        for method in METHODS:
            rows[method].append(_run(args.model, method, length, args.threads, args.repeats, args.eager_budget_gb))
    header = f"{'L':>6} | {'plain MiB':>9} {'s':>6} | {'probe MiB':>9} {'s':>6} | {'eager MiB':>9} {'s':>6} |"
    print(header + " probe/plain mem  time | eager/plain mem")
    for i, length in enumerate(lengths):
        cells = [rows[m][i] for m in METHODS]
        text = [f"{c['peak_bytes'] / 2**20:9.1f} {c['seconds']:6.2f}" if c else f"{'-':>9} {'-':>6}" for c in cells]
        plain, probe, eager = cells

        def ratio(a: dict | None, b: dict | None, key: str) -> str:
            return f"{a[key] / b[key]:5.2f}x" if a and b and b[key] > 0 else "    -"

        print(
            f"{length:>6} | {text[0]} | {text[1]} | {text[2]} | {ratio(probe, plain, 'peak_bytes'):>14} "
            f"{ratio(probe, plain, 'seconds'):>6} | {ratio(eager, plain, 'peak_bytes'):>14}"
        )
    for method in METHODS:
        peaks = [c["peak_bytes"] if c else None for c in rows[method]]
        print(f"memory growth exponent of {method}: L^{_growth(lengths, peaks):.2f}")


if __name__ == "__main__":
    main()
