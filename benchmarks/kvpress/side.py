"""kvpress's side of ``benchmarks/bench_presses.py``, run with the Python of kvpress's own environment.

Reads a job file (model, presses, ratios, prompts as token ids), and for every prompt, press and ratio follows
kvpress's pipeline: prefill the context inside ``with press(model):``, feed the question at the context's
positions, decode greedily, timing each one-token step. Writes the generated token ids and step times as JSON.
Usage: ``python side.py JOB.json OUT.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, DynamicCache
from transformers.utils import logging

from kvpress import ExpectedAttentionPress, KeyRerotationPress, SnapKVPress, StreamingLLMPress

PRESSES = {
    "streaming": lambda ratio: StreamingLLMPress(compression_ratio=ratio, n_sink=4),
    "streaming-rerotated": lambda ratio: KeyRerotationPress(press=StreamingLLMPress(compression_ratio=ratio, n_sink=4)),
    "snapkv": lambda ratio: SnapKVPress(compression_ratio=ratio, window_size=32, kernel_size=5),
    "expected": lambda ratio: ExpectedAttentionPress(compression_ratio=ratio),
}


def cache_bytes(cache: DynamicCache) -> int:
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


def answer(model, press, context: list[int], question: list[int], new_tokens: int) -> dict:
    cache = DynamicCache()
    with torch.no_grad():
        with press(model):
            model(input_ids=torch.tensor([context]), past_key_values=cache, use_cache=True)
        kv_bytes = cache_bytes(cache)
        position = len(context)
        positions = torch.arange(position, position + len(question))[None]
        logits = model(input_ids=torch.tensor([question]), past_key_values=cache, position_ids=positions).logits
        tokens, steps = [int(logits[0, -1].argmax())], []
        position += len(question)
        for _ in range(new_tokens - 1):
            began = time.perf_counter()
            logits = model(
                input_ids=torch.tensor([[tokens[-1]]]), past_key_values=cache, position_ids=torch.tensor([[position]])
            ).logits
            steps.append(time.perf_counter() - began)
            tokens.append(int(logits[0, -1].argmax()))
            position += 1
    return {"tokens": tokens, "decode_ms": 1000 * sum(steps) / len(steps), "kv_bytes": kv_bytes}


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    torch.set_num_threads(job["threads"])
    logging.disable_progress_bar()
    model_file = Path(job["model"])
    model = AutoModelForCausalLM.from_pretrained(
        model_file.parent, gguf_file=model_file.name, dtype=torch.float32, attn_implementation="sdpa"
    ).eval()
    rows = []
    for index, prompt in enumerate(job["prompts"]):
        for name in job["presses"]:
            for ratio in job["ratios"]:
                result = answer(model, PRESSES[name](ratio), prompt["context"], prompt["question"], job["new_tokens"])
                rows.append({"prompt": index, "press": name, "ratio": ratio, **result})
        print(f"kvpress: prompt {index + 1}/{len(job['prompts'])} done", file=sys.stderr, flush=True)
    Path(sys.argv[2]).write_text(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
