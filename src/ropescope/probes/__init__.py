"""Measurement on real models: streamed attention statistics, per-position loss and passkey retrieval.

``stats`` accumulates the statistics block by block, ``attention`` routes a transformers model's attention
through them, ``summary`` turns the sums into the reported numbers, ``loss`` and ``passkey`` are the model-level
probes, ``models`` loads a local folder or GGUF file and ``run`` orchestrates a resumable run. torch and
transformers are needed; nothing here is imported by the numpy-only theory layer.
"""
